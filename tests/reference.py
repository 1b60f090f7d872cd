"""Independent numpy reference for tests: evaluate a spec graph on real arrays.

Written from the op semantics in the docs, without using osc_design's cost or coverage code.
"""

from __future__ import annotations

import numpy as np


def conv2d(x, weight, stride, padding, dilation, groups):
    """Direct zero-padded grouped conv of x (C, H, W) with weight (O, C/g, kh, kw)."""
    c, h, w = x.shape
    o, cg, kh, kw = weight.shape
    (sh, sw), (ph, pw), (dh, dw) = stride, padding, dilation
    xp = np.zeros((c, h + 2 * ph, w + 2 * pw), dtype=x.dtype)
    xp[:, ph : ph + h, pw : pw + w] = x
    oh = (h + 2 * ph - dh * (kh - 1) - 1) // sh + 1
    ow = (w + 2 * pw - dw * (kw - 1) - 1) // sw + 1
    out = np.zeros((o, oh, ow), dtype=x.dtype)
    per_out = o // groups
    for oc in range(o):
        g = oc // per_out
        for ic in range(cg):
            for ty in range(kh):
                for tx in range(kw):
                    patch = xp[g * cg + ic, ty * dh : ty * dh + sh * (oh - 1) + 1 : sh,
                               tx * dw : tx * dw + sw * (ow - 1) + 1 : sw]
                    out[oc] += weight[oc, ic, ty, tx] * patch
    return out


def shift(x, dy, dx):
    out = np.zeros_like(x)
    c, h, w = x.shape
    for y in range(h):
        for xx in range(w):
            sy, sx = y - dy, xx - dx
            if 0 <= sy < h and 0 <= sx < w:
                out[:, y, xx] = x[:, sy, sx]
    return out


def evaluate(spec_dict, x, weights=None):
    """Evaluate a spec given as its JSON dict (so nothing of osc_design is used) on x (C, H, W).

    ``weights`` maps conv node id -> weight array; default all ones (a positive structural probe).
    """
    vals = {}
    for node in spec_dict["graph"]["nodes"]:
        op, ins = node["op"], [vals[i] for i in node["inputs"]]
        if op == "input":
            v = x
        elif op == "conv2d":
            shape = (node["out_channels"], node["in_channels"] // node["groups"], *node["kernel_size"])
            w = np.ones(shape) if weights is None else weights[node["id"]]
            v = conv2d(ins[0], w, node["stride"], node["padding"], node["dilation"], node["groups"])
        elif op == "channel_shuffle":
            c, g = ins[0].shape[0], node["groups"]
            v = ins[0].reshape(g, c // g, *ins[0].shape[1:]).transpose(1, 0, 2, 3).reshape(ins[0].shape)
        elif op == "permute":
            v = ins[0][np.asarray(node["perm"])]
        elif op == "slice":
            v = ins[0][node["start"] : node["stop"]]
        elif op == "concat":
            v = np.concatenate(ins, axis=0)
        elif op == "add":
            v = sum(ins[1:], ins[0])
        elif op == "shift":
            v = shift(ins[0], *node["shift"])
        elif op in ("identity", "batch_norm"):
            v = ins[0]
        else:
            raise ValueError(op)
        vals[node["id"]] = v
    return vals[spec_dict["graph"]["output"]]


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
                for o, qy, qx in zip(*np.nonzero(y)):
                    deps.setdefault((int(o), c), set()).add((py - int(qy) * stride[0], px - int(qx) * stride[1]))
    return deps
