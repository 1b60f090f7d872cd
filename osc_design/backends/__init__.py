"""Framework backends: build a layer spec in PyTorch or JAX, check its exact costs, export its source.

Two optional backends, each behind a pip extra and imported only when asked for (importing this
package imports neither framework):

=========  ====================================  =============================  ===================
name       module                                builds                         extra
=========  ====================================  =============================  ===================
``torch``  :mod:`osc_design.backends.torch`      ``torch.nn.Module``, NCHW      ``osc-design[torch]``
``jax``    :mod:`osc_design.backends.jax`        Flax NNX module, NHWC          ``osc-design[jax]``
=========  ====================================  =============================  ===================

:func:`verify` measures every closed-form count with the framework's own counter and reports both:

* ``torch``: parameters (``sum(p.numel())``), forward FLOPs (``torch.utils.flop_counter.FlopCounterMode``,
  expected ``2 * macs``: every tap, padding included, bias ignored) and the output shape (against a
  plain ``nn.Conv2d`` of the target);
* ``jax``: parameters (``nnx.Param`` leaves), XLA FLOPs (``jax.jit(...).lower(...).compile().cost_analysis()``,
  expected ``Cost.xla_flops`` = ``2 * macs_valid + bias_adds + adds``, padding-aware) and the output
  shape (against a plain ``lax.conv_general_dilated`` of the target);
* both: with ``backend="all"`` and both frameworks present, the two modules are loaded with the same
  weights (:func:`random_weights`) and their outputs compared (:func:`cross_check`).

Counts are for a batch of ``batch`` samples (closed forms are per sample and scaled by ``batch``).

Input size
----------
The checks run at the target's ``input_size``; when the target has none, at the ``input_size``
argument; without either at ``n x n`` with ``n = max(16, 2K)``, ``K`` the larger kernel side
(:func:`~osc_design.backends.export.default_input_size`: every tap then falls on the zero border for
some outputs and inside the image for others, so padding-aware and naive counts differ). A size
given both ways must agree.
"""

from __future__ import annotations

import importlib
import importlib.util
import sys
from dataclasses import dataclass, field
from types import ModuleType
from typing import Any, Literal

import numpy as np

from ..cost import cost, xla_flops
from ..errors import BackendUnavailableError, OscDesignError, SpecError, UnknownBackendError
from ..ops import BatchNorm, Conv2d
from ..spec import LayerSpec, Pair
from .export import default_input_size, export_source, resolve_input_size

__all__ = [
    "BACKENDS",
    "Check",
    "CrossCheck",
    "VerifyReport",
    "available_backends",
    "copy_weights",
    "cross_check",
    "default_input_size",
    "export_source",
    "get_backend",
    "random_weights",
    "resolve_input_size",
    "verify",
]

BACKENDS = ("torch", "jax")
"""Backend names, in display order."""

_REQUIRES = {"torch": ("torch",), "jax": ("jax", "flax")}
_FRAMEWORK = {"torch": "PyTorch", "jax": "JAX and Flax"}


def _check_name(name: str) -> str:
    if name not in _REQUIRES:
        raise UnknownBackendError(f"unknown backend {name!r}; expected one of {', '.join(BACKENDS)}")
    return name


def get_backend(name: str) -> ModuleType:
    """The backend module ``osc_design.backends.<name>``, importing its framework now.

    Raises
    ------
    UnknownBackendError
        ``name`` is not one of :data:`BACKENDS`.
    BackendUnavailableError
        The framework cannot be imported; the message names the pip extra to install.
    """
    _check_name(name)
    try:
        for module in _REQUIRES[name]:
            importlib.import_module(module)
    except ImportError as exc:
        raise BackendUnavailableError(
            f"the {name!r} backend needs {_FRAMEWORK[name]}, which cannot be imported ({exc}); "
            f"install it with: pip install 'osc-design[{name}]'"
        ) from exc
    return importlib.import_module(f"osc_design.backends.{name}")


def available_backends() -> list[str]:
    """Names of the backends whose frameworks are installed (checked without importing them)."""
    out = []
    for name in BACKENDS:
        try:
            found = all(importlib.util.find_spec(m) is not None for m in _REQUIRES[name])
        except (ImportError, ValueError):  # a module set to None in sys.modules, or without a spec
            found = False
        if found:
            out.append(name)
    return out


def _backend_of(module: Any) -> str:
    torch = sys.modules.get("torch")
    if torch is not None and isinstance(module, torch.nn.Module):
        return "torch"
    nnx = sys.modules.get("flax.nnx")
    if nnx is not None and isinstance(module, nnx.Module):
        return "jax"
    raise UnknownBackendError(f"{type(module).__name__} is neither a torch.nn.Module nor a flax.nnx.Module")


# ------------------------------------------------------------------------------------------ weights


def random_weights(spec: LayerSpec, seed: int = 0) -> dict[str, dict[str, np.ndarray]]:
    """Random float32 weights for every conv and batch-norm node, in the canonical PyTorch layout.

    Conv ``weight`` ``(O, I/groups, kh, kw)`` and ``bias`` uniform in ``+-1/sqrt(fan_in)``; batch norm
    ``weight`` and ``running_var`` uniform in ``[0.5, 1.5]``, ``bias`` and ``running_mean`` normal with
    standard deviation 0.1 (so that a check sees every statistic).
    """
    rng = np.random.default_rng(seed)
    out: dict[str, dict[str, np.ndarray]] = {}
    for nid in spec.order:
        node = spec.node_map[nid]
        if isinstance(node, Conv2d):
            shape = node.weight_shape
            bound = 1.0 / np.sqrt(shape[1] * shape[2] * shape[3])
            arrays = {"weight": rng.uniform(-bound, bound, shape).astype(np.float32)}
            if node.bias:
                arrays["bias"] = rng.uniform(-bound, bound, (node.out_channels,)).astype(np.float32)
            out[nid] = arrays
        elif isinstance(node, BatchNorm):
            c = node.num_features
            out[nid] = {
                "weight": rng.uniform(0.5, 1.5, c).astype(np.float32),
                "bias": rng.normal(0.0, 0.1, c).astype(np.float32),
                "running_mean": rng.normal(0.0, 0.1, c).astype(np.float32),
                "running_var": rng.uniform(0.5, 1.5, c).astype(np.float32),
            }
    return out


def copy_weights(src: Any, dst: Any, spec: LayerSpec) -> dict[str, dict[str, np.ndarray]]:
    """Copy the weights of module ``src`` into module ``dst``, both built from ``spec``; either framework.

    Goes through the canonical numpy form ``{node id: {name: array}}`` (PyTorch layout), which it
    returns. Works on runtime modules and on exported ones (same attribute names).
    """
    weights = get_backend(_backend_of(src)).get_weights(src, spec)
    get_backend(_backend_of(dst)).set_weights(dst, spec, weights)
    return weights


# ------------------------------------------------------------------------------------------ reports


@dataclass(frozen=True)
class Check:
    """One measured quantity: closed form against the framework's own counter."""

    backend: str
    quantity: str
    convention: str
    expected: Any
    measured: Any
    ok: bool

    def to_row(self) -> dict[str, Any]:
        """``{"backend", "quantity", "convention", "closed_form", "measured", "ok"}``."""
        return {
            "backend": self.backend,
            "quantity": self.quantity,
            "convention": self.convention,
            "closed_form": self.expected,
            "measured": self.measured,
            "ok": self.ok,
        }


@dataclass(frozen=True)
class CrossCheck:
    """Outputs of the PyTorch and JAX modules of one spec, loaded with the same weights, on the same input."""

    max_abs_diff: float
    shape: tuple[int, ...]
    rtol: float
    atol: float
    ok: bool


@dataclass(frozen=True)
class VerifyReport:
    """What :func:`verify` measured.

    Attributes
    ----------
    family, target:
        The spec's family and target (``Target.describe()``).
    input_size, batch:
        Where the counts were measured.
    checks:
        One :class:`Check` per backend and quantity.
    skipped:
        Backend name -> why it was not checked (framework missing; only with ``backend="all"``).
    """

    family: str
    target: str
    input_size: Pair
    batch: int
    checks: tuple[Check, ...]
    skipped: dict[str, str] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        """True when at least one check ran and every check agrees."""
        return bool(self.checks) and all(c.ok for c in self.checks)

    @property
    def failures(self) -> tuple[Check, ...]:
        """The checks that disagree."""
        return tuple(c for c in self.checks if not c.ok)

    def to_rows(self) -> list[dict[str, Any]]:
        """One dict per check (see :meth:`Check.to_row`), for a table."""
        return [c.to_row() for c in self.checks]

    def __str__(self) -> str:
        head = (f"{self.family} for {self.target} at {self.input_size[0]}x{self.input_size[1]}, batch {self.batch}: "
                f"{'ok' if self.ok else 'MISMATCH'}")
        rows = [(c.backend, c.quantity, str(c.expected), str(c.measured), "ok" if c.ok else "MISMATCH")
                for c in self.checks]
        rows += [(name, "skipped", reason, "", "") for name, reason in self.skipped.items()]
        widths = [max(len(r[i]) for r in rows) if rows else 0 for i in range(5)]
        lines = [head] + ["  " + "  ".join(v.ljust(w) for v, w in zip(r, widths)).rstrip() for r in rows]
        return "\n".join(lines)


# ------------------------------------------------------------------------------------------ checks


def _check_batch(batch: int) -> int:
    if type(batch) is not int or batch < 1:
        raise SpecError(f"`batch` (={batch!r}) must be an integer >= 1")
    return batch


def _verify_torch(spec: LayerSpec, size: Pair, batch: int, module: Any, seed: int) -> list[Check]:
    tb = get_backend("torch")
    import torch

    m = tb.build_module(spec, seed=seed) if module is None else module
    c = cost(spec, size)
    gen = torch.Generator().manual_seed(seed)
    x = torch.randn(batch, spec.target.in_channels, *size, generator=gen)
    was_training = m.training
    m.eval()
    try:
        flops, y = tb.count_flops(m, x)
    finally:
        m.train(was_training)
    params = tb.count_params(m)
    ref = tb.reference_output_shape(spec, size, batch)
    return [
        Check("torch", "params", "sum(p.numel()) = params + bias_params", c.total_params, params,
              params == c.total_params),
        Check("torch", "flops", "FlopCounterMode forward = 2 * macs (padding taps included, bias ignored)",
              batch * c.flops, flops, flops == batch * c.flops),  # type: ignore[operator]
        Check("torch", "output_shape", "NCHW, as nn.Conv2d of the target", ref, tuple(y.shape), tuple(y.shape) == ref),
    ]


def _verify_jax(spec: LayerSpec, size: Pair, batch: int, module: Any, seed: int) -> list[Check]:
    jb = get_backend("jax")
    import jax
    import jax.numpy as jnp

    m = jb.build_module(spec, seed=seed) if module is None else module
    c = cost(spec, size)
    x = jax.ShapeDtypeStruct((batch, *size, spec.target.in_channels), jnp.float32)
    compiled, unoptimized = jb.xla_flop_counts(m, x)
    params = jb.count_params(m)
    shape = jb.output_shape(m, x)
    ref = jb.reference_output_shape(spec, size, batch)
    expected = xla_flops(spec, batch, size)
    return [
        Check("jax", "params", "nnx.Param sizes = params + bias_params", c.total_params, params,
              params == c.total_params),
        Check("jax", "xla_flops", "compile().cost_analysis() flops = 2 * macs_valid + bias_adds + adds + norm_ops",
              expected, compiled, compiled == expected),
        Check("jax", "xla_flops_hlo", "lower().cost_analysis() flops (before XLA passes), same convention",
              expected, unoptimized, unoptimized == expected),
        Check("jax", "output_shape", "NHWC, as lax.conv_general_dilated of the target", ref, shape, shape == ref),
    ]


def verify(
    spec: LayerSpec,
    backend: Literal["torch", "jax", "all"] = "all",
    input_size: int | Pair | None = None,
    batch: int = 1,
    *,
    module: Any = None,
    seed: int = 0,
) -> VerifyReport:
    """Check the closed-form counts of ``spec`` against each framework's own counters.

    Parameters
    ----------
    spec:
        The design.
    backend:
        ``"torch"``, ``"jax"``, or ``"all"`` (every installed backend; missing ones are listed in
        ``skipped``; with both present the outputs are also cross-checked).
    input_size:
        Used when the target has no input size (see the module docstring for the default).
    batch:
        Batch size of the measurement; closed forms are scaled by it.
    module:
        Check this module (e.g. one loaded from :func:`export_source`) instead of building one; needs a
        single ``backend``.
    seed:
        Seed of the weights and inputs.

    Returns
    -------
    VerifyReport
        ``.ok`` when every count matches exactly.

    Raises
    ------
    UnknownBackendError
        For an unknown backend name.
    BackendUnavailableError
        A single requested backend whose framework is missing.
    """
    if backend != "all":
        _check_name(backend)
    elif module is not None:
        raise SpecError("`module` needs a single backend ('torch' or 'jax'), not 'all'")
    size = resolve_input_size(spec, input_size)
    batch = _check_batch(batch)
    names = BACKENDS if backend == "all" else (backend,)
    checks: list[Check] = []
    skipped: dict[str, str] = {}
    ran = []
    for name in names:
        try:
            get_backend(name)
        except BackendUnavailableError as exc:
            if backend != "all":
                raise
            skipped[name] = str(exc)
            continue
        run = _verify_torch if name == "torch" else _verify_jax
        checks += run(spec, size, batch, module, seed)
        ran.append(name)
    if len(ran) == 2:
        cc = cross_check(spec, size, batch=batch, seed=seed)
        checks.append(Check("torch+jax", "outputs", f"same weights and input: allclose(rtol={cc.rtol}, atol={cc.atol})",
                            f"max |diff| <= {cc.atol} + {cc.rtol}|y|", f"max |diff| = {cc.max_abs_diff:.3g}", cc.ok))
    return VerifyReport(spec.family, spec.target.describe(), size, batch, tuple(checks), skipped)


def cross_check(
    spec: LayerSpec,
    input_size: int | Pair | None = None,
    *,
    batch: int = 2,
    seed: int = 0,
    rtol: float = 1e-4,
    atol: float = 1e-4,
    torch_module: Any = None,
    jax_module: Any = None,
) -> CrossCheck:
    """Load the same random weights into the PyTorch and JAX modules of ``spec`` and compare outputs.

    Both run in float32 on the same standard-normal input (NCHW for PyTorch, its NHWC transpose for
    JAX); the PyTorch module runs in eval mode. ``torch_module`` / ``jax_module`` replace the runtime
    modules (e.g. by exported ones); their weights are overwritten.
    """
    size = resolve_input_size(spec, input_size)
    batch = _check_batch(batch)
    tb, jb = get_backend("torch"), get_backend("jax")
    import jax
    import jax.numpy as jnp
    import torch

    weights = random_weights(spec, seed)
    tm = tb.build_module(spec) if torch_module is None else torch_module
    jm = jb.build_module(spec) if jax_module is None else jax_module
    tb.set_weights(tm, spec, weights)
    jb.set_weights(jm, spec, weights)
    x = np.random.default_rng(seed + 1).standard_normal((batch, spec.target.in_channels, *size)).astype(np.float32)
    was_training = tm.training
    tm.eval()
    try:
        with torch.no_grad():
            yt = tm(torch.from_numpy(x)).numpy()
    finally:
        tm.train(was_training)
    with jax.default_matmul_precision("highest"):  # no TF32 / bf16 passes on accelerators
        yj = np.asarray(jm(jnp.asarray(x.transpose(0, 2, 3, 1)))).transpose(0, 3, 1, 2)
    if yt.shape != yj.shape:
        raise OscDesignError(f"output shapes differ: torch {yt.shape}, jax {yj.shape}")
    diff = float(np.max(np.abs(yt - yj))) if yt.size else 0.0
    ok = bool(np.allclose(yt, yj, rtol=rtol, atol=atol))
    return CrossCheck(diff, tuple(yt.shape), rtol, atol, ok)
