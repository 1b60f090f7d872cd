"""Framework backends: build a layer spec in PyTorch or JAX, check its exact costs, export its source.

Two optional backends, each behind a pip extra and imported only when asked for (importing this
package imports neither framework):

=========  ====================================  =============================  ===================
name       module                                builds                         extra
=========  ====================================  =============================  ===================
``torch``  :mod:`osc_design.backends.torch`      ``torch.nn.Module``, NCHW      ``osc-design[torch]``
``jax``    :mod:`osc_design.backends.jax`        Flax NNX module, NHWC          ``osc-design[jax]``
``onnx…``  :mod:`osc_design.backends.onnx`       ONNX graph run by onnxruntime  ``osc-design[onnx]``
=========  ====================================  =============================  ===================

(``onnx…`` is ``onnxruntime``: the ONNX graph is built with the ``onnx`` package alone, see
:func:`osc_design.backends.onnx.to_onnx`; onnxruntime runs and times it.)

Layout of the package
---------------------
* :mod:`~osc_design.backends.program` (no framework): the op sequence a spec becomes (:func:`program`),
  shared by the runtime modules and the exporter, and the :class:`~osc_design.backends.program.Op`
  record of an op table.
* one module per framework: its op table ``OPS`` (for each op, how the runtime module builds and runs it
  and the source the exporter writes for it), its runtime module, weights and counters, and one small
  class implementing :class:`Backend` (``BACKEND``), which :func:`get_backend` returns.
* :mod:`~osc_design.backends.export` (no framework): standalone source, from the framework modules'
  templates read from their text.

A new op is one ``OPS`` entry per framework module; a new backend is one framework module and one
line of ``_REGISTRY`` below.

:func:`verify` measures every closed-form count with the framework's own counter and reports both
(each backend's :meth:`Backend.verify_counts`):

* ``torch``: parameters (``sum(p.numel())``), forward FLOPs (``torch.utils.flop_counter.FlopCounterMode``,
  expected ``2 * macs``: every tap, padding included, bias ignored) and the output shape (against a
  plain ``nn.Conv2d`` of the target);
* ``jax``: parameters (``nnx.Param`` leaves), XLA FLOPs (``jax.jit(...).lower(...).compile().cost_analysis()``,
  expected ``Cost.xla_flops`` = ``2 * macs_valid + bias_adds + adds + norm_ops``, padding-aware, less one
  per output of each depthwise 1x1 conv XLA computes as a multiply: :func:`osc_design.cost.xla_multiplies`;
  ``lower().cost_analysis()``, before that rewrite, against ``Cost.xla_flops_unoptimized``) and the output
  shape (against a plain ``lax.conv_general_dilated`` of the target);
* ``onnxruntime``: the full ONNX checker, parameters (the weight initializers: conv weight and bias,
  batch-norm scale and shift; not the running statistics, shapes or indices), MACs of the graph's
  ``Conv`` nodes at the shapes of ONNX shape inference (expected ``macs``), the output shape, and the
  outputs against the PyTorch module with the same weights (relative error ``max|diff| / max|y|``
  within 1e-5; when torch is installed);
* all: with ``backend="all"`` and several frameworks present, the modules are loaded with the same
  weights (:func:`random_weights`) and the outputs of each compared with the first's (:func:`cross_check`).

Counts are for a batch of ``batch`` samples (closed forms are per sample and scaled by ``batch``).

Input size
----------
The checks run at the target's ``input_size``; when the target has none, at the ``input_size``
argument; without either at ``n x n`` with ``n = max(16, 2K)``, ``K`` the larger kernel side
(:func:`~osc_design.backends.program.default_input_size`: every tap then falls on the zero border for
some outputs and inside the image for others, so padding-aware and naive counts differ). A size
given both ways must agree.
"""

from __future__ import annotations

import importlib
import importlib.util
import os
import sys
from collections.abc import Callable, Mapping
from typing import Any, Literal, Protocol

import numpy as np

from ..errors import BackendUnavailableError, OscDesignError, SpecError, UnknownBackendError, check_type
from ..ops import BatchNorm, Conv2d
from ..spec import LayerSpec, Pair
from .export import export_source
from .program import default_input_size, resolve_input_size
from .report import Check, CrossCheck, VerifyReport

__all__ = [
    "BACKENDS",
    "Backend",
    "Timer",
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
    "usable_cpus",
    "verify",
]

_REGISTRY: dict[str, tuple[tuple[str, ...], str]] = {
    "torch": (("torch",), "PyTorch"),
    "jax": (("jax", "flax"), "JAX and Flax"),
    "onnxruntime": (("onnx", "onnxruntime"), "onnx and onnxruntime"),
}
"""Backend name -> (the modules it imports, the framework's name); its module is ``osc_design.backends.<name>``
(``osc_design.backends.onnx`` for ``onnxruntime``: :data:`_MODULES`)."""
_MODULES = {"onnxruntime": "onnx"}
_EXTRAS = {"onnxruntime": "onnx"}

BACKENDS = tuple(_REGISTRY)
"""Backend names, in display order."""


class Timer(Protocol):
    """A backend's timed calls for one device, dtype, thread count and batch (a context manager).

    :mod:`osc_design.latency.timing` times what these return; ``sync`` (``None``: nothing to wait for) is
    applied to each result before the clock stops.
    """

    sync: Callable[[Any], Any] | None

    def __enter__(self) -> Timer: ...

    def __exit__(self, *exc: object) -> None: ...

    def module_call(self, spec: LayerSpec, module: Any = None, seed: int = 0) -> Callable[[], Any]:
        """A call of the whole module of ``spec`` (or of ``module``) on a fresh input."""
        ...

    def node_call(self, spec: LayerSpec, node_id: str, seed: int = 0) -> Callable[[], Any]:
        """A call of one node of the module built from ``spec``, on a fresh input per input slot."""
        ...


class Backend(Protocol):
    """What each framework module's ``BACKEND`` offers (see the module docstring for the layout).

    Attributes
    ----------
    name:
        ``"torch"``, ``"jax"``.
    layout:
        Tensor layout of its modules: ``"NCHW"`` or ``"NHWC"``. Weights are exchanged in the canonical
        PyTorch layout whatever it is (:func:`random_weights`).
    """

    name: str
    layout: str

    def build(self, spec: LayerSpec, *, seed: int = 0) -> Any:
        """The runtime module of ``spec``, initialised from ``seed``."""
        ...

    def get_weights(self, module: Any, spec: LayerSpec) -> dict[str, dict[str, np.ndarray]]:
        """The weights of a module of ``spec``, canonical: ``{node id: {name: array}}``."""
        ...

    def set_weights(self, module: Any, spec: LayerSpec, weights: Mapping[str, Mapping[str, np.ndarray]]) -> None:
        """Load canonical weights into a module of ``spec``, in place."""
        ...

    def owns(self, module: Any) -> bool:
        """Whether ``module`` is one of this framework's modules."""
        ...

    def run(self, module: Any, x: np.ndarray) -> np.ndarray:
        """The module's inference output for an NCHW float32 array, as an NCHW array."""
        ...

    def verify_counts(self, spec: LayerSpec, size: Pair, batch: int, *, module: Any = None,
                      seed: int = 0) -> list[Check]:
        """Each closed-form count against the framework's own counter, for ``module`` (default: built)."""
        ...

    def timer(self, device: str, dtype: str, threads: int, batch: int) -> Timer:
        """Timed calls on ``device`` in ``dtype`` with ``threads`` threads, ``batch`` samples per call."""
        ...


def _check_name(name: str, argument: str = "name") -> str:
    if not isinstance(name, str) or name not in _REGISTRY:
        raise UnknownBackendError(f"`{argument}`: unknown backend {name!r}; expected one of {', '.join(BACKENDS)}")
    return name


def get_backend(name: str) -> Backend:
    """The :class:`Backend` ``osc_design.backends.<name>.BACKEND``, importing its framework now.

    Its module (op table, runtime module, counters) is ``sys.modules[f"osc_design.backends.{name}"]``.

    Raises
    ------
    UnknownBackendError
        ``name`` is not one of :data:`BACKENDS`.
    BackendUnavailableError
        The framework cannot be imported; the message names the pip extra to install.
    """
    requires, framework = _REGISTRY[_check_name(name)]
    try:
        for module in requires:
            importlib.import_module(module)
    except ImportError as exc:
        raise BackendUnavailableError(
            f"the {name!r} backend needs {framework}, which cannot be imported ({exc}); "
            f"install it with: pip install 'osc-design[{_EXTRAS.get(name, name)}]'"
        ) from exc
    backend: Backend = importlib.import_module(f"osc_design.backends.{_MODULES.get(name, name)}").BACKEND
    return backend


def available_backends() -> list[str]:
    """Names of the backends whose frameworks are installed (checked without importing them)."""
    out = []
    for name, (requires, _) in _REGISTRY.items():
        try:
            found = all(importlib.util.find_spec(m) is not None for m in requires)
        except (ImportError, ValueError):  # a module set to None in sys.modules, or without a spec
            found = False
        if found:
            out.append(name)
    return out


def _backend_of(module: Any) -> Backend:
    """The backend whose framework ``module`` belongs to (only frameworks already imported are asked)."""
    for name, (requires, _) in _REGISTRY.items():
        if all(sys.modules.get(m) is not None for m in requires) and get_backend(name).owns(module):
            return get_backend(name)
    raise UnknownBackendError(f"{type(module).__name__} is neither a torch.nn.Module, a flax.nnx.Module "
                              "nor an OnnxModule")


def usable_cpus() -> int:
    """CPU cores this process may run on (its affinity mask where the OS has one)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - macOS, Windows
        return os.cpu_count() or 1


# ------------------------------------------------------------------------------------------ weights


def random_weights(spec: LayerSpec, seed: int = 0) -> dict[str, dict[str, np.ndarray]]:
    """Random float32 weights for every conv and batch-norm node, in the canonical PyTorch layout.

    Conv ``weight`` ``(O, I/groups, kh, kw)`` and ``bias`` uniform in ``+-1/sqrt(fan_in)``; batch norm
    ``weight`` and ``running_var`` uniform in ``[0.5, 1.5]``, ``bias`` and ``running_mean`` normal with
    standard deviation 0.1 (so that a check sees every statistic).
    """
    check_type(spec, LayerSpec, "spec")
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
    check_type(spec, LayerSpec, "spec")
    weights = _backend_of(src).get_weights(src, spec)
    _backend_of(dst).set_weights(dst, spec, weights)
    return weights


# ------------------------------------------------------------------------------------------ checks


def _check_batch(batch: int) -> int:
    if type(batch) is not int or batch < 1:
        raise SpecError(f"`batch` (={batch!r}) must be an integer >= 1")
    return batch


def _load(names: tuple[str, ...], strict: bool) -> tuple[list[Backend], dict[str, str]]:
    """The backends of ``names`` that import, and why the others do not (raised instead when ``strict``)."""
    ran: list[Backend] = []
    skipped: dict[str, str] = {}
    for name in names:
        try:
            ran.append(get_backend(name))
        except BackendUnavailableError as exc:
            if strict:
                raise
            skipped[name] = str(exc)
    return ran, skipped


def _cross_row(spec: LayerSpec, size: Pair, batch: int, seed: int, a: Backend, b: Backend) -> Check:
    cc = _compare_outputs(spec, size, batch, seed, 1e-4, 1e-4, (a, None), (b, None))
    return Check(f"{a.name}+{b.name}", "outputs", f"same weights and input: allclose(rtol={cc.rtol}, atol={cc.atol})",
                 f"max |diff| <= {cc.atol} + {cc.rtol}|y|", f"max |diff| = {cc.max_abs_diff:.3g}", cc.ok)


def verify(
    spec: LayerSpec,
    backend: Literal["torch", "jax", "onnxruntime", "all"] = "all",
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
        ``"torch"``, ``"jax"``, ``"onnxruntime"``, or ``"all"`` (every installed backend; missing ones are
        listed in ``skipped``; with several present the outputs are also cross-checked).
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
    check_type(spec, LayerSpec, "spec")
    if backend != "all":
        _check_name(backend, "backend")
    elif module is not None:
        raise SpecError("`module` needs a single backend ('torch', 'jax' or 'onnxruntime'), not 'all'")
    size = resolve_input_size(spec, input_size)
    batch = _check_batch(batch)
    ran, skipped = _load(BACKENDS if backend == "all" else (backend,), strict=backend != "all")
    checks = [c for b in ran for c in b.verify_counts(spec, size, batch, module=module, seed=seed)]
    checks += [_cross_row(spec, size, batch, seed, ran[0], other) for other in ran[1:]]
    return VerifyReport(spec.family, spec.target.describe(), size, batch, tuple(checks), skipped)


def _compare_outputs(spec: LayerSpec, size: Pair, batch: int, seed: int, rtol: float, atol: float,
                     *pairs: tuple[Backend, Any]) -> CrossCheck:
    """Outputs of the modules of two backends (``None``: built) loaded with the same random weights."""
    weights = random_weights(spec, seed)
    x = np.random.default_rng(seed + 1).standard_normal((batch, spec.target.in_channels, *size)).astype(np.float32)
    ys = []
    for b, module in pairs:
        m = b.build(spec) if module is None else module
        b.set_weights(m, spec, weights)
        ys.append(b.run(m, x))
    (a, _), (b, _) = pairs
    ya, yb = ys
    if ya.shape != yb.shape:
        raise OscDesignError(f"output shapes differ: {a.name} {ya.shape}, {b.name} {yb.shape}")
    diff = float(np.max(np.abs(ya - yb))) if ya.size else 0.0
    return CrossCheck(diff, tuple(ya.shape), rtol, atol, bool(np.allclose(ya, yb, rtol=rtol, atol=atol)))


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
    check_type(spec, LayerSpec, "spec")
    size = resolve_input_size(spec, input_size)
    batch = _check_batch(batch)
    pairs = (get_backend("torch"), torch_module), (get_backend("jax"), jax_module)
    return _compare_outputs(spec, size, batch, seed, rtol, atol, *pairs)
