"""Latency as a design objective: the fastest fully covering design, and budgets across objectives.

The candidate space (:func:`latency_candidates`) is stated, never implied:

1. every registered family's default design (:func:`osc_design.compare.compare`) that covers the
   target's whole receptive field (``coverage.full``) and has at most ``max_stages`` stages -- the plain
   convolution (family ``conv``) is always among them, so the latency-optimal design is never predicted
   slower than the convolution it replaces;
2. the OSC Pareto front over (params, MACs, stages) (:func:`osc_design.solver.pareto_front`, stage
   counts up to ``max_stages``), every member of which covers fully.

Nothing else is searched: the optimum is the argmin of the predicted latency over exactly this list,
which the result carries (:attr:`LatencySolution.candidates`, :attr:`LatencySolution.excluded`).

Choosing the smallest of many predictions favours whichever design the model underestimates most.
With ``refine=k`` the ``k`` designs with the lowest predictions are then measured end to end,
round-robin (:func:`~osc_design.latency.measure_many`), and the fastest *measured* one is chosen;
the measurements are kept in :attr:`LatencySolution.measured`.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any, Literal

from ..cost import Cost
from ..coverage import Coverage
from ..errors import InfeasibleDesignError, SpecError
from ..spec import LayerSpec, Target
from .model import LatencyModel, Measurement, MeasureFn, OnMiss, Prediction, latency_model, measure_many
from .opkeys import op_keys

__all__ = ["Candidate", "LatencySolution", "latency_candidates", "solve_latency", "solve_with_budget",
           "MINIMISE"]

MINIMISE = ("params", "macs", "latency")
"""What :func:`solve_with_budget` can minimise."""


@dataclass(frozen=True)
class Candidate:
    """One design of the candidate space.

    Attributes
    ----------
    name : str
        The family id for a registered family's design; ``"<family>/<N> stages/<objective>-optimal"`` for a
        Pareto-front design (the exact ``N``-stage optimum of that objective, e.g. ``"osc-2/2 stages/params-optimal"``).
    source : {"family", "pareto"}
        Which half of the space it comes from.
    spec : LayerSpec
    cost : Cost
    coverage : Coverage
    prediction : Prediction or None
        Its predicted latency (``None`` where the objective needed none).
    """

    name: str
    source: Literal["family", "pareto"]
    spec: LayerSpec
    cost: Cost
    coverage: Coverage
    prediction: Prediction | None = None

    @property
    def stages(self) -> int:
        """Depth in convolutions."""
        return self.spec.stages

    @property
    def seconds(self) -> float | None:
        """Predicted latency in seconds (``None`` without a prediction)."""
        return None if self.prediction is None else self.prediction.seconds

    def with_prediction(self, prediction: Prediction | None) -> Candidate:
        return Candidate(self.name, self.source, self.spec, self.cost, self.coverage, prediction)

    def row(self) -> dict[str, Any]:
        """Flat JSON-ready summary."""
        return {"name": self.name, "source": self.source, "family": self.spec.family, "stages": self.stages,
                "params": self.cost.params, "macs": self.cost.macs, "seconds": self.seconds,
                **({} if self.prediction is None else self.prediction.provenance)}


@dataclass(frozen=True)
class LatencySolution:
    """The chosen design and the space it was chosen from.

    Attributes
    ----------
    spec, cost, coverage :
        The chosen design (``coverage.full`` is true).
    name : str
        Its candidate name.
    prediction : Prediction or None
        Its predicted latency with provenance (``None`` when neither objective nor budget used latency).
    objective : str
        ``"latency"``, ``"params"`` or ``"macs"``.
    candidates : tuple of Candidate
        Every design considered, in the order of the space (families first, then the Pareto front).
    excluded : tuple of (str, str)
        Designs left out of the space, with the reason (partial coverage, too many stages, a family that
        cannot build this target).
    conv : Candidate
        The plain convolution (the reference for ``latency_at_most`` and :attr:`speedup`).
    budgets : dict
        The limits applied (``latency_s`` in seconds, ``params``, ``macs``), empty for :func:`solve_latency`.
    feasible : int
        How many candidates met the budgets.
    space : str
        The candidate space in words.
    measured : dict of str to Measurement
        End-to-end measurements by candidate name (``refine``), empty when the choice is by prediction
        alone.
    """

    spec: LayerSpec
    cost: Cost
    coverage: Coverage
    name: str
    prediction: Prediction | None
    objective: str
    candidates: tuple[Candidate, ...]
    excluded: tuple[tuple[str, str], ...]
    conv: Candidate
    budgets: dict[str, float] = field(default_factory=dict)
    feasible: int = 0
    space: str = ""
    measured: dict[str, Measurement] = field(default_factory=dict)

    @property
    def seconds(self) -> float | None:
        """Predicted latency of the chosen design (seconds)."""
        return None if self.prediction is None else self.prediction.seconds

    @property
    def measured_seconds(self) -> float | None:
        """Measured latency of the chosen design (seconds; ``None`` unless refined)."""
        m = self.measured.get(self.name)
        return None if m is None else m.seconds

    @property
    def speedup(self) -> float | None:
        """Predicted conv latency / predicted latency of the chosen design."""
        if self.prediction is None or self.conv.prediction is None or self.prediction.seconds <= 0:
            return None
        return self.conv.prediction.seconds / self.prediction.seconds

    @property
    def provenance(self) -> dict[str, int]:
        """Op-timing sources summed over every candidate's prediction."""
        out = {"cached": 0, "measured": 0, "interpolated": 0}
        for c in self.candidates:
            if c.prediction is not None:
                for k, v in c.prediction.provenance.items():
                    out[k] += v
        return out

    def describe(self) -> str:
        """One line: the design, its prediction and the space."""
        lat = "" if self.prediction is None else f", predicted {self.prediction.describe()}"
        sp = "" if self.speedup is None else f", {self.speedup:.2f}x the conv's speed"
        how = (f"; chosen by measurement among the best predicted of {len(self.candidates)} candidates, "
               f"measured {self.measured_seconds * 1e3:.3f} ms" if self.measured  # type: ignore[operator]
               else f"; chosen among {len(self.candidates)} candidates")
        return f"{self.name} ({self.spec.stages} stages, {self.cost.params:,} params){lat}{sp}{how}"

    def table(self) -> str:
        """Plain-text table of the candidates (name, stages, params, MACs, predicted ms, sources)."""
        head = ("candidate", "stages", "params", "macs", "pred ms", "meas ms", "cached/measured/interp")
        rows = [head]
        for c in self.candidates:
            p, m = c.prediction, self.measured.get(c.name)
            rows.append((("* " if c.spec is self.spec else "  ") + c.name, str(c.stages), f"{c.cost.params:,}",
                         "-" if c.cost.macs is None else f"{c.cost.macs:,}",
                         "-" if p is None else f"{p.seconds * 1e3:.3f}",
                         "-" if m is None else f"{m.seconds * 1e3:.3f}",
                         "-" if p is None else f"{p.cached}/{p.measured}/{p.interpolated}"))
        widths = [max(len(r[i]) for r in rows) for i in range(len(head))]
        lines = ["  ".join(v.ljust(w) if i == 0 else v.rjust(w) for i, (v, w) in enumerate(zip(r, widths, strict=True)))
                 for r in rows]
        lines.insert(1, "  ".join("-" * w for w in widths))
        lines += [f"excluded {n}: {why}" for n, why in self.excluded]
        return "\n".join(lines)

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "family": self.spec.family, "objective": self.objective,
                "seconds": self.seconds, "speedup": self.speedup, "budgets": dict(self.budgets),
                "feasible": self.feasible, "space": self.space,
                "prediction": None if self.prediction is None else self.prediction.to_dict(),
                "measured_seconds": self.measured_seconds,
                "candidates": [{**c.row(), "measured_seconds": None if c.name not in self.measured
                                else self.measured[c.name].seconds} for c in self.candidates],
                "excluded": [list(e) for e in self.excluded]}


def _check_target(target: Any, need_size: bool) -> Target:
    if not isinstance(target, Target):
        raise SpecError(f"`target` must be a Target, got {type(target).__name__}")
    if need_size and target.input_size is None:
        raise SpecError("latency and MACs need an input size: give the target an `input_size` "
                        "(e.g. Target(256, 256, 7, input_size=14))")
    return target


def _check_max_stages(max_stages: Any) -> int | None:
    if max_stages is not None and (type(max_stages) is not int or max_stages < 1):
        raise SpecError(f"`max_stages` (={max_stages!r}) must be a positive integer or None")
    return max_stages


def latency_candidates(target: Target, *, max_stages: int | None = None, families: Iterable[str] | None = None,
                       pareto: bool = True, verify: str = "full"
                       ) -> tuple[list[Candidate], list[tuple[str, str]]]:
    """The candidate space of :func:`solve_latency` (see the module docstring) and what was left out.

    Parameters
    ----------
    target : Target
    max_stages : int, optional
        Largest depth in convolutions (family designs deeper than this are excluded; the Pareto front
        is computed up to it).
    families : iterable of str, optional
        Registered family ids to consider (default all); ``conv`` is added when missing.
    pareto : bool
        Add the OSC Pareto front.
    verify : {"full", "fast", "none"}
        Coverage check of the Pareto-front designs (see :func:`osc_design.solver.solve`).

    Returns
    -------
    (list of Candidate, list of (str, str))
        The candidates (families in registration order, then the front by stages) and the excluded
        designs with the reason. Results are cached per arguments (the designs are immutable).
    """
    _check_target(target, False)
    max_stages = _check_max_stages(max_stages)
    if families is not None:
        families = [families] if isinstance(families, str) else list(families)
        if "conv" not in families:
            families = ["conv", *families]
    if verify not in ("full", "fast", "none"):
        raise SpecError(f"`verify` (={verify!r}) must be one of full, fast, none")
    cands, excluded = _candidates(target, max_stages, None if families is None else tuple(families), pareto, verify)
    return list(cands), list(excluded)


@functools.lru_cache(maxsize=256)
def _candidates(target: Target, max_stages: int | None, families: tuple[str, ...] | None, pareto: bool,
                verify: str) -> tuple[tuple[Candidate, ...], tuple[tuple[str, str], ...]]:
    """:func:`latency_candidates`, cached per arguments (the designs are immutable)."""
    from ..compare import compare
    from ..solver import pareto_front

    cmp = compare(target, families)
    out: list[Candidate] = []
    excluded: list[tuple[str, str]] = [(fid, f"cannot build this target: {why}") for fid, why in cmp.skipped]
    for d in cmp:
        if not d.coverage.full:
            excluded.append((d.family, f"covers {100 * d.coverage.fraction:.2f}% of the receptive field, not all"))
        elif d.family != "conv" and max_stages is not None and d.stages > max_stages:
            excluded.append((d.family, f"{d.stages} stages > max_stages={max_stages}"))
        else:
            out.append(Candidate(d.family, "family", d.spec, d.cost, d.coverage))
    if pareto:
        try:
            front = pareto_front(target, max_stages=max_stages, verify=verify)
        except InfeasibleDesignError as exc:
            excluded.append(("pareto_front", str(exc)))
            front = []
        for s in front:
            name = f"{s.spec.family}/{s.spec.stages} stages/{s.spec.options_dict.get('objective', '?')}-optimal"
            if not s.coverage.full:  # pragma: no cover - the solver returns fully covering designs
                excluded.append((name, "partial coverage"))
                continue
            out.append(Candidate(name, "pareto", s.spec, s.cost, s.coverage))
    return tuple(out), tuple(excluded)


def _space_text(cands: list[Candidate], excluded: list[tuple[str, str]], max_stages: int | None,
                model: LatencyModel | None) -> str:
    fam = [c.name for c in cands if c.source == "family"]
    par = [c for c in cands if c.source == "pareto"]
    cap = "" if max_stages is None else f" with at most {max_stages} stages"
    text = (f"{len(cands)} candidates{cap}: {len(fam)} registered-family designs with full coverage "
            f"({', '.join(fam)}) and {len(par)} OSC Pareto-front designs over (params, macs, stages)"
            f"{' (stages ' + ', '.join(str(c.stages) for c in par) + ')' if par else ''}")
    if excluded:
        text += f"; excluded: {', '.join(n for n, _ in excluded)}"
    if model is not None:
        text += f"; latency predicted per op in table {model.table_key.id} (on_miss={model.on_miss!r})"
    return text


def _model(model: LatencyModel | None, backend: str, device: str, batch: int, dtype: str, threads: int | None,
           on_miss: OnMiss, cache_dir: Any, measure_fn: MeasureFn | None) -> LatencyModel:
    if model is not None:
        if not isinstance(model, LatencyModel):
            raise SpecError(f"`model` must be a LatencyModel, got {type(model).__name__}")
        return model
    return latency_model(backend, device, batch=batch, dtype=dtype, threads=threads, on_miss=on_miss,
                         cache_dir=cache_dir, measure_fn=measure_fn)


def _predict_all(cands: list[Candidate], model: LatencyModel) -> list[Candidate]:
    fresh = model.prefetch(c.spec for c in cands)  # the missing ops of every candidate, timed round-robin
    return [c.with_prediction(model.predict(c.spec, fresh=fresh)) for c in cands]


def solve_latency(target: Target, backend: str = "torch", device: str = "cpu", batch: int = 8,
                  max_stages: int | None = None, *, model: LatencyModel | None = None,
                  families: Iterable[str] | None = None, dtype: str = "float32", threads: int | None = None,
                  on_miss: OnMiss = "measure", cache_dir: Any = None, measure_fn: MeasureFn | None = None,
                  verify: str = "full", refine: int = 0) -> LatencySolution:
    """The fully covering design with the lowest predicted latency on ``backend`` / ``device``.

    Parameters
    ----------
    target : Target
        The convolution to replace; needs an ``input_size``.
    backend : {"torch", "jax", "onnxruntime"}
    device : {"cpu", "cuda"}
    batch : int
        Samples per call.
    max_stages : int, optional
        Largest depth in convolutions of a candidate (the plain conv is always a candidate).
    model : LatencyModel, optional
        Use this model (then ``backend`` .. ``measure_fn`` are ignored); default a new
        :class:`~osc_design.latency.LatencyModel` with these arguments.
    families : iterable of str, optional
        Registered families to consider (default all; ``conv`` is always added).
    dtype, threads, on_miss, cache_dir, measure_fn
        See :class:`~osc_design.latency.LatencyModel`.
    verify : {"full", "fast", "none"}
        Coverage check of the Pareto-front designs.
    refine : int
        Measure the ``refine`` candidates with the lowest predicted latency end to end (round-robin,
        with the model's timing policy per design) and choose the fastest measured; ``0`` (default)
        chooses by prediction alone. Each measured design costs about ``policy.budget_s`` seconds.

    Returns
    -------
    LatencySolution
        The argmin of the predicted latency over :attr:`~LatencySolution.candidates` (ties: fewer params,
        then the earlier candidate) -- with ``refine``, of the measured latency over the refined ones --,
        every candidate's prediction with its provenance, and the space.

    Raises
    ------
    SpecError
        Bad arguments, or a target without an input size.
    InfeasibleDesignError
        An op missing from the cache with ``on_miss="error"``.
    """
    _check_target(target, True)
    max_stages = _check_max_stages(max_stages)
    if type(refine) is not int or refine < 0:
        raise SpecError(f"`refine` (={refine!r}) must be a non-negative integer")
    m = _model(model, backend, device, batch, dtype, threads, on_miss, cache_dir, measure_fn)
    cands, excluded = latency_candidates(target, max_stages=max_stages, families=families, verify=verify)
    cands = _predict_all(cands, m)
    order = sorted(range(len(cands)), key=lambda j: (cands[j].seconds, cands[j].cost.params, j))
    best, measured, note = (cands[order[0]], {}, "") if not refine else _refine(cands, order, m, refine)
    conv = next(c for c in cands if c.name == "conv")
    space = _space_text(cands, excluded, max_stages, m) + note
    return LatencySolution(best.spec, best.cost, best.coverage, best.name, best.prediction, "latency",
                           tuple(cands), tuple(excluded), conv, {}, len(cands), space, measured)


def _refine(cands: list[Candidate], order: list[int], m: LatencyModel,
            refine: int) -> tuple[Candidate, dict[str, Measurement], str]:
    """Measure the ``refine`` best predicted distinct designs (``order``: best first) end to end, round-robin.

    Designs with the same ops in the same order (slak and depthwise-separable at small kernels) are
    measured once. Returns the fastest measured, every candidate's measurement by name, and what the
    space description says about it.
    """
    sig = {c.name: tuple(op.id for _, op in op_keys(c.spec) if op is not None) for c in cands}
    top: dict[tuple[str, ...], Candidate] = {}
    for j in order:
        if len(top) == refine:
            break
        top.setdefault(sig[cands[j].name], cands[j])
    ctx = m.context
    runs = measure_many([c.spec for c in top.values()], ctx.backend, ctx.batch, device=ctx.device,
                        dtype=ctx.dtype, threads=ctx.threads, policy=m.policy)
    by_sig = dict(zip(top, runs, strict=True))
    measured = {c.name: by_sig[sig[c.name]] for c in cands if sig[c.name] in by_sig}
    note = (f"; the {len(by_sig)} best predicted distinct designs measured end to end, round-robin, the fastest "
            "measured chosen")
    return min(top.values(), key=lambda c: measured[c.name].seconds), measured, note


def _limit(value: Any, name: str, integer: bool) -> float | None:
    if value is None:
        return None
    ok = (type(value) is int) if integer else (isinstance(value, (int, float)) and not isinstance(value, bool))
    if not ok or not math.isfinite(value) or value <= 0:
        kind = "a positive integer" if integer else "a positive number"
        raise SpecError(f"`{name}` (={value!r}) must be {kind} or None")
    return value


def solve_with_budget(target: Target, minimise: str = "params", *, latency_at_most: float | None = None,
                      params_at_most: int | None = None, macs_at_most: int | None = None,
                      backend: str = "torch", device: str = "cpu", batch: int = 8, max_stages: int | None = None,
                      model: LatencyModel | None = None, families: Iterable[str] | None = None,
                      dtype: str = "float32", threads: int | None = None, on_miss: OnMiss = "measure",
                      cache_dir: Any = None, measure_fn: MeasureFn | None = None,
                      verify: str = "full") -> LatencySolution:
    """The candidate minimising one objective within budgets on the others.

    E.g. the smallest design (params) at most half as slow as the plain conv:
    ``solve_with_budget(target, "params", latency_at_most=0.5, backend="torch")``.

    Parameters
    ----------
    target : Target
        Needs an ``input_size`` when MACs or latency are involved.
    minimise : {"params", "macs", "latency"}
        The objective (params: weights without bias; macs: padding taps included; latency: predicted).
    latency_at_most : float, optional
        Largest predicted latency as a fraction of the plain conv's predicted latency (``0.5``: at least
        twice as fast).
    params_at_most, macs_at_most : int, optional
        Largest weight count / MAC count (per sample).
    backend .. verify
        As for :func:`solve_latency`; a latency model is built only when latency is minimised or bounded.

    Returns
    -------
    LatencySolution
        ``objective`` is ``minimise``; ``budgets`` holds the absolute limits (``latency_s`` in seconds);
        ties are broken by predicted latency (when predicted), then params, then candidate order.

    Raises
    ------
    SpecError
        Bad arguments.
    InfeasibleDesignError
        No candidate meets every budget; the message gives the best each budget allows on its own.
    """
    _check_minimise(minimise)
    lat = _limit(latency_at_most, "latency_at_most", False)
    par = _limit(params_at_most, "params_at_most", True)
    mac = _limit(macs_at_most, "macs_at_most", True)
    uses_latency = minimise == "latency" or lat is not None
    _check_target(target, uses_latency or minimise == "macs" or mac is not None)
    max_stages = _check_max_stages(max_stages)
    m = _model(model, backend, device, batch, dtype, threads, on_miss, cache_dir, measure_fn) if uses_latency else None
    cands, excluded = latency_candidates(target, max_stages=max_stages, families=families, verify=verify)
    cands = cands if m is None else _predict_all(cands, m)
    conv = next(c for c in cands if c.name == "conv")
    budgets = _budgets(lat, par, mac, conv)
    feasible = [j for j, c in enumerate(cands) if not _over_budget(c, budgets)]
    if not feasible:
        raise InfeasibleDesignError(f"no candidate of {len(cands)} for {target.describe()} meets every budget ("
                                    + "; ".join(_best_within(cands, budgets, conv)) + ")")
    best = cands[min(feasible, key=lambda j: _rank(cands[j], j, minimise))]
    return LatencySolution(best.spec, best.cost, best.coverage, best.name, best.prediction, minimise,
                           tuple(cands), tuple(excluded), conv, budgets, len(feasible),
                           _space_text(cands, excluded, max_stages, m))


def _check_minimise(minimise: Any) -> None:
    if minimise not in MINIMISE:
        raise SpecError(f"`minimise` (={minimise!r}) must be one of {', '.join(MINIMISE)}")


def _rank(c: Candidate, j: int, minimise: str) -> tuple:
    """Sort key of candidate ``j``: the objective, then predicted latency (when predicted), params, order."""
    value = {"params": c.cost.params, "macs": c.cost.macs, "latency": c.seconds}[minimise]
    return (value, c.seconds if c.seconds is not None else 0.0, c.cost.params, j)


def _budgets(lat: float | None, par: float | None, mac: float | None, conv: Candidate) -> dict[str, float]:
    """The absolute limits: ``latency_s`` (and ``latency_fraction``), ``params``, ``macs``, where given."""
    budgets: dict[str, float] = {}
    if lat is not None:
        budgets["latency_s"] = lat * conv.seconds  # type: ignore[operator]
        budgets["latency_fraction"] = lat
    if par is not None:
        budgets["params"] = par
    if mac is not None:
        budgets["macs"] = mac
    return budgets


def _over_budget(c: Candidate, budgets: dict[str, float]) -> list[str]:
    """The budgets ``c`` exceeds: ``"latency"``, ``"params"``, ``"macs"``."""
    why = []
    if "latency_s" in budgets and c.seconds > budgets["latency_s"]:  # type: ignore[operator]
        why.append("latency")
    if "params" in budgets and c.cost.params > budgets["params"]:
        why.append("params")
    if "macs" in budgets and c.cost.macs > budgets["macs"]:  # type: ignore[operator]
        why.append("macs")
    return why


def _best_within(cands: list[Candidate], budgets: dict[str, float], conv: Candidate) -> list[str]:
    """Per budget, the best any candidate does on its own (for the message when none meets them all)."""
    parts = []
    if "latency_s" in budgets:
        fastest = min(cands, key=lambda c: c.seconds)  # type: ignore[arg-type,return-value]
        parts.append(f"latency <= {budgets['latency_fraction']:g} x conv ({budgets['latency_s'] * 1e3:.3f} ms): the "
                     f"fastest candidate, {fastest.name}, is predicted at "
                     f"{fastest.seconds / conv.seconds:.3f} x conv")  # type: ignore[operator]
    if "params" in budgets:
        small = min(cands, key=lambda c: c.cost.params)
        parts.append(f"params <= {budgets['params']:,}: the smallest candidate, {small.name}, has "
                     f"{small.cost.params:,}")
    if "macs" in budgets:
        cheap = min(cands, key=lambda c: c.cost.macs)  # type: ignore[arg-type,return-value]
        parts.append(f"macs <= {budgets['macs']:,}: the cheapest candidate, {cheap.name}, has {cheap.cost.macs:,}")
    return parts
