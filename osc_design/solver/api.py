"""The solver's entry points: :func:`solve` (one optimal design, cached) and :func:`pareto_front`."""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from functools import lru_cache

from ..cost import cost as exact_cost
from ..errors import InfeasibleDesignError
from ..spec import GraphBuilder, Target
from . import direct
from .bounds import INF, space_bound
from .result import Found, Solution, make_solution
from .search import Search
from .space import SearchSpace, check_options, check_verify

__all__ = ["solve", "pareto_front"]


@lru_cache(maxsize=4096, typed=True)
def _solve_cached(target: Target, objective: str, max_stages: int | None, square_only: bool, dilation: bool,
                  widths: tuple[int, ...] | int | None, min_coverage: float, verify: str) -> Solution:
    """:func:`solve` per arguments as given (``typed``: ``True`` is not taken for ``1.0``); validates once."""
    space = SearchSpace.create(target, objective, max_stages, square_only, dilation, widths, min_coverage)
    return _solve_space(space, check_verify(verify))


@lru_cache(maxsize=4096)
def _solve_space(space: SearchSpace, verify: str) -> Solution:
    """:func:`solve` per validated space (equal spaces share a solution, however their options were spelt)."""
    if direct.applies(space):
        pairs = space.n_hi <= 2
        closed = direct.two_stage_search(space) if pairs else direct.split_search(space)
        if closed is not None:
            proof = "pairs" if pairs else "split"
            return _solution(space, Found(closed.stages, closed.value, 1.0, closed.searched, proof), verify)
    search = Search(space)
    known = INF
    smaller = space.smaller()
    if smaller is not None:
        # designs in a smaller space lie in this one (up to the dominance rules, which keep one at least
        # as good): their optimum caps the search
        try:
            known = float(_solve_space(smaller, "none").cost.params)
        except InfeasibleDesignError:
            known = INF
    found = search.solve(space_bound(space, search.rho), known=known)
    if not found:
        raise space.infeasible()
    best_n = min(found, key=lambda N: (found[N][0], N))
    value, stages = found[best_n]
    return _solution(space, Found(stages, int(value), search.rho, search.searched), verify)


def _solution(space: SearchSpace, found: Found, verify: str) -> Solution:
    solution = make_solution(space, found, verify)
    worse = _worse_than_target(space, solution)
    if worse is not None:
        raise worse
    return solution


def _target_cost(target: Target, objective: str) -> int:
    """The target conv's own value of ``objective``."""
    b = GraphBuilder(target)
    c = exact_cost(b.build(b.conv2d(b.input, target.out_channels, target.kernel_size, stride=target.stride,
                                    padding=target.padding)))
    return int({"params": c.params, "macs": c.macs, "macs_valid": c.macs_valid}[objective])  # type: ignore[arg-type]


def _worse_than_target(space: SearchSpace, solution: Solution) -> InfeasibleDesignError | None:
    """With square kernels for a rectangular window the target conv is not in the space, and its best design
    may cost more than the conv it would replace: that is no replacement, so it is refused (the error says so)."""
    (kh, kw) = space.target.kernel_size
    if not space.square or kh == kw:
        return None
    own, value = _target_cost(space.target, space.objective), solution.certificate.value
    if value <= own:
        return None
    k = solution.spec.convs[0].kernel_size
    return InfeasibleDesignError(
        f"with square kernels the best chain of at most {space.n_hi} stage{'s' if space.n_hi > 1 else ''} "
        f"for {space.target.describe()} ({solution.spec.stages} stage{'s' if solution.spec.stages > 1 else ''}, "
        f"first {k[0]}x{k[1]}) costs {value:,} {space.objective}, more than the {kh}x{kw} target conv itself "
        f"({own:,}); allow rectangular kernels or more stages"
    )


def solve(target: Target, objective: str = "params", max_stages: int | None = None, square_only: bool = False,
          dilation: bool = False, widths: Sequence[int] | int | None = None, min_coverage: float = 1.0, *,
          verify: str = "full") -> Solution:
    """The optimal separable design for ``target`` with its certificate.

    Parameters
    ----------
    target : Target
        The convolution to replace (``input_size`` needed for the MAC objectives).
    objective : {"params", "macs", "macs_valid"}
        What to minimise: weights without bias, MACs with padding taps, or MACs of real-pixel taps only.
    max_stages : int, optional
        Largest number of stages (``2`` gives the ``"osc-2"`` family); default :func:`stage_cap`.
    square_only : bool
        Restrict every stage to a ``k x k`` kernel.
    dilation : bool
        Allow dilated stages (mixed-radix composition of taps).
    widths : int or sequence of int, optional
        Internal channel widths: ``None`` for ``C_out`` everywhere, an int for every internal layer, or
        the ``N - 1`` internal widths (which fixes ``N``).
    min_coverage : float
        Fraction of the volumetric receptive field that must be covered, in ``(0, 1]``; below 1 the
        channel and spatial requirements are relaxed and the returned design's verified fraction is at
        least this.
    verify : {"full", "fast", "none"}
        Check the returned design with the exact verifier :func:`osc_design.coverage.coverage`
        (``"full"``, the default: a few milliseconds, about 0.1 s at 65,536 channels), with the
        equivalent per-group computation (``"fast"``; same result, for sweeps), or not at all
        (``"none"``: the coverage reported is the model's, ``prod n_i >= C_in`` and the 1-D
        footprints). A design failing the check raises :class:`~osc_design.OscDesignError` (a bug).

    Returns
    -------
    Solution
        ``spec`` (family ``"osc-2"`` when ``max_stages == 2``, else ``"osc"``), exact ``cost``, verified
        ``coverage`` and ``certificate``. Results are cached per arguments.

    Raises
    ------
    SpecError
        Bad arguments (unknown objective, MACs without input size, stride larger than the kernel,
        ``max_stages < 1``, inconsistent widths, ``min_coverage`` outside ``(0, 1]``).
    InfeasibleDesignError
        No design of the space covers the requested volume (the message says why).

    Examples
    --------
    >>> sol = solve(Target(256, 256, 7), max_stages=2)
    >>> sol.cost.params, sol.certificate.bound, sol.certificate.gap
    (57344, 57344.0, 0.0)
    >>> [c.kernel_size for c in sol.spec.convs], [c.groups for c in sol.spec.convs]
    ([(7, 1), (1, 7)], [16, 16])
    """
    if isinstance(widths, list):
        widths = tuple(widths)
    check_options(target, objective, max_stages, square_only, dilation, widths, min_coverage, verify)
    return _solve_cached(target, objective, max_stages, square_only, dilation, widths, min_coverage, verify)


def _per_stage_count(space: SearchSpace, objective: str) -> list[tuple[int, Found]]:
    """The exact optimum of ``objective`` for every stage count of ``space`` that can be on the Pareto front.

    Params only (no input size) in the space of the closed searches: a chain with more stages than the split
    optimum (the cheapest design over any number of stages, fewest stages among equal costs) costs at least as
    much, so it is dominated; each count up to it gets its own programme with exactly that many stages (one
    programme for every count at once would need an upper bound above the most expensive, one-stage, optimum).
    Otherwise one programme with a design per stage count."""
    if objective == "params" and space.target.input_size is None and direct.applies(space):
        split = direct.split_search(space)
        top = space.n_hi if split is None else min(space.n_hi, len(split.stages))
        out = []
        for N in range(space.n_lo, top + 1):
            search = Search(space.with_stages(N, objective))
            for n, (value, stages) in search.solve(space_bound(search.space, search.rho)).items():
                out.append((n, Found(stages, int(value), search.rho, search.searched)))
        return out
    search = Search(dataclasses.replace(space, objective=objective))
    found = search.solve(space_bound(space, search.rho), per_n=True)
    return [(N, Found(stages, int(value), search.rho, search.searched)) for N, (value, stages) in sorted(found.items())]


def pareto_front(target: Target, max_stages: int | None = None, square_only: bool = False, dilation: bool = False,
                 widths: Sequence[int] | int | None = None, min_coverage: float = 1.0, *,
                 verify: str = "full") -> list[Solution]:
    """Non-dominated designs over (params, macs, stages), sorted by stages.

    For every stage count ``N`` the exact ``N``-stage optimum for params (and, with an input size, for
    MACs) is computed (with dilation and params only, up to the stage count of the cheapest design over any
    number of stages: more stages cost no less and are dominated); the designs no other one beats or ties in
    all three measures are returned. Each solution's certificate is for its own stage count.

    >>> [s.cost.params for s in pareto_front(Target(64, 64, 3), max_stages=3)]
    [36864, 3072, 1600]
    """
    space = SearchSpace.create(target, "params", max_stages, square_only, dilation, widths, min_coverage)
    check_verify(verify)
    objectives = ["params"] + (["macs"] if target.input_size is not None else [])
    cands: list[Solution] = []
    for objective in objectives:
        for N, found in _per_stage_count(space, objective):
            sub = space.with_stages(N, objective)
            sol = make_solution(sub, found, verify)
            if _worse_than_target(sub, sol) is None:
                cands.append(sol)
    if not cands:
        raise space.infeasible()

    def key(s: Solution) -> tuple:
        return (s.cost.params, s.cost.macs if s.cost.macs is not None else 0, s.spec.stages)

    front: list[Solution] = []
    for s in cands:
        ks = key(s)
        if any(all(a <= b for a, b in zip(key(o), ks, strict=True)) and key(o) != ks for o in cands):
            continue
        if any(key(o) == ks for o in front):
            continue
        front.append(s)
    return sorted(front, key=lambda s: (s.spec.stages, s.cost.params))
