"""What the solver returns: :class:`Solution` (spec, exact cost, verified coverage) and its :class:`Certificate`."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, NamedTuple

from ..cost import Cost
from ..cost import cost as exact_cost
from ..coverage import Coverage
from ..errors import OscDesignError
from ..spec import LayerSpec
from .bounds import all_n, bound_n
from .chain import Stage, build, verify
from .space import SearchSpace

__all__ = ["Certificate", "Solution", "Found", "make_solution", "method_text"]


@dataclass(frozen=True)
class Certificate:
    """Why a returned design is optimal, and how far it is from the relaxation bound.

    Attributes
    ----------
    objective : str
        ``"params"``, ``"macs"`` or ``"macs_valid"``.
    value : int
        The design's exact objective value (from :func:`osc_design.cost.cost`).
    bound : float
        A valid lower bound for every design of the searched space with the allowed stage counts.
    gap : float
        ``100 * (value - bound) / value`` (0 when the bound is reached).
    searched : int
        Number of DP states created (all passes of the branch and bound together); for the closed searches
        of :mod:`~osc_design.solver.direct`, the nodes of their shortest paths or enumeration settled.
    method : str
        The argument of optimality.
    space : str
        The searched space.
    stages : int
        Stages of the returned design.
    n_max : int
        Largest number of stages searched.
    all_n : bool
        True when the relaxation proves that no design with more than ``n_max`` stages is better.
    relaxation : float
        ``e * C_out * ln(V)`` (real ``N``, equal widths; ``V`` the volume of :mod:`osc_design.solver`) or
        the ``N = 1..`` minimum when ``V < e``: the paper's continuous optimum, for reference.
    per_stage_bounds : tuple of float
        The ``N``-stage bound for each searched ``N`` (index 0 is ``N = n_min``).
    n_min : int
        Smallest number of stages searched.
    """

    objective: str
    value: int
    bound: float
    gap: float
    searched: int
    method: str
    space: str
    stages: int
    n_max: int
    all_n: bool
    relaxation: float
    per_stage_bounds: tuple[float, ...] = field(default=())
    n_min: int = 1

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict (integers stay integers)."""
        return {"objective": self.objective, "value": self.value, "bound": self.bound, "gap": self.gap,
                "searched": self.searched, "stages": self.stages, "n_min": self.n_min, "n_max": self.n_max,
                "all_n": self.all_n, "relaxation": self.relaxation,
                "per_stage_bounds": list(self.per_stage_bounds), "method": self.method, "space": self.space}


@dataclass(frozen=True)
class Solution:
    """The optimal design with its exact cost, its verified coverage and its certificate."""

    spec: LayerSpec
    cost: Cost
    coverage: Coverage
    certificate: Certificate

    @property
    def stages(self) -> list[Stage]:
        """The conv stages of the design, in order."""
        return [Stage(c.in_channels, c.out_channels, c.groups, c.kernel_size, c.stride, c.padding, c.dilation)
                for c in self.spec.convs]

    def describe(self) -> str:
        """One line: the stages, the cost and the gap."""
        parts = " -> ".join(s.describe() for s in self.stages)
        c = self.certificate
        return f"{parts}: {c.objective} {c.value:,} (bound {c.bound:,.1f}, gap {c.gap:.2f} %)"

    def to_dict(self) -> dict[str, Any]:
        return {"family": self.spec.family, "stages": [s.to_dict() for s in self.stages],
                "cost": self.cost.to_dict(), "coverage": self.coverage.to_dict(),
                "certificate": self.certificate.to_dict()}


class Found(NamedTuple):
    """A design the search found: its stages, its value and the search's figures."""

    stages: list[Stage]
    value: int  # the objective as the search valued it
    rho: float  # the search's cost factor per unit of params (see :func:`~osc_design.solver.bounds.cost_factor`)
    searched: int  # DP states created (closed searches: nodes settled)
    proof: str = "dp"  # "dp", or a closed search of :mod:`~osc_design.solver.direct`: "split", "pairs"


def method_text(all_n: bool, n_hi: int, exact_n: bool, proof: str = "dp") -> str:
    """The argument of optimality, as the certificate states it."""
    if proof == "split":
        return ("Splitting: a stage whose volume n kh kw has two factors above 1 costs at least their sum "
                "(ab >= a + b for a, b >= 2), and splitting it into a 1x1 stage of fan-in n and depthwise kh x 1 "
                "and 1 x kw stages (same dilations and place in each axis's order) keeps the coverage; so the "
                "optimum over any number of stages is a cheapest fan-in product (shortest path over the factor "
                "still missing) plus, per axis, a cheapest kernel sequence covering the window (shortest path over "
                "the footprint automaton), with factors of 2 of different kinds sharing a stage for the fewest "
                f"stages; that design fits the cap of {n_hi} stages, so it is optimal for all N.")
    if proof == "pairs":
        return ("Enumeration of every first stage (fan-in pair, kernel and dilation per axis) with its cheapest "
                "second stage: the cost grows with each factor of the second stage, and which of them are possible "
                "depends on the first stage's factor of the same kind only; every one-stage design too; optimal "
                f"for N <= {n_hi}.")
    head = ("Exact dynamic programme over chain prefixes, state = (channel reach, per-axis footprint span or "
            "its parity, stride phase); every design of the space is one path and a stage's cost depends "
            "only on its transition, so the cheapest accepting state is optimal")
    prune = ("; Pareto pruning over reach and branch and bound with the relaxation bound (valid for every "
             "completion) remove only designs that cannot be cheaper")
    if exact_n:
        tail = f" among designs with exactly {n_hi} stages."
    elif all_n:
        tail = f"; the relaxation bound exceeds the optimum for every N > {n_hi}, so it is optimal for all N."
    else:
        tail = f" for N <= {n_hi}."
    return head + prune + tail


def make_solution(space: SearchSpace, found: Found, verify_mode: str) -> Solution:
    """Build, cost, verify and certify a design of ``space``; a disagreement with the search is a bug."""
    spec = build(space.target, found.stages, space.family, space.options)
    exact = exact_cost(spec)
    got = {"params": exact.params, "macs": exact.macs, "macs_valid": exact.macs_valid}[space.objective]
    if got != found.value:
        raise OscDesignError(
            f"internal error (a bug in osc_design.solver): the search valued the design at {found.value} "
            f"{space.objective} but the cost model counts {got}; please report it"
        )
    cov = verify(spec, found.stages, verify_mode, space.lam)
    return Solution(spec, exact, cov, _certificate(space, found))


def _certificate(space: SearchSpace, found: Found) -> Certificate:
    target, objective, value, rho = space.target, space.objective, found.value, found.rho
    per_n = tuple(bound_n(target, N, space.widths, space.square, space.dilated, space.lam) * rho
                  for N in range(space.n_lo, space.n_hi + 1))
    bound = min(per_n) if objective != "macs_valid" else 0.0
    if objective == "macs_valid":
        per_n = tuple(0.0 for _ in per_n)
    if bound > value * (1 + 1e-9):
        raise OscDesignError(
            f"internal error (a bug in osc_design.solver): the relaxation bound {bound} exceeds the optimum "
            f"{value} for {target.describe()}; please report it"
        )
    bound = min(bound, float(value))  # float rounding only
    gap = 100.0 * (value - bound) / value if value else 0.0
    proven = found.proof == "split" or ((not space.exact_n) and objective != "macs_valid"
                                        and all_n(space, float(value), rho))
    V = space.lam * target.in_channels * (max(target.kernel_size) ** 2 if space.square else
                                          target.kernel_size[0] * target.kernel_size[1])
    relax = (math.e * target.out_channels * math.log(V) if V >= math.e
             else target.out_channels * max(1.0, V)) * (rho if objective != "macs_valid" else 0.0)
    return Certificate(
        objective=objective, value=value, bound=bound, gap=gap, searched=found.searched,
        method=method_text(proven, space.n_hi, space.exact_n, found.proof), space=space.text_for(found.proof),
        stages=len(found.stages), n_max=space.n_hi, all_n=proven, relaxation=relax, per_stage_bounds=per_n,
        n_min=space.n_lo,
    )
