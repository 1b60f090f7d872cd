"""Rich tables and plain-text lines for the CLI (imported by commands only when they render)."""

from __future__ import annotations

from typing import Any

from rich import box
from rich.console import Group
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


def comparison_table(designs: list[Any], best: str | None, conv_cost: Cost | None, width: int = 120,
                     latency: dict[str, dict[str, float]] | None = None) -> Table:
    """One row per family: params, ratio to the conv, MACs, MACs valid, stages, coverage, class.

    Narrow consoles lose the class column first (below 106 columns), then MACs valid and the ratio
    (below 92), so that exact counts are never cut.
    """
    table = Table(box=box.SIMPLE_HEAD, pad_edge=False, show_edge=False, padding=(0, 1))
    columns = ["params", "x conv", "MACs", "MACs valid", "stages", "coverage"]
    if width < 92:
        columns.remove("MACs valid")
        columns.remove("x conv")
    table.add_column("family", no_wrap=True)
    for name in columns:
        table.add_column(name, justify="right", no_wrap=True)
    if width >= 106:
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
        if width >= 106:
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
    table = Table(box=box.SIMPLE_HEAD, pad_edge=False, show_edge=False)
    for name in ("stage", "channels", "groups", "kernel", "dilation", "stride", "padding", "input permutation"):
        table.add_column(name, justify="right" if name != "input permutation" else "left")
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
        ("XLA FLOPs = 2 x MACs valid + bias adds + adds + norm ops", cost.xla_flops),
    ]
    width = max(len(r[0]) for r in rows)
    return Text("\n".join(f"  {name:<{width}}  {fmt_int(v):>15}" for name, v in rows))


def certificate_text(cert: dict[str, Any]) -> Text:
    lines = [
        f"  lower bound   {cert['bound']:,.1f} {cert.get('objective', 'params')} "
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
    table = Table(box=box.SIMPLE_HEAD, pad_edge=False, show_edge=False)
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
             + (f", budget {plan.budget}" if plan.budget else "")
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


def checks_table(report: Any) -> Table:
    """Closed form vs measured, one row per backend and quantity."""
    table = Table(box=box.SIMPLE_HEAD, pad_edge=False, show_edge=False,
                  title=f"numeric check at {fmt_pair(report.input_size)}, batch {report.batch}")
    for name in ("backend", "quantity", "closed form", "measured", ""):
        table.add_column(name, overflow="fold")
    for c in report.checks:
        table.add_row(c.backend, c.quantity, str(c.expected), str(c.measured), "ok" if c.ok else "MISMATCH",
                      style=None if c.ok else "bold red")
    for name, reason in report.skipped.items():
        table.add_row(name, "skipped", reason, "", "")
    return table


def solution_renderables(solution: Any) -> list[Any]:
    """The optimal separable convolution: its stages, cost, verified coverage and certificate."""
    cert = solution.certificate.to_dict()
    return [
        Text(f"\nOptimal separable convolution ({solution.spec.family}, {solution.spec.stages} stages, "
             f"objective {cert.get('objective', 'params')}):", style="bold"),
        stages_table(solution.spec),
        cost_lines(solution.cost),
        Text(f"  receptive field: {solution.coverage.describe()} (verified exactly)"),
        Text("Certificate:", style="bold"),
        certificate_text(cert),
    ]


def pareto_table(rows: list[dict[str, Any]]) -> Table:
    """The Pareto front's rows (:func:`osc_design.compare.pareto_rows`), one per design."""
    table = Table(title="Pareto front over (params, MACs, stages)")
    for name in ("stages", "params", "MACs", "MACs valid", "coverage"):
        table.add_column(name, justify="right")
    for row in rows:
        table.add_row(str(row["stages"]), fmt_int(row["params"]), fmt_int(row["macs"]),
                      fmt_int(row["macs_valid"]), f"{row['coverage']:.0%}")
    return table
