"""Rich tables and plain-text lines for the CLI (imported by commands only when they render)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from rich import box
from rich.console import Console, Group
from rich.table import Table
from rich.text import Text

from .cost import Cost
from .ops import ChannelShuffle, Conv2d, Node, Permute
from .spec import LayerSpec, Target

CONVENTIONS = (
    "params: weights without bias. MACs: multiply-accumulates over every output position and "
    "kernel tap, zero padding included (fvcore/thop/ptflops convention); FLOPs = 2 x MACs "
    "(torch FlopCounterMode). MACs valid: only taps on real input pixels (XLA/JAX cost analysis). "
    "Coverage: share of the target's volumetric receptive field C_in x Kh x Kw seen by every output."
)


def fmt_int(value: int | None) -> str:
    """``1,234,567``, or ``-`` for a missing count."""
    return "-" if value is None else f"{value:,}"


def fmt_pair(p: tuple[int, int]) -> str:
    return f"{p[0]}x{p[1]}"


def target_line(target: Target, size_note: str = "") -> Text:
    t = target
    parts = [
        f"{t.in_channels} -> {t.out_channels} channels",
        f"kernel {fmt_pair(t.kernel_size)}",
        f"stride {fmt_pair(t.stride)}",
        f"padding {fmt_pair(t.padding)}",
    ]
    if t.input_size is not None:
        parts.append(f"input {fmt_pair(t.input_size)}{size_note} -> output {fmt_pair(t.output_size)}")  # type: ignore[arg-type]
    return Text("Target conv: " + ", ".join(parts), style="bold")


class FitTable(Table):
    """A table that names the columns it can lose on a narrow console, in the order they go (:func:`fit`)."""

    def __init__(self, *args: Any, optional: Sequence[str] = (), **kwargs: Any) -> None:
        kwargs.setdefault("box", box.SIMPLE_HEAD)
        kwargs.setdefault("pad_edge", False)
        kwargs.setdefault("show_edge", False)
        super().__init__(*args, **kwargs)
        self.optional = tuple(optional)


def _least_width(table: Table) -> int:
    """The fewest columns ``table`` takes without cutting a cell of a column that does not wrap."""
    console = Console(width=10**6, file=None, color_system=None)
    return console.measure(table).minimum


def fit(renderable: Any, width: int | None) -> Any:
    """``renderable`` made to fit ``width`` columns without cutting a number (``None``: any width).

    A :class:`FitTable` loses its optional columns, in order, until it fits; a table that still does not
    fit is printed whole as one block of ``column: value`` lines per row, so that no cell is ever cut.
    (The table's columns are changed in place.)

    >>> def table():
    ...     t = FitTable("family", "params", "class", optional=["class"])
    ...     t.add_row("depthwise-separable", "67,840", "C(C + K^2)")
    ...     return t
    >>> [c.header for c in fit(table(), 30).columns]
    ['family', 'params']
    >>> print(fit(table(), 12).plain)
    depthwise-separable
      params: 67,840
      class: C(C + K^2)
    """
    if width is None or not isinstance(renderable, Table):
        return renderable
    optional = list(getattr(renderable, "optional", ()))
    every = list(renderable.columns)
    while _least_width(renderable) > width and optional:
        name = optional.pop(0)
        renderable.columns[:] = [c for c in renderable.columns if c.header != name]
    if _least_width(renderable) <= width:
        return renderable
    renderable.columns[:] = every
    return _records(renderable)


def _records(table: Table) -> Text:
    """A table as text: per row its first cell, then ``  column: value`` for each other column."""
    columns = [(str(c.header), [str(v) for v in c.cells]) for c in table.columns]
    lines: list[str] = [str(table.title)] if table.title else []
    for i in range(table.row_count):
        lines.append(columns[0][1][i])
        lines += [f"  {name or 'check'}: {cells[i]}" for name, cells in columns[1:] if cells[i]]
    return Text("\n".join(lines))


def comparison_table(designs: list[Any], best: str | None, conv_cost: Cost | None,
                     latency: dict[str, dict[str, float]] | None = None) -> FitTable:
    """One row per family: params, ratio to the conv, MACs, MACs valid, stages, coverage, class (and latency).

    On a narrow console (:func:`fit`) the class column goes first, then the ratio and the stages; the exact
    counts are never dropped nor cut.
    """
    table = FitTable(padding=(0, 1), optional=("class", "x conv", "stages"))
    columns = ["params", "x conv", "MACs", "MACs valid", "stages", "coverage"]
    table.add_column("family", no_wrap=True)
    for name in columns:
        table.add_column(name, justify="right", no_wrap=True)
    table.add_column("class", no_wrap=True)
    latency = latency or {}
    lat_columns = sorted({k for v in latency.values() for k in v}, reverse=True)
    for name in lat_columns:
        table.add_column(name.replace("_ms", " ms"), justify="right", no_wrap=True)
    for d in designs:
        ratio = "-" if conv_cost is None or not conv_cost.params else f"{d.cost.params / conv_cost.params:.3f}"
        values = {"params": fmt_int(d.cost.params), "x conv": ratio, "MACs": fmt_int(d.cost.macs),
                  "MACs valid": fmt_int(d.cost.macs_valid), "stages": str(d.stages),
                  "coverage": "full" if d.coverage.full else f"{d.coverage.fraction:.1%}"}
        cells = [f"* {d.family}" if d.family == best else d.family] + [values[c] for c in columns]
        cells.append(d.asymptotic)
        cells += [f"{latency[d.family][k]:.2f}" if d.family in latency else "-" for k in lat_columns]
        style = "bold green" if d.family == best else ("dim" if not d.coverage.full else None)
        table.add_row(*cells, style=style)
    return table


def node_summary(node: Node, spec: LayerSpec) -> str:
    if isinstance(node, Conv2d):
        bits = [f"{node.in_channels}->{node.out_channels}", f"k{fmt_pair(node.kernel_size)}", f"g{node.groups}"]
        if node.stride != (1, 1):
            bits.append(f"s{fmt_pair(node.stride)}")
        if node.dilation != (1, 1):
            bits.append(f"d{fmt_pair(node.dilation)}")
        bits.append(f"p{fmt_pair(node.padding)}")
        if node.bias:
            bits.append("bias")
        return " ".join(bits)
    if isinstance(node, ChannelShuffle):
        return f"shuffle {node.groups} groups"
    if isinstance(node, Permute):
        head = ", ".join(map(str, node.perm[:6]))
        return f"perm [{head}{', ...' if len(node.perm) > 6 else ''}]"
    d = node.to_dict()
    extra = {k: v for k, v in d.items() if k not in ("id", "op", "inputs")}
    return " ".join(f"{k}={v}" for k, v in extra.items())


def stages_table(spec: LayerSpec) -> Table:
    """The ops of a design: one row per conv stage (channels, groups, kernel, dilation, stride, padding),
    with the permutation that feeds it."""
    table = FitTable()
    for name in ("stage", "channels", "groups", "kernel", "dilation", "stride", "padding", "input permutation"):
        if name == "input permutation":
            table.add_column(name, overflow="fold")
        else:
            table.add_column(name, justify="right", no_wrap=True)
    pending: list[str] = []
    stage = 0
    for nid in spec.order:
        node = spec.node_map[nid]
        if isinstance(node, Conv2d):
            stage += 1
            table.add_row(str(stage), f"{node.in_channels}->{node.out_channels}", str(node.groups),
                          fmt_pair(node.kernel_size), fmt_pair(node.dilation), fmt_pair(node.stride),
                          fmt_pair(node.padding), "; ".join(pending) or "-")
            pending = []
        elif node.op != "input":
            pending.append(node_summary(node, spec))
    if pending:
        table.add_row("out", "", "", "", "", "", "", "; ".join(pending))
    return table


def cost_lines(cost: Cost) -> Text:
    rows = [
        ("params (weights)", cost.params),
        ("bias params", cost.bias_params),
        ("MACs", cost.macs),
        ("MACs valid", cost.macs_valid),
        ("FLOPs = 2 x MACs", cost.flops),
        ("XLA FLOPs = 2 x MACs valid + bias adds + adds + norm ops"
         + (" - 1x1 depthwise multiplies" if cost.xla_multiplies else ""), cost.xla_flops),
    ]
    width = max(len(r[0]) for r in rows)
    return Text("\n".join(f"  {name:<{width}}  {fmt_int(v):>15}" for name, v in rows))


def certificate_text(cert: dict[str, Any]) -> Text:
    lines = [
        f"  lower bound   {cert['bound']:,.1f} {objective_text(cert.get('objective', 'params'))} "
        f"(gap {cert['gap']:.2f}% above it)",
        f"  searched      {cert['searched']:,} candidates",
    ]
    if cert.get("space"):
        lines.append(f"  space         {cert['space']}")
    if cert.get("method"):
        lines.append(f"  why optimal   {cert['method']}")
    return Text("\n".join(lines))


def group(*items: Any) -> Group:
    return Group(*items)


def network_renderables(plan: Any) -> list[Any]:
    """Per-layer table (name, target, choice, params and MACs before/after, coverage) and totals."""
    table = FitTable(optional=("cover",))
    table.add_column("layer", overflow="fold")
    table.add_column("target", overflow="fold")
    table.add_column("design", overflow="fold")
    lat = plan.latency_table is not None
    for name in ("params", "-> params", "MACs", "-> MACs", "cover") + (("ms", "-> ms") if lat else ()):
        table.add_column(name, justify="right", no_wrap=True)
    for lp, row in zip(plan.layers, plan.rows(), strict=True):
        ms = (f"{row['latency_ms_before']:.3f}", f"{row['latency_ms_after']:.3f}") if lat else ()
        table.add_row(row["name"], row["target"], row["choice"], fmt_int(row["params_before"]),
                      fmt_int(row["params_after"]), fmt_int(row["macs_before"]), fmt_int(row["macs_after"]),
                      f"{row['coverage']:.0%}", *ms, style=None if lp.replaced else "dim")
    totals = plan.totals()
    lines = [f"{plan.network}: policy {plan.policy}, objective {plan.objective}"
             + (f", budget {budget_text(plan.budget)}" if plan.budget else "")
             + f"; {totals['replaced_layers']} of {totals['layers']} convs replaced"]
    for key, label in (("total_params", "conv params (weights + bias)"), ("macs", "conv MACs"),
                       ("macs_valid", "conv MACs valid")):
        t = totals[key]
        lines.append(f"  {label:<28} {fmt_int(t['before']):>15} -> {fmt_int(t['after']):>15}  ({t['ratio']:.1%})")
    if lat:
        t = totals["latency_s"]
        lines.append(f"  {'conv latency, predicted (ms)':<28} {t['before'] * 1e3:>15.3f} -> {t['after'] * 1e3:>15.3f}  "
                     f"({t['ratio']:.1%}; sum over layers, table {t['table']})")
    if plan.bound is not None:
        unit = (f"{plan.bound * 1e3:,.3f} ms" if plan.objective == "latency" else f"{plan.bound:,.0f}")
        lines.append(f"  budget optimiser lower bound on the objective: {unit}")
    kept = {lp.reason for lp in plan.layers if not lp.replaced}
    lines += [f"  kept: {reason}" for reason in sorted(kept)]
    return [table, Text("\n".join(lines)), Text(CONVENTIONS, style="dim")]


def budget_text(budget: dict[str, float]) -> str:
    """A plan's budget in words: ``{"latency": 0.5}`` -> ``"at most 50% of the convs' predicted latency"``.

    >>> budget_text({"params": 0.2})
    "at most 20% of the convs' params"
    """
    what = {"params": "params", "macs": "MACs", "latency": "predicted latency"}
    return "; ".join(f"at most {frac * 100:.4g}% of the convs' {what.get(k, k)}" for k, frac in budget.items())


def plural(n: int, word: str) -> str:
    """``plural(1, "stage")`` -> ``"1 stage"``, ``plural(2, "stage")`` -> ``"2 stages"``."""
    return f"{n} {word}" if n == 1 else f"{n} {word}s"


def objective_text(objective: str) -> str:
    """An objective as its command-line flag spells it (``macs_valid`` -> ``macs-valid``)."""
    return objective.replace("_", "-")


def checks_table(report: Any) -> Table:
    """Closed form vs measured, one row per backend and quantity."""
    table = FitTable(title=f"numeric check at {fmt_pair(report.input_size)}, batch {report.batch}")
    for name in ("backend", "quantity", "closed form", "measured", ""):
        table.add_column(name, no_wrap=True)
    for c in report.checks:
        table.add_row(c.backend, c.quantity, str(c.expected), str(c.measured), "ok" if c.ok else "MISMATCH",
                      style=None if c.ok else "bold red")
    for name, reason in report.skipped.items():
        table.add_row(name, "skipped", reason, "", "")
    return table


def solution_renderables(solution: Any, title: str = "Optimal separable convolution") -> list[Any]:
    """The optimal separable convolution: its stages, cost, verified coverage and certificate."""
    cert = solution.certificate.to_dict()
    return [
        Text(f"\n{title} ({solution.spec.family}, {plural(solution.spec.stages, 'stage')}, "
             f"objective {objective_text(cert.get('objective', 'params'))}):", style="bold"),
        stages_table(solution.spec),
        cost_lines(solution.cost),
        Text(f"  receptive field: {solution.coverage.describe()} (verified exactly)"),
        Text("Certificate:", style="bold"),
        certificate_text(cert),
    ]


def pareto_table(rows: list[dict[str, Any]]) -> Table:
    """The Pareto front's rows (:func:`osc_design.compare.pareto_rows`), one per design."""
    table = FitTable(title="Pareto front over (params, MACs, stages)", optional=("MACs valid",))
    for name in ("stages", "params", "MACs", "MACs valid", "coverage"):
        table.add_column(name, justify="right", no_wrap=True)
    for row in rows:
        table.add_row(str(row["stages"]), fmt_int(row["params"]), fmt_int(row["macs"]),
                      fmt_int(row["macs_valid"]), f"{row['coverage']:.0%}")
    return table
