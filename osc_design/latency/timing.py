"""Timing harness and the per-backend runners of single ops and whole specs.

The frameworks are imported inside the functions here, never at module import.

Protocol (every measurement, op or module): ``warmup`` untimed calls (the first one compiles under
``jax.jit``), then timed calls until at least ``min_runs`` are done and either ``max_runs`` are done or
``budget_s`` seconds have passed. Each call is synchronised (``block_until_ready`` for JAX,
``torch.cuda.synchronize`` on CUDA). The result is the median and the spread (interquartile range)
of the timed calls, in seconds, and their minimum (on a machine shared with other work the minimum is
the least disturbed call: :class:`~osc_design.latency.LatencyModel` can predict from it instead).

PyTorch runs under ``torch.no_grad`` with ``torch.set_num_threads(threads)`` (restored afterwards),
modules in eval mode. JAX runs each op, and each whole module, as one ``jax.jit`` function with the
weights as arguments; XLA's CPU thread pool is fixed at process start (one thread per usable core),
so the thread count of a JAX table is the number of usable cores.
"""

from __future__ import annotations

import importlib.metadata
import os
import statistics
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from ..errors import SpecError, UnknownBackendError
from .opkeys import OpKey

if TYPE_CHECKING:  # pragma: no cover
    from ..spec import LayerSpec

__all__ = ["Timing", "TimingPolicy", "Context", "time_callable", "measure_op", "measure_spec", "usable_cpus",
           "backend_version", "DTYPES", "DEVICES"]

DTYPES = ("float32", "float16", "bfloat16")
DEVICES = ("cpu", "cuda")


@dataclass(frozen=True)
class Timing:
    """A timed quantity over ``runs`` timed calls: median, spread (interquartile range) and minimum, seconds.

    ``best`` (the fastest call) is ``None`` where unknown (a timing given as a bare number, an
    interpolated one without timed neighbours).
    """

    median: float
    spread: float
    runs: int
    best: float | None = None

    def value(self, statistic: str = "median") -> float:
        """``median``, or with ``statistic="min"`` the fastest call (the median where that is unknown)."""
        return self.best if statistic == "min" and self.best is not None else self.median

    def to_dict(self) -> dict[str, float | int | None]:
        return {"median": self.median, "spread": self.spread, "runs": self.runs, "min": self.best}


@dataclass(frozen=True)
class TimingPolicy:
    """How long to time: ``warmup`` untimed calls, then ``min_runs`` .. ``max_runs`` timed calls.

    Timing stops once ``min_runs`` calls are done and either ``max_runs`` calls are done or ``budget_s``
    seconds have passed.
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
        if self.backend not in ("torch", "jax"):
            raise UnknownBackendError(f"unknown backend {self.backend!r}; expected one of torch, jax")
        if self.device not in DEVICES:
            raise SpecError(f"`device` (={self.device!r}) must be one of {', '.join(DEVICES)}")
        if self.dtype not in DTYPES:
            raise SpecError(f"`dtype` (={self.dtype!r}) must be one of {', '.join(DTYPES)}")
        for name in ("batch", "threads"):
            v = getattr(self, name)
            if type(v) is not int or v < 1:
                raise SpecError(f"`{name}` (={v!r}) must be a positive integer")


def usable_cpus() -> int:
    """CPU cores this process may run on (its affinity mask where the OS has one)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - macOS, Windows
        return os.cpu_count() or 1


def backend_version(backend: str) -> str:
    """The installed framework version, read from package metadata (nothing is imported).

    ``torch``: the torch version; ``jax``: ``jax <v>/jaxlib <v>`` (both decide XLA's kernels).
    """
    try:
        if backend == "torch":
            return importlib.metadata.version("torch")
        if backend == "jax":
            return f"{importlib.metadata.version('jax')}/jaxlib {importlib.metadata.version('jaxlib')}"
    except importlib.metadata.PackageNotFoundError:
        return "not-installed"
    raise UnknownBackendError(f"unknown backend {backend!r}; expected one of torch, jax")


def time_callable(fn: Callable[[], Any], policy: TimingPolicy = TimingPolicy(),
                  sync: Callable[[Any], Any] | None = None) -> Timing:
    """Time ``fn()`` (each result passed to ``sync`` before the clock stops) by the protocol above."""
    def call() -> None:
        out = fn()
        if sync is not None:
            sync(out)

    for _ in range(policy.warmup):
        call()
    times: list[float] = []
    start = time.perf_counter()
    while len(times) < policy.min_runs or (len(times) < policy.max_runs
                                           and time.perf_counter() - start < policy.budget_s):
        t0 = time.perf_counter()
        call()
        times.append(time.perf_counter() - t0)
    if len(times) >= 4:
        q = statistics.quantiles(times, n=4, method="inclusive")
        spread = q[2] - q[0]
    else:
        spread = max(times) - min(times)
    return Timing(statistics.median(times), spread, len(times), min(times))


# ------------------------------------------------------------------------------------------- torch
@contextmanager
def _torch_threads(threads: int) -> Iterator[None]:
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def _torch_env(ctx: Context) -> tuple[Any, Any, Any, Callable[[Any], Any] | None]:
    import torch

    from ..backends import get_backend

    get_backend("torch")
    if ctx.device == "cuda" and not torch.cuda.is_available():
        raise SpecError("`device` 'cuda' was asked for, but torch sees no CUDA device")
    dtype = getattr(torch, ctx.dtype)
    device = torch.device(ctx.device)
    sync = (lambda _: torch.cuda.synchronize()) if ctx.device == "cuda" else None
    return torch, device, dtype, sync


def _torch_op(key: OpKey, ctx: Context, torch: Any, device: Any, dtype: Any) -> Callable[[], Any]:
    from torch import nn

    from ..backends.torch import channel_shuffle, shift2d

    gen = torch.Generator().manual_seed(0)
    b, h, w = ctx.batch, key["h"], key["w"]

    def rand(c: int) -> Any:
        return torch.randn(b, c, h, w, generator=gen).to(device=device, dtype=dtype)

    if key.kind == "conv2d":
        m = nn.Conv2d(key["in_channels"], key["out_channels"], (key["kh"], key["kw"]), stride=(key["sh"], key["sw"]),
                      padding=(key["ph"], key["pw"]), dilation=(key["dh"], key["dw"]), groups=key["groups"],
                      bias=bool(key["bias"])).to(device=device, dtype=dtype).eval()
        x = rand(key["in_channels"])
        return lambda: m(x)
    if key.kind == "batch_norm":
        m = nn.BatchNorm2d(key["channels"]).to(device=device, dtype=dtype).eval()
        x = rand(key["channels"])
        return lambda: m(x)
    if key.kind == "channel_shuffle":
        x, g = rand(key["channels"]), key["groups"]
        return lambda: channel_shuffle(x, g)
    if key.kind == "permute":
        x = rand(key["channels"])
        idx = torch.randperm(key["channels"], generator=gen).to(device)
        return lambda: x.index_select(1, idx)
    if key.kind == "slice":
        x, width = rand(key["in_channels"]), key["width"]
        return lambda: x[:, :width]
    if key.kind == "concat":
        xs = [rand(c) for c in key["parts"]]
        return lambda: torch.cat(xs, dim=1)
    if key.kind == "add":
        xs = [rand(key["channels"]) for _ in range(key["inputs"])]

        def add() -> Any:
            y = xs[0]
            for other in xs[1:]:
                y = y + other
            return y
        return add
    x = rand(key["channels"])  # shift
    return lambda: shift2d(x, 1, 1)


# --------------------------------------------------------------------------------------------- jax
def _jax_env(ctx: Context) -> tuple[Any, Any, Any]:
    from ..backends import get_backend

    get_backend("jax")
    import jax
    import jax.numpy as jnp

    if ctx.device == "cuda":
        try:
            device = jax.devices("gpu")[0]
        except RuntimeError:
            raise SpecError("`device` 'cuda' was asked for, but jax sees no GPU") from None
    else:
        device = jax.devices("cpu")[0]
    if ctx.device == "cpu" and ctx.threads != usable_cpus():
        raise SpecError(
            f"`threads` (={ctx.threads}) cannot be set for JAX on CPU: XLA uses one thread per usable core "
            f"({usable_cpus()} here); run under `taskset` to change it and leave `threads` at its default"
        )
    return jax, device, getattr(jnp, ctx.dtype)


def _jax_op(key: OpKey, ctx: Context, jax: Any, device: Any, dtype: Any) -> Callable[[], Any]:
    import jax.numpy as jnp
    import numpy as np
    from jax import lax

    from ..backends.jax import channel_shuffle, permute_channels, shift2d

    rng = np.random.default_rng(0)
    b, h, w = ctx.batch, key["h"], key["w"]

    def rand(*shape: int) -> Any:
        return jax.device_put(jnp.asarray(rng.standard_normal(shape), dtype), device)

    if key.kind == "conv2d":
        g = key["groups"]
        x = rand(b, h, w, key["in_channels"])
        k = rand(key["kh"], key["kw"], key["in_channels"] // g, key["out_channels"])
        bias = rand(key["out_channels"]) if key["bias"] else None
        stride, dil = (key["sh"], key["sw"]), (key["dh"], key["dw"])
        pad = ((key["ph"], key["ph"]), (key["pw"], key["pw"]))

        def conv(x: Any, k: Any, bias: Any) -> Any:
            y = lax.conv_general_dilated(x, k, stride, pad, rhs_dilation=dil,
                                         dimension_numbers=("NHWC", "HWIO", "NHWC"), feature_group_count=g)
            return y if bias is None else y + bias

        f = jax.jit(conv)
        return lambda: f(x, k, bias)
    if key.kind == "batch_norm":
        c = key["channels"]
        x, a, sh = rand(b, h, w, c), rand(c), rand(c)
        f = jax.jit(lambda x, a, sh: x * a + sh)
        return lambda: f(x, a, sh)
    if key.kind == "channel_shuffle":
        x, g = rand(b, h, w, key["channels"]), key["groups"]
        f = jax.jit(lambda x: channel_shuffle(x, g))
    elif key.kind == "permute":
        x = rand(b, h, w, key["channels"])
        perm = tuple(int(v) for v in rng.permutation(key["channels"]))
        f = jax.jit(lambda x: permute_channels(x, perm))
    elif key.kind == "slice":
        x, width = rand(b, h, w, key["in_channels"]), key["width"]
        f = jax.jit(lambda x: x[..., :width])
    elif key.kind == "concat":
        xs = [rand(b, h, w, c) for c in key["parts"]]
        fc = jax.jit(lambda *xs: jnp.concatenate(xs, axis=-1))
        return lambda: fc(*xs)
    elif key.kind == "add":
        xs = [rand(b, h, w, key["channels"]) for _ in range(key["inputs"])]

        def add(*xs: Any) -> Any:
            y = xs[0]
            for other in xs[1:]:
                y = y + other
            return y
        fa = jax.jit(add)
        return lambda: fa(*xs)
    else:  # shift
        x = rand(b, h, w, key["channels"])
        f = jax.jit(lambda x: shift2d(x, 1, 1))
    return lambda: f(x)


def _jax_sync(out: Any) -> None:
    import jax

    jax.block_until_ready(out)


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
    if ctx.backend == "torch":
        torch, device, dtype, sync = _torch_env(ctx)
        with torch.no_grad(), _torch_threads(ctx.threads):
            return time_callable(_torch_op(key, ctx, torch, device, dtype), policy, sync)
    jax, device, dtype = _jax_env(ctx)
    return time_callable(_jax_op(key, ctx, jax, device, dtype), policy, _jax_sync)


def measure_spec(spec: LayerSpec, ctx: Context, policy: TimingPolicy = TimingPolicy(), *,
                 module: Any = None, seed: int = 0) -> Timing:
    """Time the whole module of ``spec`` end to end (``module`` replaces the built one).

    PyTorch: ``osc_design.backends.torch.build_module`` in eval mode on an NCHW input. JAX:
    ``osc_design.backends.jax.build_module`` split into graph and state, the call ``merge(graph,
    state)(x)`` under ``jax.jit`` with the state as an argument, on an NHWC input.
    """
    from ..backends.export import resolve_input_size

    h, w = resolve_input_size(spec, None)
    c = spec.target.in_channels
    if ctx.backend == "torch":
        torch, device, dtype, sync = _torch_env(ctx)
        from ..backends.torch import build_module

        m = (build_module(spec, seed=seed) if module is None else module).to(device=device, dtype=dtype).eval()
        x = torch.randn(ctx.batch, c, h, w, generator=torch.Generator().manual_seed(seed)).to(device, dtype)
        with torch.no_grad(), _torch_threads(ctx.threads):
            return time_callable(lambda: m(x), policy, sync)
    jax, device, dtype = _jax_env(ctx)
    import jax.numpy as jnp
    import numpy as np
    from flax import nnx

    from ..backends.jax import build_module as jax_build

    m = jax_build(spec, seed=seed, dtype=dtype) if module is None else module
    graphdef, state = nnx.split(m)
    state = jax.device_put(state, device)
    f = jax.jit(lambda s, v: nnx.merge(graphdef, s)(v))
    x = jax.device_put(jnp.asarray(np.random.default_rng(seed).standard_normal((ctx.batch, h, w, c)), dtype), device)
    return time_callable(lambda: f(state, x), policy, _jax_sync)
