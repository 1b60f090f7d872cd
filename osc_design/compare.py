"""Side-by-side comparison of operator families for one target: exact cost, verified coverage, depth.

>>> from osc_design import Target
>>> cmp = compare(Target(256, 256, 3, input_size=56), families=["conv", "depthwise-separable", "slak"])
>>> [d.family for d in cmp], cmp.skipped[0][0]
(['conv', 'depthwise-separable'], 'slak')
>>> cmp.best.family, cmp.best.cost.params
('depthwise-separable', 67840)

Importing this module imports neither sympy nor scipy.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, overload

from . import registry
from .cost import Cost, cost
from .coverage import Coverage, coverage
from .errors import SpecError
from .registry import Family
from .spec import LayerSpec, Target

__all__ = ["Design", "Comparison", "compare", "best", "format_table"]


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
    """

    family: str
    spec: LayerSpec
    cost: Cost
    coverage: Coverage
    stages: int
    asymptotic: str
    certainty: str = "verified"

    def row(self) -> dict[str, Any]:
        """The design as a flat, JSON-ready dict (family, params, macs, macs_valid, stages, coverage, ...)."""
        return {
            "family": self.family,
            "params": self.cost.params,
            "total_params": self.cost.total_params,
            "macs": self.cost.macs,
            "macs_valid": self.cost.macs_valid,
            "stages": self.stages,
            "coverage": self.coverage.fraction,
            "full_coverage": self.coverage.full,
            "asymptotic": self.asymptotic,
            "certainty": self.certainty,
        }


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

    def rows(self) -> list[dict[str, Any]]:
        """:meth:`Design.row` of every design."""
        return [d.row() for d in self.designs]

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
    if not isinstance(target, Target):
        raise SpecError(f"`target` must be a Target, got {type(target).__name__}")
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
            spec = fam.build(target, **options.get(fam.id, {}))
        except SpecError as exc:
            skipped.append((fam.id, str(exc)))
            continue
        designs.append(Design(fam.id, spec, cost(spec), coverage(spec), spec.stages, fam.asymptotic, fam.certainty))
    return Comparison(target, tuple(designs), tuple(skipped))


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
        cells = [r[0].ljust(widths[0])] + [c.rjust(w) for c, w in zip(r[1:], widths[1:])]
        lines.append("  ".join(cells).rstrip())
        if n == 0:
            lines.append("  ".join("-" * w for w in widths))
    lines += [f"skipped {fid}: {reason}" for fid, reason in skipped]
    return "\n".join(lines)

