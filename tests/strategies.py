"""Hypothesis strategies for random valid layer-spec graphs (small, for brute-force checks)."""

from __future__ import annotations

from hypothesis import strategies as st

from osc_design import GraphBuilder, Target


def divisors(n):
    return [d for d in range(1, n + 1) if n % d == 0]


OP_KINDS = ["conv", "conv", "shuffle", "permute", "slice", "shift", "identity", "bn", "add", "concat"]
"""The kinds of block the random graphs draw (convs twice as often)."""


def other_op(draw, b, x, kind, same_conv):
    """Append one block of ``kind`` (any but ``conv``) after node ``x`` of builder ``b``; the new output.

    ``same_conv(src, out, groups)`` adds a conv that keeps the spatial size (for ``add`` and ``concat``).
    Slices and concats need two channels or more; with one, ``x`` is returned unchanged.
    """
    c = b.channels(x)
    if kind == "shuffle":
        return b.channel_shuffle(x, draw(st.sampled_from(divisors(c))))
    if kind == "permute":
        return b.permute(x, draw(st.permutations(list(range(c)))))
    if kind == "slice" and c > 1:
        start = draw(st.integers(0, c - 1))
        return b.slice(x, start, draw(st.integers(start + 1, c)))
    if kind == "shift":
        return b.shift(x, (draw(st.integers(-2, 2)), draw(st.integers(-2, 2))))
    if kind == "identity":
        return b.identity(x)
    if kind == "bn":
        return b.batch_norm(x)
    if kind == "add":
        return b.add([same_conv(x, c, 1), same_conv(x, c, c), b.shift(x, (draw(st.integers(-1, 1)), 0))])
    if kind == "concat" and c > 1:
        cut = draw(st.integers(1, c - 1))
        left, right = b.slice(x, 0, cut), b.slice(x, cut, c)
        return b.concat([same_conv(right, draw(st.integers(1, 3)), 1), left])
    return x


@st.composite
def graphs(draw, max_channels=6, max_blocks=4, allow_stride=True):
    """A random valid LayerSpec built from chains, shuffles, permutations, shifts, slices, adds and concats."""
    c_in = draw(st.integers(1, max_channels))
    kernel = (draw(st.integers(1, 5)), draw(st.integers(1, 5)))
    b = GraphBuilder(Target(c_in, c_in, kernel))
    x, stride = b.input, [1, 1]

    def same_conv(src, out, groups):
        k = (draw(st.sampled_from([1, 3])), draw(st.sampled_from([1, 3])))
        d = (draw(st.integers(1, 2)), draw(st.integers(1, 2)))
        return b.conv2d(src, out, k, padding=(d[0] * (k[0] - 1) // 2, d[1] * (k[1] - 1) // 2),
                        dilation=d, groups=groups, bias=draw(st.booleans()))

    for _ in range(draw(st.integers(1, max_blocks))):
        c = b.channels(x)
        kind = draw(st.sampled_from(OP_KINDS))
        if kind == "conv":
            g = draw(st.sampled_from(divisors(c)))
            out = g * draw(st.integers(1, max(1, max_channels // g)))
            s = [1, 1]
            if allow_stride:
                s = [draw(st.integers(1, 2)) if stride[a] == 1 else 1 for a in (0, 1)]
            k = (draw(st.integers(max(1, s[0]), 3)), draw(st.integers(max(1, s[1]), 3)))
            x = b.conv2d(x, out, k, stride=tuple(s), padding=(draw(st.integers(0, k[0] // 2 + 1)),
                                                                  draw(st.integers(0, k[1] // 2 + 1))),
                         groups=g, bias=draw(st.booleans()))
            stride = [stride[0] * s[0], stride[1] * s[1]]
        else:
            x = other_op(draw, b, x, kind, same_conv)
    return b.build(x, family="random", target=Target(c_in, b.channels(x), kernel, tuple(stride)))
