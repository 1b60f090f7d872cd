"""Latency model of layer specs from per-op timings, with measurement on demand or interpolation.

How a spec's latency is predicted
---------------------------------
Every op of the spec is keyed at its real shapes (:func:`~osc_design.latency.opkeys.op_keys`) and
looked up in the cache table of the model's context; a missing op is, by ``on_miss``:

* ``"measure"`` (default): timed in isolation now and written to the cache (the designs compared by
  :func:`~osc_design.latency.solve_latency` have all their missing ops timed together, round-robin:
  :meth:`LatencyModel.prefetch`);
* ``"interpolate"``: estimated from the table's ops of the same family (see :meth:`LatencyModel.interpolate`);
  measured instead when the table holds no op of that kind at all;
* ``"error"``: an :class:`~osc_design.errors.InfeasibleDesignError`.

The prediction composes the op timings with the backend's per-call overhead ``c`` (the end-to-end
latency of a module with no op, the ``call()`` pseudo-op, timed like an op):

* PyTorch (eager): ``c + sum_i t_i``: each op is its own kernel launch, as in isolation (and the
  intra-op thread pool stays awake between back-to-back ops, in isolation as in the module);
* JAX (one ``jax.jit`` program): each op timed in isolation paid one dispatch, and each conv also
  the start of XLA's intra-op thread pool (about 0.1 ms on a busy 2-core CPU), which a program pays
  once. With ``b`` the isolated latency of a tiny conv (``8 -> 8``, ``1 x 1`` at ``1 x 1``, the
  ``conv-baseline()`` term), the prediction is ``b + sum_convs max(t_i - b, 0) + sum_others
  max(t_j - c, 0)`` (``c + sum_j max(t_j - c, 0)`` without convs);
* onnxruntime (one ``InferenceSession`` per module): ops that keep their input's shape
  (:func:`~osc_design.latency.opkeys.chainable`) are timed inside a graph (the difference of two chain
  lengths, :func:`~osc_design.latency.timing.marginal`), without the session call and what a graph pays
  at its edges; each other op timed alone paid one session call, which the module pays once. The
  module pays its edges once: half the edge cost ``e = alone - t`` (the op timed alone minus its cost
  in a graph; 0 for ops timed alone) of its first op and half that of its last:
  ``c + sum_chained t_i + sum_others max(t_j - c, 0) + (e_first + e_last) / 2``.

Each term is the op's median (or, with ``statistic="min"``, its fastest call). The spread of a
prediction is the square root of the sum of the squared spreads (interquartile ranges) of its terms.
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any, Literal

from ..errors import InfeasibleDesignError, SpecError
from ..spec import GraphBuilder, LayerSpec, Target
from .cache import LatencyCache, TableKey, entry_timing
from .opkeys import BASELINE_CONV_KEY, CALL, CALL_KEY, OpKey, chainable, op_keys, standard_grid
from ..backends import usable_cpus
from .timing import Context, Timing, TimingPolicy, measure_op, measure_ops, measure_spec, measure_specs

__all__ = [
    "MeasureFn",
    "OpLatency",
    "Prediction",
    "Measurement",
    "CalibrationReport",
    "LatencyModel",
    "latency_model",
    "predict",
    "measure",
    "measure_many",
    "calibrate",
    "call_spec",
]

MeasureFn = Callable[[OpKey, Context], "Timing | float"]
"""Times one op in a context: returns a :class:`Timing` or a number of seconds (spread 0, one run)."""

Source = Literal["cached", "measured", "interpolated", "free"]
OnMiss = Literal["measure", "interpolate", "error"]
_ON_MISS = ("measure", "interpolate", "error")
Statistic = Literal["median", "min"]
_STATISTICS = ("median", "min")


@dataclass(frozen=True)
class OpLatency:
    """One node's share of a prediction.

    Attributes
    ----------
    node : str
        The node id (``"call()"`` for the per-call overhead).
    op : OpKey or None
        Its key (``None`` for free ops: input, identity, identity permutations).
    seconds, spread : float
        Its isolated timing (the model's statistic -- median or minimum -- and interquartile range, seconds).
    source : {"cached", "measured", "interpolated", "free"}
        Where the timing came from.
    """

    node: str
    op: OpKey | None
    seconds: float
    spread: float
    source: Source


@dataclass(frozen=True)
class Prediction:
    """Predicted end-to-end latency of one spec in one context.

    Attributes
    ----------
    seconds : float
        Predicted latency of one call (a batch of ``context.batch`` samples), seconds: the median, or the
        fastest call for a model with ``statistic="min"``.
    spread : float
        Root-sum-square of the terms' spreads (interquartile ranges), seconds.
    cached, measured, interpolated : int
        How many timed ops (the ``call()`` overhead and, for JAX, the ``conv-baseline()`` included)
        came from the cache, were measured on demand, or were interpolated.
    ops : tuple of OpLatency
        Every node's term, after the overhead terms (``call()``, and ``conv-baseline()`` for JAX).
    context : Context
        Backend, device, dtype, batch and threads.
    """

    seconds: float
    spread: float
    cached: int
    measured: int
    interpolated: int
    ops: tuple[OpLatency, ...]
    context: Context

    @property
    def provenance(self) -> dict[str, int]:
        """``{"cached": n, "measured": n, "interpolated": n}``."""
        return {"cached": self.cached, "measured": self.measured, "interpolated": self.interpolated}

    def describe(self) -> str:
        """e.g. ``12.31 ms +- 0.40 (3 cached, 1 measured, 0 interpolated)``."""
        return (f"{self.seconds * 1e3:.3f} ms +- {self.spread * 1e3:.3f} ({self.cached} cached, {self.measured} "
                f"measured, {self.interpolated} interpolated)")

    def to_dict(self) -> dict[str, Any]:
        return {"seconds": self.seconds, "spread": self.spread, **self.provenance,
                "ops": [{"node": o.node, "op": None if o.op is None else o.op.id, "seconds": o.seconds,
                         "spread": o.spread, "source": o.source} for o in self.ops]}


@dataclass(frozen=True)
class Measurement:
    """Measured end-to-end latency of one spec's module.

    Attributes
    ----------
    seconds : float
        Median over the timed calls (seconds per call of ``context.batch`` samples).
    spread : float
        Interquartile range of the calls.
    runs : int
        Timed calls.
    context : Context
    best : float or None
        The fastest call (compare with a prediction of ``statistic="min"``).
    """

    seconds: float
    spread: float
    runs: int
    context: Context
    best: float | None = None

    def value(self, statistic: str = "median") -> float:
        """:attr:`seconds`, or :attr:`best` for ``statistic="min"``."""
        return self.best if statistic == "min" and self.best is not None else self.seconds

    @property
    def median(self) -> float:
        """The same as :attr:`seconds`."""
        return self.seconds

    def describe(self) -> str:
        """e.g. ``12.31 ms +- 0.40 (25 runs)``."""
        return f"{self.seconds * 1e3:.3f} ms +- {self.spread * 1e3:.3f} ({self.runs} runs)"


@dataclass(frozen=True)
class CalibrationReport:
    """What :func:`calibrate` did: ``measured`` new ops, ``skipped`` already cached ones, out of ``total``."""

    measured: int
    skipped: int
    total: int
    table: str
    path: str
    seconds: float


def _check_on_miss(on_miss: Any) -> str:
    if on_miss not in _ON_MISS:
        raise SpecError(f"`on_miss` (={on_miss!r}) must be one of {', '.join(_ON_MISS)}")
    return on_miss


def _as_timing(value: Any, op: OpKey) -> Timing:
    if isinstance(value, Timing):
        t = value
    elif isinstance(value, (int, float)) and not isinstance(value, bool):
        t = Timing(float(value), 0.0, 1, float(value))
    else:
        raise SpecError(f"the measure function returned {value!r} for {op.id}; expected a Timing or seconds")
    if not (math.isfinite(t.median) and t.median >= 0 and math.isfinite(t.spread) and t.spread >= 0):
        raise SpecError(f"the measure function returned an invalid timing {t} for {op.id}")
    return t


def call_spec(channels: int = 8) -> LayerSpec:
    """The empty module timed as the ``call()`` pseudo-op: a ``1 x 1`` input passed through an identity."""
    t = Target(channels, channels, (1, 1), input_size=(1, 1))
    b = GraphBuilder(t)
    return b.build(b.identity(b.input), family="call")


def _default_threads(backend: str, device: str, threads: int | None) -> int:
    if threads is None:
        return usable_cpus()
    if type(threads) is not int or threads < 1:
        raise SpecError(f"`threads` (={threads!r}) must be a positive integer")
    return threads


def _context(backend: str, device: str, batch: int, dtype: str, threads: int | None) -> Context:
    return Context(backend, device, dtype, batch, _default_threads(backend, device, threads))


class LatencyModel:
    """Per-op latency table of one context, backed by the cache, that predicts whole specs.

    Parameters
    ----------
    backend : {"torch", "jax", "onnxruntime"}
    device : {"cpu", "cuda"}
    batch : int
        Samples per call.
    dtype : {"float32", "float16", "bfloat16"}
    threads : int, optional
        CPU threads (PyTorch: ``torch.set_num_threads``); default the usable cores. JAX on CPU takes
        only the usable cores (XLA fixes its pool at start-up).
    on_miss : {"measure", "interpolate", "error"}
        What to do with an op the cache lacks (see the module docstring).
    cache : LatencyCache, str or Path, optional
        The cache, or its directory; default :func:`~osc_design.latency.cache.default_cache_dir`. Models
        given the same :class:`~osc_design.latency.cache.LatencyCache` see each other's measurements.
    measure_fn : callable, optional
        ``measure_fn(op, context) -> Timing | seconds`` replaces the real timing (tests, other devices).
    policy : TimingPolicy, optional
        Warm-up and repetitions of each real measurement.
    flush_every : int
        On-demand measurements are written to the cache after this many (and by :meth:`flush`, which
        :func:`predict` calls at the end).
    statistic : {"median", "min"}
        Which statistic of each op timing a prediction adds up: the median (default), or the fastest call,
        which on a machine shared with other work estimates the undisturbed latency (compare it with
        :attr:`Measurement.best`). Both are measured and cached every time.
    progress : callable, optional
        ``progress(done, total)`` as :meth:`prefetch` times missing ops (in rounds of up to
        :attr:`PREFETCH_CHUNK` ops), e.g. for a progress bar.

    Examples
    --------
    >>> model = LatencyModel("torch", measure_fn=lambda op, ctx: 1e-9 * op.macs + 1e-5)  # doctest: +SKIP
    """

    def __init__(self, backend: str = "torch", device: str = "cpu", *, batch: int = 8, dtype: str = "float32",
                 threads: int | None = None, on_miss: OnMiss = "measure",
                 cache: LatencyCache | str | Any = None, measure_fn: MeasureFn | None = None,
                 policy: TimingPolicy | None = None, flush_every: int = 8,
                 statistic: Statistic = "median", progress: Callable[[int, int], Any] | None = None) -> None:
        self.context = _context(backend, device, batch, dtype, threads)
        self.on_miss = _check_on_miss(on_miss)
        if statistic not in _STATISTICS:
            raise SpecError(f"`statistic` (={statistic!r}) must be one of {', '.join(_STATISTICS)}")
        self.statistic = statistic
        self.cache = cache if isinstance(cache, LatencyCache) else LatencyCache(cache)
        self.table_key = TableKey.of(self.context)
        self.measure_fn = measure_fn
        self.policy = TimingPolicy() if policy is None else policy
        if type(flush_every) is not int or flush_every < 1:
            raise SpecError(f"`flush_every` (={flush_every!r}) must be a positive integer")
        self.flush_every = flush_every
        self.progress = progress
        self._pending: dict[OpKey, Timing] = {}
        self._known: dict[str, tuple[OpKey, Timing]] | None = None
        self._generation = -1
        self._parsed: dict[str, OpKey] = {}
        self._lock = threading.Lock()

    def __repr__(self) -> str:
        return (f"LatencyModel({self.table_key.id!r}, on_miss={self.on_miss!r}, statistic={self.statistic!r}, "
                f"cache={str(self.cache.path)!r})")

    # -- the table ---------------------------------------------------------------------------
    def known(self) -> dict[str, tuple[OpKey, Timing]]:
        """Every timing of this context: the cache table plus measurements not yet flushed."""
        if self._known is None or self._generation != self.cache.generation:
            self._generation = self.cache.generation
            known = {}
            for oid, entry in self.cache.table(self.table_key).items():
                op = self._parsed.get(oid)
                if op is None:
                    try:
                        op = self._parsed[oid] = OpKey.from_dict(entry["op"])
                    except SpecError:
                        continue
                known[oid] = (op, entry_timing(entry))
            self._known = known
        for op, t in self._pending.items():
            self._known[op.id] = (op, t)
        return self._known

    def flush(self) -> None:
        """Write pending on-demand measurements to the cache (atomic merge)."""
        with self._lock:
            pending, self._pending = self._pending, {}
        if pending:
            self.cache.add(self.table_key, pending)

    def measure_op(self, op: OpKey) -> Timing:
        """Time ``op`` now (with ``measure_fn`` if given), remember it and return it."""
        if self.measure_fn is not None:
            t = _as_timing(self.measure_fn(op, self.context), op)
        elif op.kind == CALL:
            t = measure_spec(call_spec(), self.context, self.policy)
        else:
            t = measure_op(op, self.context, self.policy)
        return self._remember(op, t)

    PREFETCH_CHUNK = 64
    """Most ops :meth:`prefetch` times in one round-robin (the ops of one target's candidates fit)."""

    def prefetch(self, specs: Iterable[LayerSpec]) -> frozenset[str]:
        """Measure now every op of ``specs`` that the table lacks, round-robin; return their op ids.

        Timing the ops of designs that will be compared together, one call of each per round
        (:func:`~osc_design.latency.timing.measure_ops`), spreads every op's calls over the same stretch
        of time, so a slow spell of the machine does not fall on one design's ops only. Only with
        ``on_miss="measure"`` (otherwise nothing is measured here). Pass the result to :meth:`predict`
        as ``fresh`` to report those ops as measured.
        """
        if self.on_miss != "measure":
            return frozenset()
        known = self.known()
        missing: dict[str, OpKey] = {}
        for spec in specs:
            for _, op in self._keys(spec):
                if op is not None and op.id not in known:
                    missing.setdefault(op.id, op)
        ops = list(missing.values())
        try:
            if ops and self.progress is not None:
                self.progress(0, len(ops))
            for start in range(0, len(ops), self.PREFETCH_CHUNK):
                part = ops[start:start + self.PREFETCH_CHUNK]
                self._time_ops(part)
                if self.progress is not None:
                    self.progress(start + len(part), len(ops))
        finally:
            self.flush()
        return frozenset(missing)

    def _time_ops(self, ops: list[OpKey]) -> list[Timing]:
        """Time ``ops`` now, round-robin (the ``call()`` overhead on its own), and remember them."""
        out: dict[str, Timing] = {}
        rest = []
        for op in ops:
            if self.measure_fn is not None or op.kind == CALL:
                out[op.id] = self.measure_op(op)
            else:
                rest.append(op)
        if rest:
            for op, t in zip(rest, measure_ops(rest, self.context, self.policy), strict=True):
                out[op.id] = self._remember(op, t)
        return [out[op.id] for op in ops]

    def _remember(self, op: OpKey, t: Timing) -> Timing:
        with self._lock:
            self._pending[op] = t
            if self._known is not None:
                self._known[op.id] = (op, t)
            full = len(self._pending) >= self.flush_every
        if full:
            self.flush()
        return t

    def lookup(self, op: OpKey) -> tuple[Timing, Source]:
        """The timing of ``op`` and its source, handling a miss by ``on_miss``."""
        hit = self.known().get(op.id)
        if hit is not None:
            return hit[1], "cached"
        if self.on_miss == "error":
            raise InfeasibleDesignError(f"{op.id} is not in the latency cache table {self.table_key.id} "
                                        f"({self.cache.path}) and `on_miss` is 'error'; run calibrate() or "
                                        "use on_miss='measure'")
        if self.on_miss == "interpolate" and op.kind != CALL:
            estimate = self.interpolate(op)
            if estimate is not None:
                return estimate, "interpolated"
        return self.measure_op(op), "measured"

    def interpolate(self, op: OpKey, neighbours: int = 4) -> Timing | None:
        """Estimate ``op`` from the table's timed ops of its family; ``None`` when there is none of its kind.

        The family (:attr:`OpKey.family <osc_design.latency.opkeys.OpKey.family>`) is, for convs, the
        group class (dense, depthwise, grouped), the kernel shape (``1x1``, ``kxk``, ``kx1``, ``1xk``,
        rectangular), whether strided and whether dilated; for the other ops the kind. Without any
        timed op of the family, convs of the same group class (then any conv) are used. The
        ``neighbours`` nearest timed ops (distance: a weighted sum of differences of log MACs -- elements
        moved for the other ops --, log fan-in and fan-out per group, log pixels and log kernel taps)
        give a weighted least-squares line ``log t = a + b log work`` (``b`` clipped to ``[0, 1.2]``;
        with a single neighbour, or all at the same work, ``b = 1`` for convs and 0.8 otherwise)
        evaluated at ``op``'s work. The spread is the neighbours' weighted relative spread.
        """
        pool = [(k, t) for k, t in self.known().values() if k.kind == op.kind and k.kind != CALL]
        if not pool:
            return None
        for test in (lambda k: k.family == op.family,
                     lambda k: k.group_class == op.group_class,
                     lambda k: True):
            chosen = [(k, t) for k, t in pool if test(k)]
            if chosen:
                break
        f0 = op.features()
        scored = sorted(chosen, key=lambda kt: (_distance(kt[0].features(), f0), kt[0].id))[:neighbours]
        xs = [math.log(max(k.work, 1)) for k, _ in scored]
        ys = [math.log(max(t.median, 1e-9)) for _, t in scored]
        ws = [1.0 / (0.05 + _distance(k.features(), f0)) for k, _ in scored]
        x0 = math.log(max(op.work, 1))
        sw = sum(ws)
        mx = sum(w * x for w, x in zip(ws, xs, strict=True)) / sw
        my = sum(w * y for w, y in zip(ws, ys, strict=True)) / sw
        sxx = sum(w * (x - mx) ** 2 for w, x in zip(ws, xs, strict=True))
        if sxx > 1e-6:
            slope = sum(w * (x - mx) * (y - my) for w, x, y in zip(ws, xs, ys, strict=True)) / sxx
            slope = min(1.2, max(0.0, slope))
        else:
            slope = 1.0 if op.kind == "conv2d" else 0.8
        seconds = math.exp(my + slope * (x0 - mx))
        rel = sum(w * (t.spread / t.median if t.median > 0 else 0.0) for w, (_, t) in zip(ws, scored, strict=True)) / sw
        mins = [(w, t.best / t.median) for w, (_, t) in zip(ws, scored, strict=True)
                if t.best is not None and t.median > 0]
        best = seconds * sum(w * r for w, r in mins) / sum(w for w, _ in mins) if mins else None
        return Timing(seconds, rel * seconds, 0, best)

    # -- prediction --------------------------------------------------------------------------
    def _keys(self, spec: LayerSpec) -> list[tuple[str, OpKey | None]]:
        """The terms of a prediction: ``call()``, for JAX with convs ``conv-baseline()``, then every node."""
        body = op_keys(spec)
        extra = [("conv-baseline()", BASELINE_CONV_KEY)] if self.context.backend == "jax" and any(
            op is not None and op.kind == "conv2d" for _, op in body) else []
        return [("call()", CALL_KEY), *extra, *body]

    def predict(self, spec: LayerSpec, *, fresh: Iterable[str] = ()) -> Prediction:
        """Predicted end-to-end latency of ``spec`` (see the module docstring for the composition).

        ``fresh``: op ids to report as measured rather than cached (those :meth:`prefetch` measured for
        this prediction).
        """
        if not isinstance(spec, LayerSpec):
            raise SpecError(f"expected a LayerSpec, got {type(spec).__name__}")
        keys = self._keys(spec)
        jax = self.context.backend == "jax"
        has_base = len(keys) > 1 and keys[1][0] == "conv-baseline()"
        terms: list[OpLatency] = []
        edges: list[float] = []  # onnxruntime: what each chained op timed alone paid beyond its cost in a graph
        fresh = set(fresh)  # measured on demand for this prediction (a repeat counts as measured too)
        try:
            for nid, op in keys:
                if op is None:
                    terms.append(OpLatency(nid, None, 0.0, 0.0, "free"))
                    continue
                t, src = self.lookup(op)
                if src == "measured":
                    fresh.add(op.id)
                elif src == "cached" and op.id in fresh:
                    src = "measured"
                terms.append(OpLatency(nid, op, t.value(self.statistic), t.spread, src))
                if op.kind != CALL:
                    edges.append(0.0 if t.alone is None else max(t.alone - t.median, 0.0))
        finally:
            self.flush()
        c = terms[0].seconds
        if jax:
            ops = terms[2:] if has_base else terms[1:]
            base = max(terms[1].seconds, c) if has_base else c
            seconds = base + sum(max(o.seconds - (base if o.op is not None and o.op.kind == "conv2d" else c), 0.0)
                                 for o in ops)
        elif self.context.backend == "onnxruntime":  # chained ops timed inside a graph, others alone
            seconds = c + sum(o.seconds if o.op is not None and chainable(o.op) else max(o.seconds - c, 0.0)
                              for o in terms[1:])
            seconds += (edges[0] + edges[-1]) / 2 if edges else 0.0
        else:
            seconds = c + sum(o.seconds for o in terms[1:])
        spread = math.sqrt(sum(o.spread ** 2 for o in terms))
        counts = {s: sum(o.source == s for o in terms) for s in ("cached", "measured", "interpolated")}
        return Prediction(seconds, spread, counts["cached"], counts["measured"], counts["interpolated"],
                          tuple(terms), self.context)


def _distance(a: tuple[float, ...], b: tuple[float, ...]) -> float:
    weights = (1.0, 0.5, 0.5, 0.5, 0.5)
    return sum(w * abs(x - y) for w, x, y in zip(weights, a, b, strict=True))


def latency_model(backend: str = "torch", device: str = "cpu", *, batch: int = 8, dtype: str = "float32",
                  threads: int | None = None, on_miss: OnMiss = "measure", cache_dir: Any = None,
                  measure_fn: MeasureFn | None = None, policy: TimingPolicy | None = None,
                  statistic: Statistic = "median") -> LatencyModel:
    """A :class:`LatencyModel` (same parameters; ``cache_dir`` is the cache directory)."""
    return LatencyModel(backend, device, batch=batch, dtype=dtype, threads=threads, on_miss=on_miss,
                        cache=cache_dir, measure_fn=measure_fn, policy=policy, statistic=statistic)


def predict(spec: LayerSpec, model: LatencyModel) -> Prediction:
    """Predicted end-to-end latency of ``spec`` under ``model`` (see :meth:`LatencyModel.predict`).

    Parameters
    ----------
    spec : LayerSpec
        The design; its target needs an ``input_size``.
    model : LatencyModel
        The context and its table.

    Returns
    -------
    Prediction
        Seconds, spread and how many op timings were cached, measured on demand or interpolated.

    Raises
    ------
    SpecError
        The target has no input size, or ``model`` is not a LatencyModel.
    InfeasibleDesignError
        An op is missing from the cache and the model's ``on_miss`` is ``"error"``.
    """
    if not isinstance(model, LatencyModel):
        raise SpecError(f"`model` must be a LatencyModel, got {type(model).__name__}")
    return model.predict(spec)


def _check_spec(spec: Any) -> LayerSpec:
    if not isinstance(spec, LayerSpec):
        raise SpecError(f"expected a LayerSpec, got {type(spec).__name__}")
    if spec.target.input_size is None:
        raise SpecError("latency needs an input size: give the target an `input_size`")
    return spec


def measure(spec: LayerSpec, backend: str = "torch", batch: int = 8, *, device: str = "cpu",
            dtype: str = "float32", threads: int | None = None, policy: TimingPolicy | None = None,
            module: Any = None, seed: int = 0) -> Measurement:
    """Measure the end-to-end latency of ``spec``'s module (median and spread over repeated calls).

    Parameters
    ----------
    spec : LayerSpec
        The design; its target needs an ``input_size``.
    backend : {"torch", "jax", "onnxruntime"}
    batch : int
        Samples per call.
    device, dtype, threads
        As for :class:`LatencyModel`.
    policy : TimingPolicy, optional
        Warm-up and repetitions (default :class:`TimingPolicy`).
    module : optional
        Time this module (e.g. an exported one) instead of building it from ``spec``.
    seed : int
        Seed of the weights and the input.

    Returns
    -------
    Measurement

    Raises
    ------
    SpecError
        Bad arguments, no input size, or an unavailable device.
    BackendUnavailableError
        The framework is not installed.
    """
    return measure_many([spec], backend, batch, device=device, dtype=dtype, threads=threads, policy=policy,
                        modules=[module], seed=seed)[0]


def measure_many(specs: Iterable[LayerSpec], backend: str = "torch", batch: int = 8, *, device: str = "cpu",
                 dtype: str = "float32", threads: int | None = None, policy: TimingPolicy | None = None,
                 modules: Iterable[Any] | None = None, seed: int = 0) -> list[Measurement]:
    """Measure several designs end to end, round-robin, to compare them with each other.

    One call of each module per round, the order rotating, so that a slow spell of a shared machine
    falls on every design alike (see :func:`~osc_design.latency.timing.time_round_robin`); the policy's
    ``budget_s`` is per design. Parameters as for :func:`measure` (``modules``: one per spec, ``None``
    entries built from the spec).

    Returns
    -------
    list of Measurement
        In the order of ``specs``.
    """
    specs = [_check_spec(s) for s in specs]
    if not specs:
        return []
    ctx = _context(backend, device, batch, dtype, threads)
    timings = measure_specs(specs, ctx, TimingPolicy() if policy is None else policy,
                            modules=None if modules is None else list(modules), seed=seed)
    return [Measurement(t.median, t.spread, t.runs, ctx, t.best) for t in timings]


def calibrate(backend: str = "torch", device: str = "cpu", batch: int = 8, *, dtype: str = "float32",
              threads: int | None = None, grid: Iterable[OpKey] | None = None, cache_dir: Any = None,
              progress: Callable[[int, int, OpKey, Timing | None], Any] | None = None,
              measure_fn: MeasureFn | None = None, policy: TimingPolicy | None = None,
              flush_every: int = 8) -> CalibrationReport:
    """Measure a grid of primitive ops into the cache (resumable; safe to interrupt).

    Parameters
    ----------
    backend, device, batch, dtype, threads
        The context (see :class:`LatencyModel`).
    grid : iterable of OpKey, optional
        The ops to time; default :func:`~osc_design.latency.opkeys.standard_grid` (plus, always, the
        ``call()`` overhead and the tiny baseline conv).
    cache_dir : str or Path, optional
        Cache directory (default: ``$OSC_DESIGN_CACHE_DIR`` or the user cache directory).
    progress : callable, optional
        ``progress(done, total, op, timing)`` after each op (``timing`` is ``None`` for an op that was
        already cached and skipped).
    measure_fn : callable, optional
        Replaces the real timing (see :class:`LatencyModel`).
    policy : TimingPolicy, optional
        Warm-up and repetitions.
    flush_every : int
        Timings are merged into the cache file after every this many measurements, atomically.

    Returns
    -------
    CalibrationReport

    Notes
    -----
    Ops are timed round-robin in rounds of up to :attr:`LatencyModel.PREFETCH_CHUNK` (as
    :meth:`LatencyModel.prefetch` times a design's ops, so that calibrated and on-demand timings are
    taken the same way). An interrupted run (Ctrl-C, an exception in ``progress``) writes what it
    measured before it stops (every completed round) and leaves a valid file; the next run skips every
    op already cached in this context.
    """
    model = LatencyModel(backend, device, batch=batch, dtype=dtype, threads=threads, on_miss="measure",
                         cache=cache_dir, measure_fn=measure_fn, policy=policy, flush_every=flush_every)
    ops = _calibration_ops(standard_grid() if grid is None else grid)
    start = time.perf_counter()
    try:
        measured, skipped = _calibrate_rounds(model, ops, progress)
    finally:
        model.flush()
    return CalibrationReport(measured, skipped, len(ops), model.table_key.id, str(model.cache.path),
                             time.perf_counter() - start)


def _calibration_ops(grid: Iterable[OpKey]) -> list[OpKey]:
    """``call()``, the baseline conv, then ``grid`` (its ``call()`` entries dropped), each op once."""
    ops = [CALL_KEY, BASELINE_CONV_KEY] + [op for op in grid if not isinstance(op, OpKey) or op.kind != CALL]
    seen: dict[str, OpKey] = {}
    for op in ops:
        if not isinstance(op, OpKey):
            raise SpecError(f"`grid` must hold OpKey records, got {type(op).__name__}")
        seen.setdefault(op.id, op)
    return list(seen.values())


def _calibrate_rounds(model: LatencyModel, ops: list[OpKey],
                      progress: Callable[[int, int, OpKey, Timing | None], Any] | None) -> tuple[int, int]:
    """Time the ops ``model`` lacks in rounds of :attr:`LatencyModel.PREFETCH_CHUNK`, round-robin;
    ``(measured, skipped)``."""
    measured = skipped = 0
    for first in range(0, len(ops), model.PREFETCH_CHUNK):
        part = ops[first:first + model.PREFETCH_CHUNK]
        known = model.known()
        todo = [op for op in part if op.id not in known]
        timed = dict(zip((op.id for op in todo), model._time_ops(todo), strict=True))
        for i, op in enumerate(part, first + 1):
            t = timed.get(op.id)
            measured += t is not None
            skipped += t is None
            if progress is not None:
                progress(i, len(ops), op, t)
    return measured, skipped
