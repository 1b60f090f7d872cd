"""Side-by-side comparison of operator families for one target: exact cost, verified coverage, depth.

>>> from osc_design import Target
>>> cmp = compare(Target(256, 256, 3, input_size=56), families=["conv", "depthwise-separable", "slak"])
>>> [d.family for d in cmp], cmp.skipped[0][0]
(['conv', 'depthwise-separable'], 'slak')
>>> cmp.best.family, cmp.best.cost.params
('depthwise-separable', 67840)

The library owns the documents: :meth:`Design.row` is the one row schema (CSV rows, sweep rows and the
JSON document's designs), :meth:`Comparison.to_dict` the JSON document of ``osc-design compare`` and
:func:`sweep` the rows of ``osc-design sweep``.

Importing this module imports neither sympy nor scipy.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, overload

from . import registry
from .cost import Cost, cost
from .coverage import Coverage, coverage
from .errors import SpecError, check_type
from .registry import Family
from .spec import LayerSpec, Target, check_undilated

if TYPE_CHECKING:  # pragma: no cover
    from .latency import LatencySolution
    from .solver import Solution

__all__ = ["Design", "Comparison", "compare", "best", "format_table", "sweep", "sweep_comparisons", "sweep_document",
           "solution_document", "solution_row", "pareto_rows"]

Latency = Mapping[str, Mapping[str, float]]
"""Family id -> latency columns (``{"predicted_ms": ..., "measured_ms": ...}``) added to its row."""


@dataclass(frozen=True)
class Design:
    """One family's design for a target, with its exact cost and verified coverage.

    Attributes
    ----------
    family : str
        The family id (``"bsconv-u"``).
    spec : LayerSpec
        The built graph.
    cost : Cost
        Exact counts (spatial ones ``None`` when the target has no input size).
    coverage : Coverage
        Exact share of the target's ``C_in x K_h x K_w`` volume seen by every output channel.
    stages : int
        Depth in convolutions (``spec.stages``).
    asymptotic : str
        The family's parameter class for ``C_in = C_out = C`` (``"C(C + K^2)"``).
    certainty : str
        ``"verified"`` or ``"reconstructed"`` (how the family's structure is known).
    solution : Solution or None
        The solver's solution (cost, coverage, certificate of optimality) for the families the solver
        builds (``osc``, ``osc-2``); ``None`` for the others.
    """

    family: str
    spec: LayerSpec
    cost: Cost
    coverage: Coverage
    stages: int
    asymptotic: str
    certainty: str = "verified"
    solution: Solution | None = None

    def row(self) -> dict[str, Any]:
        """The design as a flat, JSON-ready row: the one row schema of comparisons and sweeps.

        Keys: family, params, bias_params, macs, macs_valid, flops, stages, coverage, full_coverage,
        asymptotic (spatial counts ``None`` without an input size).
        """
        return {
            "family": self.family,
            "params": self.cost.params,
            "bias_params": self.cost.bias_params,
            "macs": self.cost.macs,
            "macs_valid": self.cost.macs_valid,
            "flops": self.cost.flops,
            "stages": self.stages,
            "coverage": self.coverage.fraction,
            "full_coverage": self.coverage.full,
            "asymptotic": self.asymptotic,
        }

    def to_dict(self) -> dict[str, Any]:
        """:meth:`row` with the design's layer-spec document under ``"spec"``."""
        from .serialize import to_dict

        return {**self.row(), "spec": to_dict(self.spec)}


def _rank(d: Design) -> tuple[int, int, int, str]:
    return (d.cost.params, d.cost.macs if d.cost.macs is not None else 0, d.stages, d.family)


def best(designs: Iterable[Design]) -> Design | None:
    """The fully covering design with the fewest params (ties: fewer MACs, then fewer stages, then the id).

    Parameters
    ----------
    designs : iterable of Design

    Returns
    -------
    Design or None
        ``None`` when no design covers the target's whole volume.
    """
    full = [d for d in designs if d.coverage.full]
    return min(full, key=_rank) if full else None


@dataclass(frozen=True)
class Comparison(Sequence[Design]):
    """The result of :func:`compare`: a sequence of :class:`Design` (in family order) plus what was skipped.

    Attributes
    ----------
    target : Target
        The compared target.
    designs : tuple of Design
        One per family that could build a design for the target.
    skipped : tuple of (str, str)
        ``(family id, reason)`` for each family whose builder refused the target or options (the
        :class:`~osc_design.SpecError` message, e.g. ``slak`` with ``small_kernel`` larger than the kernel).
    """

    target: Target
    designs: tuple[Design, ...]
    skipped: tuple[tuple[str, str], ...] = ()

    @overload
    def __getitem__(self, index: int) -> Design: ...
    @overload
    def __getitem__(self, index: slice) -> Sequence[Design]: ...
    def __getitem__(self, index: int | slice) -> Design | Sequence[Design]:
        return self.designs[index]

    def __len__(self) -> int:
        return len(self.designs)

    def __iter__(self) -> Iterator[Design]:
        return iter(self.designs)

    @property
    def best(self) -> Design | None:
        """:func:`best` of the designs."""
        return best(self.designs)

    def get(self, family: str) -> Design | None:
        """The design of ``family``, or ``None`` if it was skipped or not compared."""
        return next((d for d in self.designs if d.family == family), None)

    @property
    def optimal(self) -> Solution | None:
        """The solver's solution of the ``osc`` design (its certificate included), if ``osc`` was compared."""
        design = self.get("osc")
        return None if design is None else design.solution

    def rows(self, latency: Latency | None = None) -> list[dict[str, Any]]:
        """:meth:`Design.row` of every design, with its ``latency`` columns when given (the CSV document)."""
        return [{**d.row(), **(latency or {}).get(d.family, {})} for d in self.designs]

    def grid_rows(self) -> list[dict[str, Any]]:
        """The rows of a sweep point: channels, kernel, input size, :meth:`Design.row`, whether it is the best.

        The target is a sweep's: ``C -> C`` channels, a square kernel and an input size.
        """
        t = self.target
        if t.in_channels != t.out_channels or t.kernel_size[0] != t.kernel_size[1] or t.input_size is None:
            raise SpecError(f"a sweep point is a C -> C target with a square kernel and an input size, got {t}")
        best_family = None if self.best is None else self.best.family
        head = {"channels": t.in_channels, "kernel": t.kernel_size[0],
                "input_size": f"{t.input_size[0]}x{t.input_size[1]}"}
        return [{**head, **d.row(), "best": d.family == best_family} for d in self.designs]

    def to_dict(self, *, input_size_default: bool = False, latency: Latency | None = None,
                fastest: LatencySolution | None = None) -> dict[str, Any]:
        """The JSON document of the comparison (``osc-design compare --format json``).

        Parameters
        ----------
        input_size_default : bool
            Whether the target's input size is a default rather than the user's (stated in the document).
        latency : mapping, optional
            Latency columns per family, added to the designs' rows.
        fastest : LatencySolution, optional
            The fastest design under a latency model, added as ``"fastest"``.

        Returns
        -------
        dict
            ``target``, ``input_size_default``, ``designs`` (:meth:`Design.to_dict` plus latency),
            ``skipped``, ``best``, ``optimal`` (:func:`solution_document` of the ``osc`` design, or ``None``)
            and, with ``fastest``, ``fastest``.
        """
        optimal = self.optimal
        doc: dict[str, Any] = {
            "target": self.target.to_dict(),
            "input_size_default": input_size_default,
            "designs": [{**d.to_dict(), **(latency or {}).get(d.family, {})} for d in self.designs],
            "skipped": [{"family": f, "reason": r} for f, r in self.skipped],
            "best": self.best.family if self.best else None,
            "optimal": None if optimal is None else solution_document(optimal),
        }
        if fastest is not None:
            doc["fastest"] = _fastest_document(fastest)
        return doc

    def table(self) -> str:
        """Plain-text table of the designs and the skipped families (see :func:`format_table`)."""
        return format_table(self.designs, self.skipped)


def _select(families: Iterable[str] | None) -> list[Family]:
    available = registry.families()
    if families is None:
        return available
    if isinstance(families, str):
        families = [families]
    by_id = {f.id: f for f in available}
    chosen: list[Family] = []
    for fid in families:
        if fid not in by_id:
            raise SpecError(f"unknown family {fid!r}; expected one of {', '.join(by_id)}")
        if by_id[fid] not in chosen:
            chosen.append(by_id[fid])
    return chosen


def compare(
    target: Target,
    families: Iterable[str] | None = None,
    options: Mapping[str, Mapping[str, Any]] | None = None,
) -> Comparison:
    """Build every family's design for ``target`` and measure it exactly.

    Parameters
    ----------
    target : Target
        The convolution to replace; give it an ``input_size`` for MAC counts.
    families : iterable of str, optional
        Family ids to compare, in this order; default every registered family (registration order).
    options : mapping, optional
        Family id -> its options, e.g. ``{"bsconv-s": {"p": 0.125}, "slak": {"small_kernel": 3}}``.

    Returns
    -------
    Comparison
        The designs (a sequence of :class:`Design`) and the skipped families with their reasons.

    Raises
    ------
    SpecError
        For an unknown family id, options for a family that is not compared, or an option name the
        family does not have. (An option *value* the builder rejects skips the family, with the reason.)
    """
    check_type(target, Target, "target")
    check_undilated(target, "compare")
    if families is not None and not isinstance(families, Iterable):
        raise SpecError(f"`families` (={families!r}) must be a family id or a list of them")
    if options is not None:
        check_type(options, Mapping, "options", "a mapping of family id to options")
    chosen = _select(families)
    options = dict(options or {})
    ids = [f.id for f in chosen]
    for fid, opts in options.items():
        if fid not in ids:
            raise SpecError(f"options given for family {fid!r}, which is not compared (compared: {', '.join(ids)})")
        if not isinstance(opts, Mapping):
            raise SpecError(f"options of family {fid!r} (={opts!r}) must be a mapping of option names to values")
        fam = next(f for f in chosen if f.id == fid)
        unknown = sorted(set(opts) - set(fam.options))
        if unknown:
            allowed = ", ".join(f"`{k}`" for k in fam.options) or "none"
            raise SpecError(f"{fid}: unknown option `{unknown[0]}`; options: {allowed}")
    designs: list[Design] = []
    skipped: list[tuple[str, str]] = []
    for fam in chosen:
        try:
            built = fam.design(target, **options.get(fam.id, {}))
        except SpecError as exc:
            skipped.append((fam.id, str(exc)))
            continue
        spec = built.spec
        designs.append(Design(fam.id, spec, cost(spec), coverage(spec), spec.stages, fam.asymptotic, fam.certainty,
                              built.solution))
    return Comparison(target, tuple(designs), tuple(skipped))


def sweep(targets: Iterable[Target], families: Iterable[str] | None = None,
          progress: Callable[[], Any] | None = None, jobs: int | None = None) -> list[dict[str, Any]]:
    """Compare ``families`` at every target of a grid: :meth:`Comparison.grid_rows` of each, in order.

    ``progress()`` is called after each target (``osc-design sweep`` advances its bar). ``jobs`` runs
    the targets through :class:`joblib.Parallel` (``-1``: every core; ``None``: joblib's default, one
    process unless a ``joblib.parallel_backend`` context says otherwise, e.g. ``"dask"`` for a
    ``distributed`` cluster); the rows are the serial run's, in the same order.

    >>> rows = sweep([Target(c, c, 3, input_size=8) for c in (16, 32)], families=["conv", "bsconv-u"])
    >>> [(r["channels"], r["family"], r["params"], r["best"]) for r in rows]
    [(16, 'conv', 2304, False), (16, 'bsconv-u', 400, True), (32, 'conv', 9216, False), (32, 'bsconv-u', 1312, True)]
    """
    return [row for c in sweep_comparisons(targets, families, progress, jobs) for row in c.grid_rows()]


def sweep_comparisons(targets: Iterable[Target], families: Iterable[str] | None = None,
                      progress: Callable[[], Any] | None = None, jobs: int | None = None) -> list[Comparison]:
    """:func:`compare` at every target of a grid, in order (``progress()`` after each; ``jobs`` as in
    :func:`sweep`)."""
    chosen = None if families is None else list(families)
    targets = list(targets)
    if jobs is not None and (isinstance(jobs, bool) or not isinstance(jobs, int) or jobs == 0 or jobs < -1):
        raise SpecError(f"`jobs` (={jobs!r}) must be a positive number of processes, -1 (every core) or None")
    if jobs == 1 or len(targets) < 2:
        return [_compared(t, chosen, progress) for t in targets]
    from joblib import Parallel, delayed

    run = Parallel(n_jobs=jobs, return_as="generator", batch_size="auto")
    comparisons = []
    for c in run(delayed(compare)(t, families=chosen) for t in targets):
        comparisons.append(c)
        if progress is not None:
            progress()
    return comparisons


def _compared(target: Target, families: list[str] | None, progress: Callable[[], Any] | None) -> Comparison:
    c = compare(target, families=families)
    if progress is not None:
        progress()
    return c


def sweep_document(comparisons: Iterable[Comparison]) -> list[dict[str, Any]]:
    """The JSON document of ``osc-design sweep``: the rows of :func:`sweep`, each with ``skipped``, the families
    skipped at its target (``[{"family": ..., "reason": ...}]``, as in :meth:`Comparison.to_dict`).

    >>> doc = sweep_document(sweep_comparisons([Target(8, 8, 3, input_size=8)], families=["conv", "slak"]))
    >>> [(r["family"], [s["family"] for s in r["skipped"]]) for r in doc]
    [('conv', ['slak'])]
    """
    doc: list[dict[str, Any]] = []
    for c in comparisons:
        skipped = [{"family": f, "reason": r} for f, r in c.skipped]
        doc += [{**row, "skipped": skipped} for row in c.grid_rows()]
    return doc


def solution_document(solution: Solution) -> dict[str, Any]:
    """The layer-spec document of a solver solution, with its cost, coverage and certificate."""
    from .serialize import to_dict

    return to_dict(solution.spec, cost=solution.cost.to_dict(), coverage=solution.coverage.to_dict(),
                   certificate=solution.certificate.to_dict())


def solution_row(solution: Solution) -> dict[str, Any]:
    """A solver solution as one flat CSV row: family, its cost counts, stages, coverage, bound and gap."""
    return {"family": solution.spec.family, **solution.cost.to_dict(), "stages": solution.spec.stages,
            "coverage": solution.coverage.fraction, "bound": solution.certificate.bound,
            "gap": solution.certificate.gap}


def pareto_rows(front: Iterable[Solution]) -> list[dict[str, Any]]:
    """The rows of a Pareto front (:func:`osc_design.solver.pareto_front`): stages, params, MACs, coverage."""
    return [{"stages": s.spec.stages, "params": s.cost.params, "macs": s.cost.macs,
             "macs_valid": s.cost.macs_valid, "coverage": s.coverage.fraction} for s in front]


def _fastest_document(fastest: LatencySolution) -> dict[str, Any]:
    from .serialize import to_dict

    measured = fastest.measured_seconds
    return {"design": fastest.name, "predicted_ms": fastest.seconds * 1e3,  # type: ignore[operator]
            "measured_ms": None if measured is None else measured * 1e3,
            "refined": {n: m.seconds * 1e3 for n, m in fastest.measured.items()},
            "speedup_vs_conv": fastest.speedup, "space": fastest.space, "spec": to_dict(fastest.spec)}


def _num(v: int | None) -> str:
    return "-" if v is None else f"{v:,}"


def format_table(designs: Iterable[Design], skipped: Iterable[tuple[str, str]] = ()) -> str:
    """A plain-text table: family, params, macs, macs_valid, stages, coverage (then one line per skipped family).

    Parameters
    ----------
    designs : iterable of Design
    skipped : iterable of (str, str), optional
        ``(family, reason)`` pairs, listed under the table.

    Returns
    -------
    str
        The table; MAC columns show ``-`` without an input size, coverage shows ``full`` or the percentage.
    """
    head = ("family", "params", "macs", "macs_valid", "stages", "coverage")
    rows = [head]
    for d in designs:
        cov = "full" if d.coverage.full else f"{100 * d.coverage.fraction:.2f}%"
        rows.append((d.family, _num(d.cost.params), _num(d.cost.macs), _num(d.cost.macs_valid), str(d.stages), cov))
    widths = [max(len(r[i]) for r in rows) for i in range(len(head))]
    lines = []
    for n, r in enumerate(rows):
        cells = [r[0].ljust(widths[0])] + [c.rjust(w) for c, w in zip(r[1:], widths[1:], strict=True)]
        lines.append("  ".join(cells).rstrip())
        if n == 0:
            lines.append("  ".join("-" * w for w in widths))
    lines += [f"skipped {fid}: {reason}" for fid, reason in skipped]
    return "\n".join(lines)

