"""Independent numpy reference for tests: evaluate a spec graph on real arrays.

Written from the op semantics in the docs, without using osc_design's cost, coverage or backend code:
:func:`evaluate` reads a spec's JSON dict only. Arrays are ``(..., C, H, W)`` (any leading batch axes)
and everything is computed in float64.
"""

from __future__ import annotations

from typing import Any

import numpy as np

BATCH_NORM_EPS = 1e-5  # PyTorch's and flax's default


def conv2d(x, weight, stride, padding, dilation, groups, bias=None):
    """Direct zero-padded grouped conv of ``x`` (..., C, H, W) with ``weight`` (O, C/g, kh, kw), plus ``bias`` (O)."""
    *lead, c, h, w = x.shape
    o, cg, kh, kw = weight.shape
    (sh, sw), (ph, pw), (dh, dw) = stride, padding, dilation
    xp = np.zeros((*lead, groups, cg, h + 2 * ph, w + 2 * pw))
    xp[..., ph : ph + h, pw : pw + w] = np.asarray(x, dtype=np.float64).reshape(*lead, groups, cg, h, w)
    oh = (h + 2 * ph - dh * (kh - 1) - 1) // sh + 1
    ow = (w + 2 * pw - dw * (kw - 1) - 1) // sw + 1
    wg = np.asarray(weight, dtype=np.float64).reshape(groups, o // groups, cg, kh, kw)
    out = np.zeros((*lead, groups, o // groups, oh, ow))
    for ty in range(kh):
        for tx in range(kw):
            patch = xp[..., ty * dh : ty * dh + sh * (oh - 1) + 1 : sh, tx * dw : tx * dw + sw * (ow - 1) + 1 : sw]
            out += np.einsum("...gcij,goc->...goij", patch, wg[..., ty, tx])
    out = out.reshape(*lead, o, oh, ow)
    return out if bias is None else out + np.asarray(bias, dtype=np.float64)[:, None, None]


def shift(x, dy, dx):
    """``out[..., y, x] = in[..., y - dy, x - dx]``, zero where the source is outside."""
    out = np.zeros_like(x)
    h, w = x.shape[-2:]
    for y in range(h):
        for xx in range(w):
            if 0 <= y - dy < h and 0 <= xx - dx < w:
                out[..., y, xx] = x[..., y - dy, xx - dx]
    return out


def _conv(node, a, params):
    if params is None:  # the structural probe: all-ones kernels, no bias
        shape = (node["out_channels"], node["in_channels"] // node["groups"], *node["kernel_size"])
        params = {"weight": np.ones(shape)}
    return conv2d(a, params["weight"], node["stride"], node["padding"], node["dilation"], node["groups"],
                  params.get("bias"))


def _batch_norm(a, params):
    if params is None:  # the structural probe: batch norm as the identity
        return a
    p = {k: np.asarray(v, dtype=np.float64)[:, None, None] for k, v in params.items()}
    return (a - p["running_mean"]) / np.sqrt(p["running_var"] + BATCH_NORM_EPS) * p["weight"] + p["bias"]


def _apply(node, ins, params):
    op, a = node["op"], ins[0] if ins else None
    if op == "conv2d":
        return _conv(node, a, params)
    if op == "batch_norm":
        return _batch_norm(a, params)
    if op == "channel_shuffle":
        c, g = a.shape[-3], node["groups"]
        return a.reshape(*a.shape[:-3], g, c // g, *a.shape[-2:]).swapaxes(-4, -3).reshape(a.shape)
    if op == "permute":
        return a[..., np.asarray(node["perm"]), :, :]
    if op == "slice":
        return a[..., node["start"] : node["stop"], :, :]
    if op == "concat":
        return np.concatenate(ins, axis=-3)
    if op == "add":
        return sum(ins[1:], ins[0])
    if op == "shift":
        return shift(a, *node["shift"])
    if op == "identity":
        return a
    raise ValueError(op)


def evaluate(spec_dict: dict[str, Any], x, weights=None):
    """Evaluate a spec given as its JSON dict (so nothing of osc_design is used) on ``x`` (..., C, H, W).

    ``weights`` maps node id -> ``{name: array}`` in the backends' canonical form (conv ``weight`` and
    optional ``bias``; batch norm ``weight``, ``bias``, ``running_mean``, ``running_var``). Without it every
    conv kernel is all ones and batch norm is the identity: a positive structural probe.
    """
    nodes = spec_dict["graph"]["nodes"]
    vals: dict[str, Any] = {}
    while len(vals) < len(nodes):  # in dependency order, whatever the order of the list
        ready = [n for n in nodes if n["id"] not in vals and all(i in vals for i in n["inputs"])]
        if not ready:
            raise ValueError("the graph has a cycle or an unknown input")
        for node in ready:
            if node["op"] == "input":
                vals[node["id"]] = np.asarray(x, dtype=np.float64)
            else:
                params = None if weights is None else weights.get(node["id"])
                vals[node["id"]] = _apply(node, [vals[i] for i in node["inputs"]], params)
    return vals[spec_dict["graph"]["output"]]


def evaluate_spec(spec, x, weights=None):
    """:func:`evaluate` for a ``LayerSpec`` object, through its JSON document."""
    from osc_design.serialize import to_dict

    return evaluate(to_dict(spec), x, weights)


def brute_force_offsets(spec_dict, stride, margin):
    """{(out_channel, in_channel): set of offsets} by propagating impulses through all-ones weights.

    The offset of an output position q reading input position p is ``p - q * stride`` (per axis).
    ``margin`` must exceed the receptive-field radius so that no dependence is clipped.
    """
    c_in = spec_dict["target"]["in_channels"]
    size = 2 * margin + stride[0] * stride[1] + 1
    deps = {}
    for c in range(c_in):
        for ry in range(stride[0]):  # every phase of the input grid relative to the output grid
            for rx in range(stride[1]):
                py, px = margin + ry, margin + rx
                x = np.zeros((c_in, size, size))
                x[c, py, px] = 1.0
                y = evaluate(spec_dict, x)
                for o, qy, qx in zip(*np.nonzero(y), strict=True):
                    deps.setdefault((int(o), c), set()).add((py - int(qy) * stride[0], px - int(qx) * stride[1]))
    return deps
