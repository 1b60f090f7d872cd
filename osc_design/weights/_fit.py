"""The iterative fit: least squares on the weights alone (no data), by L-BFGS with the exact gradient.

The loss is ``||D(w) - W||^2 / ||W||^2`` over the common window (:mod:`._operator`), ``D`` the design's
dense kernel as a function of all its conv weights (batch norms held fixed), and its gradient is the
adjoint pass :func:`~._operator.kernel_grads`. The fit keeps the best point it visits, so it never
ends above its start.
"""

from __future__ import annotations

import contextlib

from collections.abc import Mapping

import numpy as np

from ..spec import LayerSpec
from ._operator import Params, Window, kernel_grads, kernels


def pack(spec: LayerSpec, weights: Mapping[str, np.ndarray]) -> np.ndarray:
    """All conv weights of ``spec`` as one flat vector (topological order)."""
    return np.concatenate([np.asarray(weights[c.id], dtype=np.float64).ravel() for c in spec.convs])


def unpack(spec: LayerSpec, vector: np.ndarray) -> dict[str, np.ndarray]:
    """The inverse of :func:`pack`."""
    out, start = {}, 0
    for c in spec.convs:
        size = int(np.prod(c.weight_shape))
        out[c.id] = vector[start:start + size].reshape(c.weight_shape)
        start += size
    return out


def merged_params(fixed: Params, weights: Mapping[str, np.ndarray]) -> dict[str, dict[str, np.ndarray]]:
    """``fixed`` (copied) with every conv's ``weight`` from ``weights``."""
    merged = {k: dict(v) for k, v in fixed.items()}
    for nid, w in weights.items():
        merged.setdefault(nid, {})["weight"] = w
    return merged


def residual(spec: LayerSpec, params: Params, target: np.ndarray, win: Window) -> float:
    """``||D - target|| / ||target||`` (``target`` on ``win``)."""
    d = kernels(spec, params, win)[spec.output]
    return float(np.linalg.norm(d - target) / max(np.linalg.norm(target), np.finfo(float).tiny))


class _ConvergedError(Exception):
    """Raised inside the loss once the fit is exact to rounding (stops L-BFGS early)."""


EXACT = 1e-26
"""Relative squared error at which the fit stops: a relative error of 1e-13, rounding level."""


def fit(spec: LayerSpec, fixed: Params, start: Mapping[str, np.ndarray], target: np.ndarray, win: Window,
        max_iter: int = 200) -> dict[str, np.ndarray]:
    """L-BFGS from the conv weights ``start`` (other params ``fixed``); the best weights visited."""
    from scipy.optimize import minimize

    scale = max(float(np.sum(target**2)), np.finfo(float).tiny)
    best: dict[str, object] = {"f": np.inf, "x": pack(spec, start)}

    def loss(x: np.ndarray) -> tuple[float, np.ndarray]:
        params = merged_params(fixed, unpack(spec, x))
        ks = kernels(spec, params, win)
        diff = ks[spec.output] - target
        f = float(np.sum(diff**2)) / scale
        if f < best["f"]:  # type: ignore[operator]
            best["f"], best["x"] = f, x.copy()
        if f < EXACT:
            raise _ConvergedError
        grads = kernel_grads(spec, params, 2.0 * diff / scale, ks)
        return f, pack(spec, grads)

    with contextlib.suppress(_ConvergedError):  # raised by ``loss`` once the fit is exact: stop there
        minimize(loss, best["x"], jac=True, method="L-BFGS-B",
                 options={"maxiter": max_iter, "maxfun": 2 * max_iter, "ftol": 0.0, "gtol": 0.0, "maxcor": 30})
    return unpack(spec, best["x"])  # type: ignore[arg-type]
