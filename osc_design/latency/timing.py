"""Timing harness of single ops and whole specs, run on what the backends build.

No framework is imported here: each backend's :class:`~osc_design.backends.Timer` (from
:meth:`osc_design.backends.Backend.timer`) builds the module and hands back the call to time. A whole
spec is its module's call; an op (an :class:`~osc_design.latency.opkeys.OpKey`) is node ``"op"`` of a
spec holding just that op (:func:`~osc_design.latency.opkeys.key_spec`), called as the module calls
it, on a fresh input per input slot. So the ops timed are the ops the modules run.

Protocol (every measurement, op or module): ``warmup`` untimed calls (the first one compiles under
``jax.jit``), then timed calls until at least ``min_runs`` are done and either ``max_runs`` are done or
``budget_s`` seconds have been spent in them. Each call is synchronised (``block_until_ready`` for JAX,
``torch.cuda.synchronize`` on CUDA). The result is the median and the spread (interquartile range)
of the timed calls, in seconds, and their minimum (on a machine shared with other work the minimum is
the least disturbed call: :class:`~osc_design.latency.LatencyModel` can predict from it instead).

Several ops or modules compared with each other are timed round-robin (:func:`measure_ops`,
:func:`measure_specs`): one call of each per round, the order rotating, so that a slow spell of the
machine (another process, a neighbouring virtual machine: on a 2-core virtual machine the same
depthwise conv ran at 1.3 ms or 2.8 ms per call in alternating spells of a fraction of a second) falls
on all of them alike instead of on whichever was timed then.

Allocator. Every op and module allocates its outputs afresh on each call. With glibc's default
settings, large blocks are mapped from the OS on each allocation and unmapped on free, and which
path a block takes depends on the process's history (glibc adjusts its threshold as it goes): the
same depthwise conv measured 2.3 ms or 20 ms in one process on a 2-core virtual machine, where each
page fault is expensive. A framework serving a model in a loop reuses its heap instead. So before
anything is timed the harness sets glibc's ``M_MMAP_THRESHOLD`` (1 GiB, else the largest allowed) and
``M_TRIM_THRESHOLD`` (2 GiB) once for the process (:func:`steady_allocator`): blocks come from the
heap and freed memory stays there for the next call. The process then keeps its peak heap instead of
returning it to the OS. ``OSC_DESIGN_STEADY_MALLOC=0`` leaves the allocator alone; the mode is part of
every cache table's key (:func:`allocator_mode`: ``glibc-steady`` or ``system``), so timings taken
either way are never mixed.

PyTorch runs under ``torch.no_grad`` with ``torch.set_num_threads(threads)`` (restored afterwards),
modules in eval mode. JAX runs each op, and each whole module, as one ``jax.jit`` function with the
module's state (its weights) as an argument; XLA's CPU thread pool is fixed at process start (one
thread per usable core), so the thread count of a JAX table is the number of usable cores.
onnxruntime runs each op, and each whole module, as one ``InferenceSession`` (sequential execution,
``threads`` intra-op threads that do not spin, one inter-op thread, every graph optimisation on) of the
ONNX graph of :mod:`osc_design.backends.onnx`, unfolded (a module runs the ops its prediction adds up),
float32 only. An op that keeps its input's shape is timed inside a graph: alone and as a chain of
``1 +`` :data:`CHAIN_EXTRA` copies, round-robin, the difference over :data:`CHAIN_EXTRA` being its
timing (:func:`marginal`): that leaves out what a session pays once per call at the graph's edges (the
call, the input and the output, the NCHW <-> blocked-layout reorders around convs that onnxruntime's
layout optimisation inserts at a graph's edges, cold caches). Other ops are timed alone.
"""

from __future__ import annotations

import ctypes
import functools
import importlib.metadata
import math
import os
import sys
import statistics
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from ..errors import SpecError, UnknownBackendError
from .opkeys import OpKey, chainable, key_spec

if TYPE_CHECKING:  # pragma: no cover
    from ..backends import Timer
    from ..spec import LayerSpec

__all__ = ["Timing", "TimingPolicy", "Context", "time_callable", "time_round_robin", "measure_op", "measure_ops",
           "measure_spec", "measure_specs", "marginal", "CHAIN_EXTRA", "backend_version", "allocator_mode",
           "steady_allocator",
           "STEADY_MALLOC_ENV", "DTYPES", "DEVICES", "LATENCY_BACKENDS"]

LATENCY_BACKENDS = ("torch", "jax", "onnxruntime")
DTYPES = ("float32", "float16", "bfloat16")
DEVICES = ("cpu", "cuda")
STEADY_MALLOC_ENV = "OSC_DESIGN_STEADY_MALLOC"
"""Set to ``0`` to time with the allocator as the process has it (see the module docstring)."""
_M_TRIM_THRESHOLD, _M_MMAP_THRESHOLD = -1, -3  # glibc's mallopt parameters (malloc.h)


@dataclass(frozen=True)
class Timing:
    """A timed quantity over ``runs`` timed calls: median, spread (interquartile range) and minimum, seconds.

    ``best`` (the fastest call) is ``None`` where unknown (a timing given as a bare number, an
    interpolated one without timed neighbours). ``alone``: for an op's cost inside a graph
    (:func:`marginal`), the median of the op timed alone (``None`` otherwise).
    """

    median: float
    spread: float
    runs: int
    best: float | None = None
    alone: float | None = None

    def value(self, statistic: str = "median") -> float:
        """``median``, or with ``statistic="min"`` the fastest call (the median where that is unknown)."""
        return self.best if statistic == "min" and self.best is not None else self.median

    def to_dict(self) -> dict[str, float | int | None]:
        out = {"median": self.median, "spread": self.spread, "runs": self.runs, "min": self.best}
        return out if self.alone is None else {**out, "alone": self.alone}


@dataclass(frozen=True)
class TimingPolicy:
    """How long to time: ``warmup`` untimed calls, then ``min_runs`` .. ``max_runs`` timed calls.

    Timing stops once ``min_runs`` calls are done and either ``max_runs`` calls are done or ``budget_s``
    seconds have been spent in the timed calls (per op or module, also when several are timed
    round-robin).
    """

    warmup: int = 2
    min_runs: int = 5
    max_runs: int = 50
    budget_s: float = 0.3

    def __post_init__(self) -> None:
        for name in ("warmup", "min_runs", "max_runs"):
            v = getattr(self, name)
            if type(v) is not int or v < (0 if name == "warmup" else 1):
                raise SpecError(f"`{name}` (={v!r}) must be a {'non-negative' if name == 'warmup' else 'positive'} "
                                "integer")
        if self.max_runs < self.min_runs:
            raise SpecError(f"`max_runs` (={self.max_runs}) must be at least `min_runs` (={self.min_runs})")
        if isinstance(self.budget_s, bool) or not isinstance(self.budget_s, (int, float)) or self.budget_s < 0:
            raise SpecError(f"`budget_s` (={self.budget_s!r}) must be a non-negative number of seconds")


@dataclass(frozen=True)
class Context:
    """Where ops are timed: backend, device, dtype, batch and threads (one cache table per context)."""

    backend: str
    device: str = "cpu"
    dtype: str = "float32"
    batch: int = 8
    threads: int = 1

    def __post_init__(self) -> None:
        if self.backend not in LATENCY_BACKENDS:
            raise UnknownBackendError(f"unknown backend {self.backend!r}; expected one of "
                                      f"{', '.join(LATENCY_BACKENDS)}")
        if self.device not in DEVICES:
            raise SpecError(f"`device` (={self.device!r}) must be one of {', '.join(DEVICES)}")
        if self.dtype not in DTYPES:
            raise SpecError(f"`dtype` (={self.dtype!r}) must be one of {', '.join(DTYPES)}")
        for name in ("batch", "threads"):
            v = getattr(self, name)
            if type(v) is not int or v < 1:
                raise SpecError(f"`{name}` (={v!r}) must be a positive integer")


def backend_version(backend: str, device: str = "cpu") -> str:
    """The installed framework version, read from package metadata (nothing is imported).

    ``torch``: the torch version; ``jax``: ``jax <v>/jaxlib <v>`` (both decide XLA's kernels);
    ``onnxruntime``: ``<v>/<execution provider>`` (``CPUExecutionProvider`` on ``cpu``,
    ``CUDAExecutionProvider`` on ``cuda``).
    """
    try:
        if backend == "torch":
            return importlib.metadata.version("torch")
        if backend == "jax":
            return f"{importlib.metadata.version('jax')}/jaxlib {importlib.metadata.version('jaxlib')}"
        if backend == "onnxruntime":
            provider = "CUDAExecutionProvider" if device == "cuda" else "CPUExecutionProvider"
            return f"{importlib.metadata.version('onnxruntime')}/{provider}"
    except importlib.metadata.PackageNotFoundError:
        return "not-installed"
    raise UnknownBackendError(f"unknown backend {backend!r}; expected one of {', '.join(LATENCY_BACKENDS)}")


def _glibc() -> Any:
    """The C library when it is glibc (it has ``gnu_get_libc_version``), else ``None``."""
    if not sys.platform.startswith("linux"):
        return None
    try:
        libc = ctypes.CDLL(None)
        libc.gnu_get_libc_version  # noqa: B018 - raises AttributeError on musl and others
        libc.mallopt.argtypes = [ctypes.c_int, ctypes.c_int]
    except (OSError, AttributeError):
        return None
    return libc


def allocator_mode() -> str:
    """How timings in this process are taken: ``"glibc-steady"`` (see :func:`steady_allocator`) or ``"system"``.

    Nothing is changed by asking.
    """
    if os.environ.get(STEADY_MALLOC_ENV, "1").strip() == "0" or _glibc() is None:
        return "system"
    return "glibc-steady"


@functools.lru_cache(maxsize=1)
def steady_allocator() -> str:
    """Hold glibc's heap steady for the rest of the process (once); return :func:`allocator_mode`.

    Sets ``M_MMAP_THRESHOLD`` to 1 GiB (32 MiB where glibc refuses more) and ``M_TRIM_THRESHOLD`` to
    2 GiB with ``mallopt``: large blocks come from the heap, and freed memory stays in it.
    """
    if allocator_mode() != "glibc-steady":
        return "system"
    libc = _glibc()
    if not (libc.mallopt(_M_MMAP_THRESHOLD, 1 << 30) or libc.mallopt(_M_MMAP_THRESHOLD, 32 << 20)):
        return "system"  # pragma: no cover - every glibc accepts 32 MiB
    libc.mallopt(_M_TRIM_THRESHOLD, 2**31 - 1)
    return "glibc-steady"


def time_callable(fn: Callable[[], Any], policy: TimingPolicy = TimingPolicy(),
                  sync: Callable[[Any], Any] | None = None) -> Timing:
    """Time ``fn()`` (each result passed to ``sync`` before the clock stops) by the protocol above."""
    return time_round_robin([fn], policy, sync)[0]


def time_round_robin(fns: list[Callable[[], Any]], policy: TimingPolicy = TimingPolicy(),
                     sync: Callable[[Any], Any] | None = None) -> list[Timing]:
    """Time several callables in rounds of one call each, the order rotating from round to round.

    Each is first called ``policy.warmup`` times. A callable takes part in every round until it has
    ``min_runs`` timed calls and either ``max_runs`` of them or ``budget_s`` seconds spent in them: a
    quick op keeps being sampled while slow ones run, so its calls spread over the whole measurement
    and a slow spell of the machine weighs on every callable alike.
    """
    def call(fn: Callable[[], Any]) -> float:
        t0 = time.perf_counter()
        out = fn()
        if sync is not None:
            sync(out)
        return time.perf_counter() - t0

    for fn in fns:
        for _ in range(policy.warmup):
            call(fn)
    times: list[list[float]] = [[] for _ in fns]

    def active(i: int) -> bool:
        n = len(times[i])
        return n < policy.min_runs or (n < policy.max_runs and sum(times[i]) < policy.budget_s)

    r = 0
    while True:
        live = [i for i in range(len(fns)) if active(i)]
        if not live:
            break
        for k in range(len(live)):
            i = live[(r + k) % len(live)]
            times[i].append(call(fns[i]))
        r += 1
    return [_summary(ts) for ts in times]


def _summary(times: list[float]) -> Timing:
    if len(times) >= 4:
        q = statistics.quantiles(times, n=4, method="inclusive")
        spread = q[2] - q[0]
    else:
        spread = max(times) - min(times)
    return Timing(statistics.median(times), spread, len(times), min(times))


# ------------------------------------------------------------------------------------------ backend
@contextmanager
def _timer(ctx: Context) -> Iterator[Timer]:
    """The backend's :class:`~osc_design.backends.Timer` for ``ctx``, entered, with the steady heap set."""
    from ..backends import get_backend

    steady_allocator()
    with get_backend(ctx.backend).timer(ctx.device, ctx.dtype, ctx.threads, ctx.batch) as timer:
        yield timer


# ------------------------------------------------------------------------------------------ public
def measure_op(key: OpKey, ctx: Context, policy: TimingPolicy = TimingPolicy()) -> Timing:
    """Time one op in isolation at its real shapes (a fresh input of ``ctx.batch`` samples).

    Raises
    ------
    BackendUnavailableError
        The backend's framework is not installed.
    SpecError
        The device is not available, or (JAX on CPU) ``threads`` differs from the usable cores.
    """
    return measure_ops([key], ctx, policy)[0]


def measure_ops(keys: list[OpKey], ctx: Context, policy: TimingPolicy = TimingPolicy()) -> list[Timing]:
    """Time several ops in isolation, round-robin (:func:`time_round_robin`), one :class:`Timing` each.

    Each op is node ``"op"`` of :func:`~osc_design.latency.opkeys.key_spec`, in the module the backend
    builds from that spec, called as the module calls it, on a fresh input per input slot. With a timer
    that chains (onnxruntime's ``chain_call``), an op that keeps its input's shape
    (:func:`~osc_design.latency.opkeys.chainable`) is also timed as :data:`CHAIN_EXTRA` ``+ 1`` copies
    in a row, in the same rounds, and its timing is the :func:`marginal` cost of one copy inside a graph.
    """
    with _timer(ctx) as timer:
        chain = getattr(timer, "chain_call", None)
        fns: list[Callable[[], Any]] = []
        chained: list[bool] = []
        for k in keys:
            spec, node = key_spec(k)
            fns.append(timer.node_call(spec, node))
            chained.append(chain is not None and chainable(k))
            if chain is not None and chained[-1]:
                fns.append(chain(spec, node, 1 + CHAIN_EXTRA))
        timings = iter(time_round_robin(fns, policy, timer.sync))
        return [marginal(next(timings), next(timings), CHAIN_EXTRA) if c else next(timings) for c in chained]

CHAIN_EXTRA = 2
"""Extra copies in the chain a chaining timer (onnxruntime's) times beside the op alone."""


def marginal(one: Timing, chain: Timing, extra: int) -> Timing:
    """The cost of one more copy of an op inside a graph: ``(chain - one) / extra``, from the timings of the op
    alone and of a chain of ``1 + extra`` copies (median and minimum each; clipped at 0). The spread is the
    root-sum-square of the two spreads over ``extra``; ``alone`` the op's median alone.

    >>> t = marginal(Timing(1.0, 0.1, 9, 0.9), Timing(2.0, 0.2, 7, 1.7), 2)
    >>> t.median, round(t.spread, 4), t.runs, round(t.best, 4)
    (0.5, 0.1118, 7, 0.4)
    """
    best = None if one.best is None or chain.best is None else max((chain.best - one.best) / extra, 0.0)
    return Timing(max((chain.median - one.median) / extra, 0.0), math.hypot(one.spread, chain.spread) / extra,
                  min(one.runs, chain.runs), best, one.median)


def measure_specs(specs: list[LayerSpec], ctx: Context, policy: TimingPolicy = TimingPolicy(), *,
                  modules: list[Any] | None = None, seed: int = 0) -> list[Timing]:
    """Time whole modules end to end, round-robin (:func:`time_round_robin`), one :class:`Timing` each.

    What the backend builds (:meth:`osc_design.backends.Backend.build`): PyTorch, the module in eval mode on
    an NCHW input; JAX, the module split into graph and state, the call ``merge(graph, state)(x)`` under
    ``jax.jit`` with the state as an argument, on an NHWC input. ``modules`` (same length, ``None``
    entries allowed) replace the built ones.
    """
    mods = [None] * len(specs) if modules is None else list(modules)
    if len(mods) != len(specs):
        raise SpecError(f"`modules` has {len(mods)} entries for {len(specs)} specs")
    with _timer(ctx) as timer:
        fns = [timer.module_call(s, m, seed) for s, m in zip(specs, mods, strict=True)]
        return time_round_robin(fns, policy, timer.sync)


def measure_spec(spec: LayerSpec, ctx: Context, policy: TimingPolicy = TimingPolicy(), *,
                 module: Any = None, seed: int = 0) -> Timing:
    """Time the whole module of ``spec`` end to end (``module`` replaces the built one); see :func:`measure_specs`."""
    return measure_specs([spec], ctx, policy, modules=[module], seed=seed)[0]
