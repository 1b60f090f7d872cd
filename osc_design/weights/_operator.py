"""The linear operator of a layer spec as one dense kernel, its affine part, and the kernel's gradient.

Every op of a layer spec is linear (conv, channel shuffle, permute, slice, concat, add, shift,
identity) or affine (conv bias, batch norm in eval mode). Away from the border (where zero padding and
shift fill play no part) the design is therefore ``y[:, q] = sum_r D[:, :, r] x[:, q * S + r] + b``:
one dense kernel ``D`` over the footprint offsets ``r`` and one bias ``b``. Each node's kernel is
propagated through the graph on one common window of offsets (:class:`Window`) that holds every
node's footprint and the target's window ``[-p, -p + K)``; :func:`kernel_grads` is the adjoint pass
(reverse mode), the gradient of ``<G, D>`` with respect to every conv weight.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np

from ..ops import BatchNorm, ChannelShuffle, Concat, Conv2d, Node, Permute, Shift, Slice, shuffle_permutation
from ..spec import LayerSpec, Pair

Params = Mapping[str, Mapping[str, np.ndarray]]

BN_EPS = 1e-5
"""Batch-norm epsilon of both backends (``nn.BatchNorm2d``'s and the JAX module's default)."""


@dataclass(frozen=True)
class Window:
    """The offsets ``lo .. lo + size - 1`` (input pixels, per axis) a kernel array spans."""

    lo: Pair
    size: Pair

    def index(self, offset: Pair) -> Pair:
        """Array index of an offset."""
        return (offset[0] - self.lo[0], offset[1] - self.lo[1])


def _conv_offsets(node: Conv2d, stride: Pair) -> list[tuple[int, int, Pair]]:
    """``(jh, jw, offset)`` of every tap of ``node``, whose input grid has cumulative ``stride``."""
    (kh, kw), (ph, pw), (dh, dw) = node.kernel_size, node.padding, node.dilation
    return [(jh, jw, ((dh * jh - ph) * stride[0], (dw * jw - pw) * stride[1])) for jh in range(kh) for jw in range(kw)]


def _in_stride(spec: LayerSpec, node: Node) -> Pair:
    return spec.cumulative_stride(node.inputs[0]) if node.inputs else (1, 1)


def window(spec: LayerSpec) -> Window:
    """The smallest window holding every node's footprint and the target's window.

    >>> from osc_design.registry import get_family
    >>> from osc_design import Target
    >>> window(get_family("depthwise-separable").build(Target(8, 8, 3)))
    Window(lo=(-1, -1), size=(3, 3))
    """
    (kh, kw), (ph, pw), (dh, dw) = spec.target.kernel_size, spec.target.padding, spec.target.dilation
    span: dict[str, tuple[int, int, int, int]] = {}  # lo_h, hi_h, lo_w, hi_w
    for nid in spec.order:
        node = spec.node_map[nid]
        if not node.inputs:
            span[nid] = (0, 0, 0, 0)
            continue
        ins = [span[i] for i in node.inputs]
        lo_h, hi_h = min(s[0] for s in ins), max(s[1] for s in ins)
        lo_w, hi_w = min(s[2] for s in ins), max(s[3] for s in ins)
        stride = _in_stride(spec, node)
        if isinstance(node, Conv2d):
            offs = [o for _, _, o in _conv_offsets(node, stride)]
            span[nid] = (lo_h + min(o[0] for o in offs), hi_h + max(o[0] for o in offs),
                         lo_w + min(o[1] for o in offs), hi_w + max(o[1] for o in offs))
        elif isinstance(node, Shift):
            dy, dx = node.shift[0] * stride[0], node.shift[1] * stride[1]
            span[nid] = (lo_h - dy, hi_h - dy, lo_w - dx, hi_w - dx)
        else:
            span[nid] = (lo_h, hi_h, lo_w, hi_w)
    lo_h = min([-ph] + [s[0] for s in span.values()])
    hi_h = max([dh * (kh - 1) - ph] + [s[1] for s in span.values()])
    lo_w = min([-pw] + [s[2] for s in span.values()])
    hi_w = max([dw * (kw - 1) - pw] + [s[3] for s in span.values()])
    return Window((lo_h, lo_w), (hi_h - lo_h + 1, hi_w - lo_w + 1))


def shifted(a: np.ndarray, off: Pair) -> np.ndarray:
    """``out[..., r] = a[..., r - off]`` on the same window, zero where ``r - off`` falls outside."""
    out = np.zeros_like(a)
    h, w = a.shape[-2:]
    dy, dx = off
    if abs(dy) >= h or abs(dx) >= w:
        return out
    out[..., max(dy, 0):h + min(dy, 0), max(dx, 0):w + min(dx, 0)] = a[..., max(-dy, 0):h - max(dy, 0),
                                                                        max(-dx, 0):w - max(dx, 0)]
    return out


def bn_scale_shift(node: BatchNorm, params: Params) -> tuple[np.ndarray, np.ndarray]:
    """Eval-mode batch norm as ``x * a + b`` (missing arrays: PyTorch's initial values)."""
    p = params.get(node.id, {})
    c = node.num_features
    gamma = np.asarray(p.get("weight", np.ones(c)), dtype=np.float64)
    beta = np.asarray(p.get("bias", np.zeros(c)), dtype=np.float64)
    mean = np.asarray(p.get("running_mean", np.zeros(c)), dtype=np.float64)
    var = np.asarray(p.get("running_var", np.ones(c)), dtype=np.float64)
    a = gamma / np.sqrt(var + BN_EPS)
    return a, beta - mean * a


def channel_index(node: Node, channels: int) -> np.ndarray | None:
    """Input channel read by each output channel of a channel-only op (``None`` for other ops)."""
    if isinstance(node, ChannelShuffle):
        return np.asarray(shuffle_permutation(channels, node.groups))
    if isinstance(node, Permute):
        return np.asarray(node.perm)
    if isinstance(node, Slice):
        return np.arange(node.start, node.stop)
    return None


def conv_weight(node: Conv2d, params: Params) -> np.ndarray:
    """The node's weight ``(O, I/g, kh, kw)`` as float64 (a missing one is an error)."""
    from ..errors import SpecError

    w = params.get(node.id, {}).get("weight")
    if w is None:
        raise SpecError(f"params have no `weight` for conv node {node.id!r}")
    w = np.asarray(w, dtype=np.float64)
    if w.shape != node.weight_shape:
        raise SpecError(f"node {node.id!r}: `weight` has shape {w.shape}, expected {node.weight_shape}")
    return w


def _conv_forward(node: Conv2d, x: np.ndarray, w: np.ndarray, stride: Pair) -> np.ndarray:
    g = node.groups
    cin, cout = node.in_channels // g, node.out_channels // g
    out = np.zeros((node.out_channels, *x.shape[1:]))
    view = out.reshape(g, cout, *x.shape[1:])
    wg = w.reshape(g, cout, cin, *node.kernel_size)
    for jh, jw, off in _conv_offsets(node, stride):
        xs = shifted(x, off).reshape(g, cin, -1)
        view += np.einsum("gai,gin->gan", wg[..., jh, jw], xs).reshape(view.shape)
    return out


def _simple_forward(spec: LayerSpec, node: Node, xs: list[np.ndarray], params: Params) -> np.ndarray:
    """A node other than a conv, on its inputs' kernels (or biases, when ``xs`` are 1-D/2-D with no window)."""
    if isinstance(node, BatchNorm):
        a, _ = bn_scale_shift(node, params)
        return xs[0] * a.reshape((-1,) + (1,) * (xs[0].ndim - 1))
    index = channel_index(node, spec.channels(node.inputs[0]))
    if index is not None:
        return xs[0][index]
    if isinstance(node, Concat):
        return np.concatenate(xs, axis=0)
    if node.op == "add":
        return np.sum(xs, axis=0)
    return xs[0]  # identity; shifts are handled by the caller


def kernels(spec: LayerSpec, params: Params, win: Window | None = None) -> dict[str, np.ndarray]:
    """Every node's kernel ``(C_node, C_in, *win.size)`` (default window: :func:`window`)."""
    win = window(spec) if win is None else win
    c_in = spec.target.in_channels
    out: dict[str, np.ndarray] = {}
    for nid in spec.order:
        node = spec.node_map[nid]
        xs = [out[i] for i in node.inputs]
        if not node.inputs:
            k = np.zeros((c_in, c_in, *win.size))
            k[np.arange(c_in), np.arange(c_in), win.index((0, 0))[0], win.index((0, 0))[1]] = 1.0
            out[nid] = k
        elif isinstance(node, Conv2d):
            out[nid] = _conv_forward(node, xs[0], conv_weight(node, params), _in_stride(spec, node))
        elif isinstance(node, Shift):
            s = _in_stride(spec, node)
            out[nid] = shifted(xs[0], (-node.shift[0] * s[0], -node.shift[1] * s[1]))
        else:
            out[nid] = _simple_forward(spec, node, xs, params)
    return out


def _conv_backward(node: Conv2d, x: np.ndarray, w: np.ndarray, grad: np.ndarray,
                   stride: Pair) -> tuple[np.ndarray, np.ndarray]:
    g = node.groups
    cin, cout = node.in_channels // g, node.out_channels // g
    gw = np.zeros((g, cout, cin, *node.kernel_size))
    gx = np.zeros_like(x).reshape(g, cin, -1)
    wg = w.reshape(g, cout, cin, *node.kernel_size)
    go = grad.reshape(g, cout, -1)
    for jh, jw, off in _conv_offsets(node, stride):
        xs = shifted(x, off).reshape(g, cin, -1)
        gw[..., jh, jw] = np.einsum("gan,gin->gai", go, xs)
        back = np.einsum("gai,gan->gin", wg[..., jh, jw], go).reshape(x.shape)
        gx += shifted(back, (-off[0], -off[1])).reshape(g, cin, -1)
    return gx.reshape(x.shape), gw.reshape(w.shape)


def _simple_backward(spec: LayerSpec, node: Node, grad: np.ndarray, params: Params,
                     shapes: list[tuple[int, ...]]) -> list[np.ndarray]:
    if isinstance(node, BatchNorm):
        a, _ = bn_scale_shift(node, params)
        return [grad * a.reshape((-1,) + (1,) * (grad.ndim - 1))]
    if isinstance(node, Shift):
        s = _in_stride(spec, node)
        return [shifted(grad, (node.shift[0] * s[0], node.shift[1] * s[1]))]
    index = channel_index(node, spec.channels(node.inputs[0]))
    if index is not None:
        back = np.zeros(shapes[0])
        np.add.at(back, index, grad)
        return [back]
    if isinstance(node, Concat):
        cuts = np.cumsum([s[0] for s in shapes])[:-1]
        return list(np.split(grad, cuts, axis=0))
    return [grad for _ in node.inputs]  # add, identity


def kernel_grads(spec: LayerSpec, params: Params, grad: np.ndarray,
                 ks: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Gradient of ``<grad, D>`` (``D`` the output kernel) with respect to every conv weight.

    ``ks`` are the node kernels of :func:`kernels` for the same ``params`` (and window as ``grad``).
    """
    grads: dict[str, np.ndarray] = {spec.output: grad}
    out: dict[str, np.ndarray] = {}
    for nid in reversed(spec.order):
        node = spec.node_map[nid]
        g = grads.pop(nid, None)
        if g is None or not node.inputs:
            continue
        if isinstance(node, Conv2d):
            gx, out[nid] = _conv_backward(node, ks[node.inputs[0]], conv_weight(node, params), g,
                                          _in_stride(spec, node))
            backs = [gx]
        else:
            backs = _simple_backward(spec, node, g, params, [ks[i].shape for i in node.inputs])
        for src, b in zip(node.inputs, backs, strict=True):
            grads[src] = grads[src] + b if src in grads else b
    return out


def biases(spec: LayerSpec, params: Params, extra: Mapping[str, np.ndarray] | None = None) -> np.ndarray:
    """The affine part ``b`` of the design's output (interior positions), ``(C_out,)``.

    ``extra`` adds columns: ``{node id: (C_node, B)}`` bias probes added at conv and batch-norm nodes; the
    result is then ``(C_out, B)`` (only the probes, without the params' own biases).
    """
    cols = None if extra is None else next(iter(extra.values())).shape[1]
    shape = (lambda c: (c,)) if cols is None else (lambda c: (c, cols))
    out: dict[str, np.ndarray] = {}
    for nid in spec.order:
        node = spec.node_map[nid]
        xs = [out[i] for i in node.inputs]
        if not node.inputs:
            out[nid] = np.zeros(shape(spec.channels(nid)))
            continue
        if isinstance(node, Conv2d):
            w = conv_weight(node, params).sum(axis=(2, 3))
            g = node.groups
            cin, cout = node.in_channels // g, node.out_channels // g
            x = xs[0].reshape(g, cin, -1)
            y = np.einsum("gai,gin->gan", w.reshape(g, cout, cin), x).reshape(shape(node.out_channels))
            own = params.get(nid, {}).get("bias") if extra is None else None
            y = y + (0 if own is None else np.asarray(own, dtype=np.float64))
        else:
            y = _simple_forward(spec, node, xs, params)
            if isinstance(node, BatchNorm) and extra is None:
                y = y + bn_scale_shift(node, params)[1]
        if extra is not None and nid in extra:
            y = y + extra[nid]
        out[nid] = y
    return out[spec.output]
