"""Keep what a trained conv learned: a design's dense kernel, and the projection of a trained kernel onto it.

Every op of a layer spec is linear or affine, so a design computes, away from the border,
``y[:, q] = sum_r D[:, :, r] x[:, q * s + r] + b``. :func:`dense_kernel` gives ``D`` (``(C_out, C_in, kh', kw')``
over :func:`kernel_window`, which is the target's own ``K_h x K_w`` window unless the design reads beyond it)
and :func:`dense_bias` gives ``b`` (conv biases, batch norms in eval mode). :func:`project` finds the
design's parameters whose ``D`` is closest to a trained conv's weight in Frobenius norm (taps outside the
target's window count as error) and carries its bias.

How (:attr:`Projection.method`):

* ``"closed form"``: a single conv (``conv``, ``grouped``: the restriction) or a chain of two convs whose taps
  add to distinct offsets (``depthwise-separable``, ``bsconv-u``, ``spatial-separable``, ``osc-2``): one
  truncated SVD per channel block, the exact optimum (see :mod:`._chain`).
* ``"iterative"``: any other design (``osc``, ``bsconv-s``, ``depthwise-spatial-separable``, ``compconv``,
  ``slak``, ``shiftwise``): L-BFGS on the weights alone (no data), started from the greedy SVD sweep of
  the chain where the design is one (never ending above it), else from a seeded random start.

Params are ``{node id: {name: ndarray}}`` in PyTorch's names and layouts, as
:func:`osc_design.backends.torch.set_weights` loads them. Batch norms of a design are set to the identity
(scale 1, shift 0, running mean 0, running variance ``1 - eps``) and any bias goes to the conv or batch norm
nearest the output that can carry it.

>>> import numpy as np
>>> from osc_design import Target
>>> from osc_design.registry import get_family
>>> spec = get_family("depthwise-separable").build(Target(4, 6, 3))
>>> w = np.random.default_rng(0).standard_normal((6, 4, 3, 3))
>>> p = project(spec, w)
>>> p.method, sorted(p.params), p.params["dw"]["weight"].shape
('closed form', ['dw', 'pw'], (4, 1, 3, 3))
>>> bool(np.isclose(np.linalg.norm(p.dense() - w) / np.linalg.norm(w), p.error))
True
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ..errors import SpecError, check_type, first_line
from ..geometry import check_int
from ..ops import BatchNorm, Conv2d
from ..spec import LayerSpec
from ._chain import chain_of, chain_projection, exact_chain
from ._fit import fit, merged_params, residual
from ._operator import BN_EPS, Params, Window, biases, kernels, window

__all__ = ["Projection", "project", "dense_kernel", "dense_bias", "kernel_window", "expand_groups", "METHODS"]

METHODS = ("auto", "closed", "iterative")
"""``project``'s methods: the closed form where it is exact else iterative; only the closed form; only iterative."""


def kernel_window(spec: LayerSpec) -> Window:
    """The offsets :func:`dense_kernel` spans: ``lo`` (per axis, input pixels relative to ``q * s``) and ``size``.

    The target's window is ``lo = -padding``, ``size = dilation * (kernel_size - 1) + 1`` (a dilated
    target's taps sit every ``dilation`` offsets; the offsets between them count as error).
    """
    check_type(spec, LayerSpec, "spec")
    return window(spec)


def dense_kernel(spec: LayerSpec, params: Params) -> np.ndarray:
    """The exact linear part of the design: ``(C_out, C_in, kh', kw')`` over :func:`kernel_window` (float64).

    Batch norms act in eval mode (missing batch-norm arrays: PyTorch's initial values); every conv needs its
    ``weight``.
    """
    check_type(spec, LayerSpec, "spec")
    return kernels(spec, params)[spec.output]


def dense_bias(spec: LayerSpec, params: Params) -> np.ndarray:
    """The affine part ``(C_out,)`` of the design at interior positions: conv biases and batch-norm shifts
    carried through the graph."""
    check_type(spec, LayerSpec, "spec")
    return biases(spec, params)


def expand_groups(weight: np.ndarray, in_channels: int) -> np.ndarray:
    """A grouped conv's weight ``(O, I/g, kh, kw)`` as the dense ``(O, I, kh, kw)`` it equals (zeros off its groups).

    >>> expand_groups(np.ones((4, 1, 1, 1)), 4)[:, :, 0, 0].astype(int).tolist()
    [[1, 0, 0, 0], [0, 1, 0, 0], [0, 0, 1, 0], [0, 0, 0, 1]]
    """
    o, per = weight.shape[:2]
    if per == 0 or in_channels % per or o % (in_channels // per):
        raise SpecError(f"`weight` of shape {weight.shape} is not a grouped weight for {in_channels} input channels")
    g = in_channels // per
    dense = np.zeros((o, in_channels, *weight.shape[2:]))
    cout = o // g
    for j in range(g):
        dense[j * cout:(j + 1) * cout, j * per:(j + 1) * per] = weight[j * cout:(j + 1) * cout]
    return dense


@dataclass(frozen=True)
class Projection:
    """A design's parameters fitted to a trained conv (see :func:`project`).

    Attributes
    ----------
    spec:
        The design.
    params:
        ``{node id: {name: ndarray}}`` (float64), for :func:`osc_design.backends.torch.set_weights`.
    error:
        ``||D - W|| / ||W||`` (Frobenius, over the window; 0 for a zero ``W``).
    bias_error:
        ``||b_design - b|| / ||b||`` for a given bias (0 for a zero one), ``None`` without one.
    method:
        ``"closed form"`` or ``"iterative"``.
    """

    spec: LayerSpec
    params: dict[str, dict[str, np.ndarray]]
    error: float
    bias_error: float | None
    method: str
    start_error: float | None = field(default=None, compare=False)

    def dense(self) -> np.ndarray:
        """:func:`dense_kernel` of the fitted params."""
        return dense_kernel(self.spec, self.params)

    def bias(self) -> np.ndarray:
        """:func:`dense_bias` of the fitted params."""
        return dense_bias(self.spec, self.params)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready summary: family, method, errors."""
        return {"family": self.spec.family, "method": self.method, "error": self.error,
                "bias_error": self.bias_error}


def _real_array(value: Any, name: str) -> np.ndarray:
    """``value`` as a float64 array, or a :class:`SpecError` naming argument ``name``: the value must be an array
    of real numbers (bool, int or float dtype), all finite.

    >>> _real_array([1, 2], "bias").tolist()
    [1.0, 2.0]
    >>> _real_array(np.ones(2, dtype=complex), "bias")
    Traceback (most recent call last):
    ...
    osc_design.errors.SpecError: `bias` must be an array of real numbers, got dtype complex128 of shape (2,)
    """
    try:
        a = np.asarray(value)
    except (TypeError, ValueError, RuntimeError) as e:  # ragged nesting, a tensor that requires grad, ...
        raise SpecError(f"`{name}` ({type(value).__name__}) is not an array of numbers: "
                        f"{first_line(e)}") from None
    if a.dtype.kind not in "biuf":
        raise SpecError(f"`{name}` must be an array of real numbers, got dtype {a.dtype} of shape {a.shape}")
    a = a.astype(np.float64)
    for bad, found in (("NaN", np.isnan(a)), ("inf", np.isinf(a))):
        if np.any(found):
            raise SpecError(f"`{name}` (shape {a.shape}) contains {bad} ({int(np.sum(found))} of {a.size} values)")
    return a


def _target(spec: LayerSpec, weight: Any, win: Window) -> np.ndarray:
    t = spec.target
    w = _real_array(weight, "weight")
    if w.ndim != 4 or w.shape[0] != t.out_channels or tuple(w.shape[2:]) != t.kernel_size:
        raise SpecError(f"`weight` has shape {w.shape}, expected ({t.out_channels}, {t.in_channels} / groups, "
                        f"{t.kernel_size[0]}, {t.kernel_size[1]}) for target {t.describe()}")
    if w.shape[1] != t.in_channels:
        w = expand_groups(w, t.in_channels)
    out = np.zeros((t.out_channels, t.in_channels, *win.size))
    (y, x), (kh, kw), (dh, dw) = win.index((-t.padding[0], -t.padding[1])), t.kernel_size, t.dilation
    out[:, :, y:y + dh * (kh - 1) + 1:dh, x:x + dw * (kw - 1) + 1:dw] = w  # tap t at offset d * t - p
    return out


def _fixed(spec: LayerSpec) -> dict[str, dict[str, np.ndarray]]:
    """Identity batch norms and zero conv biases (the params that are not fitted to the kernel)."""
    out: dict[str, dict[str, np.ndarray]] = {}
    for node in spec.nodes:
        if isinstance(node, BatchNorm):
            c = node.num_features
            out[node.id] = {"weight": np.ones(c), "bias": np.zeros(c), "running_mean": np.zeros(c),
                            "running_var": np.full(c, 1.0 - BN_EPS)}
        elif isinstance(node, Conv2d) and node.bias:
            out[node.id] = {"bias": np.zeros(node.out_channels)}
    return out


def _random_start(spec: LayerSpec, seed: int | None, norm: float) -> dict[str, np.ndarray]:
    """Seeded normal weights, each conv scaled like PyTorch's fan-in init, the whole scaled toward ``norm``."""
    rng = np.random.default_rng(seed)
    start = {c.id: rng.standard_normal(c.weight_shape) / np.sqrt(np.prod(c.weight_shape[1:])) for c in spec.convs}
    d = np.linalg.norm(kernels(spec, {k: {"weight": v} for k, v in start.items()})[spec.output])
    if d > 0 and norm > 0:
        factor = (norm / d) ** (1.0 / max(spec.stages, 1))
        start = {k: v * factor for k, v in start.items()}
    return start


def _bias_sinks(spec: LayerSpec) -> list[str]:
    """The nodes that can carry a bias (batch norms, convs with a bias), nearest the output first."""
    return [n for n in reversed(spec.order) if isinstance(spec.node_map[n], BatchNorm)
            or (isinstance(node := spec.node_map[n], Conv2d) and node.bias)]


def _bias(spec: LayerSpec, bias: Any) -> np.ndarray | None:
    """The checked ``bias`` argument of :func:`project` (``None`` stays ``None``)."""
    if bias is None:
        return None
    b = _real_array(bias, "bias")
    if b.shape != (spec.target.out_channels,):
        raise SpecError(f"`bias` has shape {b.shape}, expected ({spec.target.out_channels},)")
    return b


def _fit_bias(spec: LayerSpec, params: dict[str, dict[str, np.ndarray]], b: np.ndarray | None) -> float | None:
    """Put bias ``b`` on the bias-carrying nodes nearest the output (least squares); the relative bias error."""
    if b is None:
        return None
    sinks = _bias_sinks(spec)
    scale = max(float(np.linalg.norm(b)), np.finfo(float).tiny)
    want = b - biases(spec, params)
    for used in range(1, len(sinks) + 1):
        chosen = sinks[:used]
        sizes = [spec.channels(n) for n in chosen]
        cols, start, probes = sum(sizes), 0, {}
        for n, c in zip(chosen, sizes, strict=True):
            probe = np.zeros((c, cols))
            probe[:, start:start + c] = np.eye(c)
            probes[n], start = probe, start + c
        response = biases(spec, params, probes)
        solution = np.linalg.lstsq(response, want, rcond=None)[0]
        if np.linalg.norm(response @ solution - want) <= 1e-12 * scale or used == len(sinks):
            start = 0
            for n, c in zip(chosen, sizes, strict=True):
                params[n]["bias"] = params[n]["bias"] + solution[start:start + c]
                start += c
            break
    return float(np.linalg.norm(biases(spec, params) - b) / scale) if np.any(b) else 0.0


def project(spec: LayerSpec, weight: Any, bias: Any = None, *, method: str = "auto", init: str = "sweep",
            max_iter: int = 200, seed: int | None = 0) -> Projection:
    """The design's parameters that bring its dense kernel closest to a trained conv's ``weight``.

    Parameters
    ----------
    spec:
        The design (its target says the conv's channels, kernel, stride and padding).
    weight:
        The trained conv's weight ``(C_out, C_in / groups, K_h, K_w)`` (a grouped weight is its block-diagonal
        dense kernel).
    bias:
        Its bias ``(C_out,)``, carried by the design's bias-carrying nodes (see :attr:`Projection.bias_error`).
    method:
        ``"auto"`` (closed form where exact, else iterative), ``"closed"`` (a :class:`~osc_design.SpecError`
        where none is exact) or ``"iterative"``.
    init:
        Start of the iterative fit: ``"sweep"`` (the greedy SVD sweep of a chain; random otherwise) or
        ``"random"``.
    max_iter, seed:
        L-BFGS iterations (a positive int), and the seed of a random start (an int >= 0, or ``None`` for a
        fresh one).

    ``weight`` and ``bias`` must be finite arrays of real numbers; any bad argument is a
    :class:`~osc_design.SpecError` naming it.
    """
    check_type(spec, LayerSpec, "spec")
    if method not in METHODS:
        raise SpecError(f"`method` (={method!r}) must be one of {', '.join(METHODS)}")
    if init not in ("sweep", "random"):
        raise SpecError(f"`init` (={init!r}) must be 'sweep' or 'random'")
    check_int(max_iter, "max_iter", minimum=1)
    if seed is not None:
        check_int(seed, "seed", minimum=0)
    win = window(spec)
    target = _target(spec, weight, win)
    b = _bias(spec, bias)
    params = _fixed(spec)
    chain = chain_of(spec, params)
    exact = chain is not None and exact_chain(spec, chain)
    if method == "closed" and not exact:
        raise SpecError(f"family {spec.family!r}: no exact closed form for this design; use method='iterative'")
    start_error = None
    if chain is not None and (init == "sweep" or (exact and method != "iterative")):
        weights = chain_projection(spec, chain, target, win.lo)
    else:
        weights = _random_start(spec, seed, float(np.linalg.norm(target)))
    if not exact or method == "iterative":
        start_error = residual(spec, merged_params(params, weights), target, win)
        weights = fit(spec, params, weights, target, win, max_iter)
    params = merged_params(params, weights)
    error = residual(spec, params, target, win) if np.any(target) else 0.0
    bias_error = _fit_bias(spec, params, b)
    kind = "closed form" if exact and method != "iterative" else "iterative"
    return Projection(spec, params, error, bias_error, kind, start_error)

