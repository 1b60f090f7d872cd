"""Separable factorisations: ``depthwise-separable``, ``spatial-separable``, ``depthwise-spatial-separable``."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ..spec import GraphBuilder, LayerSpec, Target
from ._common import _options, _syms, add

if TYPE_CHECKING:  # pragma: no cover
    import sympy

__all__ = ["build_depthwise_separable", "build_spatial_separable", "build_depthwise_spatial_separable"]


def build_depthwise_separable(target: Target, **options: Any) -> LayerSpec:
    """MobileNet depthwise separable convolution (Howard et al. 2017, arXiv 1704.04861).

    Depthwise ``K_h x K_w`` on ``C_in`` (carries the stride and padding), then pointwise ``C_in -> C_out``
    at the output resolution. ``P = C_in K_h K_w + C_in C_out``,
    ``MACs = H_out W_out (C_in K_h K_w + C_in C_out)`` [V-2nd, papers.md section 0]. No options; full coverage.
    """
    _options("depthwise-separable", options, {})
    t = target
    b = GraphBuilder(t)
    y = b.conv2d(b.input, t.in_channels, t.kernel_size, stride=t.stride, padding=t.padding,
                 groups=t.in_channels, name="dw")
    y = b.conv2d(y, t.out_channels, 1, name="pw")
    return b.build(y, family="depthwise-separable")


def _dws_params(target: Target, **options: Any) -> sympy.Expr:
    _options("depthwise-separable", options, {})
    s = _syms()
    return s["C_in"] * s["K_h"] * s["K_w"] + s["C_in"] * s["C_out"]


def _dws_macs(target: Target, **options: Any) -> sympy.Expr:
    s = _syms()
    return _dws_params(target, **options) * s["H_out"] * s["W_out"]


def build_spatial_separable(target: Target, **options: Any) -> LayerSpec:
    """Spatial separable convolution: dense ``K_h x 1`` ``C_in -> C_out``, then dense ``1 x K_w`` ``C_out -> C_out``.

    Stride: the row stride ``(s_h, 1)`` sits on the ``K_h x 1`` conv and the column stride ``(1, s_w)`` on the
    ``1 x K_w`` conv, so each conv applies the target's geometry along its own axis; the first one therefore runs
    at ``H_out x W``. ``P = K_h C_in C_out + K_w C_out^2``,
    ``MACs = H_out W K_h C_in C_out + H_out W_out K_w C_out^2`` (``P = 2 K C^2`` for ``C_in = C_out``: the
    ``O(C^2 K)`` of the OSC abstract) [V-abs for the order, D for the constant]. No options; full coverage.
    """
    _options("spatial-separable", options, {})
    t = target
    (kh, kw), (sh, sw), (ph, pw) = t.kernel_size, t.stride, t.padding
    b = GraphBuilder(t)
    y = b.conv2d(b.input, t.out_channels, (kh, 1), stride=(sh, 1), padding=(ph, 0), name="conv_kx1")
    y = b.conv2d(y, t.out_channels, (1, kw), stride=(1, sw), padding=(0, pw), name="conv_1xk")
    return b.build(y, family="spatial-separable")


def _ss_params(target: Target, **options: Any) -> sympy.Expr:
    _options("spatial-separable", options, {})
    s = _syms()
    return s["K_h"] * s["C_in"] * s["C_out"] + s["K_w"] * s["C_out"] ** 2


def _ss_macs(target: Target, **options: Any) -> sympy.Expr:
    _options("spatial-separable", options, {})
    s = _syms()
    return (s["H_out"] * s["W"] * s["K_h"] * s["C_in"] * s["C_out"]
            + s["H_out"] * s["W_out"] * s["K_w"] * s["C_out"] ** 2)


def build_depthwise_spatial_separable(target: Target, **options: Any) -> LayerSpec:
    """Depthwise spatial separable: depthwise ``K_h x 1``, depthwise ``1 x K_w``, then pointwise ``C_in -> C_out``.

    The OSC abstract's third baseline ("depth/spatial separable"); its exact layout was not found, this natural
    reading is [U] (papers.md section 0). Stride as in ``spatial-separable``: ``(s_h, 1)`` on the ``K_h x 1`` and
    ``(1, s_w)`` on the ``1 x K_w`` depthwise conv. ``P = C_in (K_h + K_w) + C_in C_out``,
    ``MACs = H_out W K_h C_in + H_out W_out (K_w C_in + C_in C_out)``. No options; full coverage (the two
    depthwise strips compose to the full ``K_h x K_w`` window per channel).
    """
    _options("depthwise-spatial-separable", options, {})
    t = target
    (kh, kw), (sh, sw), (ph, pw) = t.kernel_size, t.stride, t.padding
    c = t.in_channels
    b = GraphBuilder(t)
    y = b.conv2d(b.input, c, (kh, 1), stride=(sh, 1), padding=(ph, 0), groups=c, name="dw_kx1")
    y = b.conv2d(y, c, (1, kw), stride=(1, sw), padding=(0, pw), groups=c, name="dw_1xk")
    y = b.conv2d(y, t.out_channels, 1, name="pw")
    return b.build(y, family="depthwise-spatial-separable")


def _dss_params(target: Target, **options: Any) -> sympy.Expr:
    _options("depthwise-spatial-separable", options, {})
    s = _syms()
    return s["C_in"] * (s["K_h"] + s["K_w"]) + s["C_in"] * s["C_out"]


def _dss_macs(target: Target, **options: Any) -> sympy.Expr:
    _options("depthwise-spatial-separable", options, {})
    s = _syms()
    return (s["H_out"] * s["W"] * s["K_h"] * s["C_in"]
            + s["H_out"] * s["W_out"] * (s["K_w"] * s["C_in"] + s["C_in"] * s["C_out"]))


add("depthwise-separable", "MobileNet depthwise separable (Howard et al. 2017)", build_depthwise_separable,
    _dws_params, _dws_macs, "C(C + K^2)", "verified", {})
add("spatial-separable", "Spatial separable K x 1 then 1 x K (Szegedy et al. 2016)", build_spatial_separable,
    _ss_params, _ss_macs, "C^2 K", "verified", {})
add("depthwise-spatial-separable", "Depthwise spatial separable (the OSC abstract's baseline; layout [U])",
    build_depthwise_spatial_separable, _dss_params, _dss_macs, "C(C + K)", "reconstructed", {})
