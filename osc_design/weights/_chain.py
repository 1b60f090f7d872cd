"""Closed-form projection onto chains of convolutions: one truncated SVD per connected channel block.

A *chain* is a spec whose graph is a path ``input -> ... -> conv_1 -> ... -> conv_n -> ... -> output``
where every other node only moves or scales channels one to one (channel shuffle, permute, identity,
batch norm). Between two stages, mid channel ``m`` (an output of ``conv_1``) links the input channels
of its ``conv_1`` group to the output channels of the ``conv_2`` group it is routed to. The mid channels
of one (input group, output group) pair form a block: the design's dense kernel restricted to that
block's rows ``(o, tap_2)`` and columns ``(i, tap_1)`` is any matrix of rank at most the number of mid
channels in the block, and the blocks are disjoint. So when the two stages' taps add up to distinct
offsets (``K x 1`` then ``1 x K``, or any kernel then ``1 x 1``), the best two-stage design is one
truncated SVD per block (Eckart-Young), as the Monarch projection of Dao et al. (2022) is for the
``1 x 1`` case. Depthwise separable (one block per input channel, rank 1), BSConv-U (one per output
channel, rank 1), spatial separable (one block, rank ``C_out``) and ``osc-2`` are such chains; a single
conv (``conv``, ``grouped``) is the restriction of the target to its groups.

For longer chains the same step runs greedily from the input side (a tensor-train-like sweep): stage
``k`` against *the rest of the chain taken as one free stage* (each mid channel reaching the outputs the
rest connects it to, over the offsets the rest spans); the rest's fitted kernel is then the target of
stage ``k + 1``. That is exact for two stages and the starting point of the iterative fit otherwise.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..ops import BatchNorm, Conv2d, Identity, Input
from ..spec import LayerSpec, Pair
from ._operator import Params, _conv_offsets, _in_stride, bn_scale_shift, channel_index

Taps = dict[Pair, np.ndarray]  # offset -> (C_out, C_level) matrix


@dataclass(frozen=True)
class Link:
    """How a conv's input channels read the previous level: channel ``q`` is ``scale[q] * level[index[q]]``."""

    index: np.ndarray
    scale: np.ndarray


@dataclass(frozen=True)
class Chain:
    """The convs of a chain spec, the link into each, and the link from the last conv to the output."""

    convs: tuple[Conv2d, ...]
    links: tuple[Link, ...]
    out: Link


def _link_of(spec: LayerSpec, path: list[str], params: Params, channels: int) -> Link:
    """The composite channel map of the channel-only nodes ``path`` (in data order)."""
    index, scale = np.arange(channels), np.ones(channels)
    for nid in path:
        node = spec.node_map[nid]
        if isinstance(node, BatchNorm):
            scale = scale * bn_scale_shift(node, params)[0]
            continue
        step = channel_index(node, channels)
        if step is not None:
            index, scale = index[step], scale[step]
    return Link(index, scale)


def chain_of(spec: LayerSpec, params: Params | None = None) -> Chain | None:
    """The spec as a :class:`Chain`, or ``None`` when its graph is not one (branches, slices, shifts)."""
    params = params or {}
    nodes = [spec.node_map[n] for n in spec.order]
    if any(len(n.inputs) > 1 for n in nodes) or len({i for n in nodes for i in n.inputs}) != len(nodes) - 1:
        return None
    convs: list[Conv2d] = []
    links: list[Link] = []
    pending: list[str] = []
    channels = spec.target.in_channels
    for node in nodes:
        if isinstance(node, Input):
            continue
        if isinstance(node, Conv2d):
            links.append(_link_of(spec, pending, params, channels))
            convs.append(node)
            pending, channels = [], node.out_channels
        elif isinstance(node, (BatchNorm, Identity)) or (channel_index(node, channels) is not None
                                                         and node.op != "slice"):
            pending.append(node.id)
        else:
            return None
    if not convs:
        return None
    return Chain(tuple(convs), tuple(links), _link_of(spec, pending, params, channels))


def _offsets(spec: LayerSpec, conv: Conv2d) -> list[tuple[int, int, Pair]]:
    return _conv_offsets(conv, _in_stride(spec, conv))


def _rest_offsets(spec: LayerSpec, convs: tuple[Conv2d, ...]) -> list[Pair]:
    """Distinct offsets the convs ``convs`` span together (a Minkowski sum), sorted."""
    sums = {(0, 0)}
    for conv in convs:
        sums = {(a[0] + o[0], a[1] + o[1]) for a in sums for _, _, o in _offsets(spec, conv)}
    return sorted(sums)


def _reach(chain: Chain, k: int) -> list[set[int]]:
    """For each output channel of conv ``k``: the output channels of the chain it reaches."""
    width = chain.convs[k].out_channels
    reach = [{m} for m in range(width)]
    for conv, link in zip(chain.convs[k + 1:], chain.links[k + 1:], strict=True):
        cin, cout = conv.in_channels // conv.groups, conv.out_channels // conv.groups
        nxt: list[set[int]] = [set() for _ in range(width)]
        for q, src in enumerate(link.index):
            group = q // cin
            for m in range(width):
                if src in reach[m]:
                    nxt[m].update(range(group * cout, (group + 1) * cout))
        reach = nxt
    inverse = np.argsort(chain.out.index)  # output o of the spec reads the last conv's channel out.index[o]
    return [{int(inverse[u]) for u in r} for r in reach]


def _blocks(reach: list[set[int]], groups_of: np.ndarray) -> dict[tuple[int, frozenset[int]], list[int]]:
    """Mid channels grouped by (their stage group, the connected set of outputs they reach)."""
    parent = list(range(len(reach)))

    def find(a: int) -> int:
        while parent[a] != a:
            parent[a] = parent[parent[a]]
            a = parent[a]
        return a

    owner: dict[int, int] = {}
    for m, r in enumerate(reach):
        for o in r:
            if o in owner:
                parent[find(m)] = find(owner[o])
            else:
                owner[o] = m
    comp: dict[int, set[int]] = {}
    for m, r in enumerate(reach):
        comp.setdefault(find(m), set()).update(r)
    out: dict[tuple[int, frozenset[int]], list[int]] = {}
    for m in range(len(reach)):
        out.setdefault((int(groups_of[m]), frozenset(comp[find(m)])), []).append(m)
    return out


def _stage(spec: LayerSpec, chain: Chain, k: int, target: Taps) -> tuple[np.ndarray, Taps]:
    """Conv ``k`` against the rest of the chain as one free stage: its weight and the rest's fitted kernel."""
    conv, link = chain.convs[k], chain.links[k]
    cin, cout = conv.in_channels // conv.groups, conv.out_channels // conv.groups
    taps_a = _offsets(spec, conv)
    rest = _rest_offsets(spec, chain.convs[k + 1:])
    weight = np.zeros(conv.weight_shape)
    c_out = spec.target.out_channels
    nxt: Taps = {r: np.zeros((c_out, conv.out_channels)) for r in rest}
    blocks = _blocks(_reach(chain, k), np.arange(conv.out_channels) // cout)
    zero = np.zeros((c_out, len(link.index)))
    for (group, outs), mids in blocks.items():
        rows, qs = sorted(outs), range(group * cin, (group + 1) * cin)
        cols = link.index[list(qs)]
        mat = np.stack([np.stack([target.get((oa[0] + r[0], oa[1] + r[1]), zero)[np.ix_(np.asarray(rows), cols)]
                                  for _, _, oa in taps_a], axis=-1) for r in rest], axis=1)
        mat = mat.reshape(len(rows) * len(rest), cin * len(taps_a))  # rows (o, rest tap), cols (i, own tap)
        u, s, vt = np.linalg.svd(mat, full_matrices=False)
        for rank, m in enumerate(mids):
            if rank >= len(s):
                break
            root = np.sqrt(s[rank])
            own = (root * vt[rank]).reshape(cin, len(taps_a)) / link.scale[list(qs)][:, None]
            weight[m] = own.reshape(cin, *conv.kernel_size)
            back = (root * u[:, rank]).reshape(len(rows), len(rest))
            for t, r in enumerate(rest):
                nxt[r][rows, m] = back[:, t]
    return weight, nxt


def _last(spec: LayerSpec, chain: Chain, target: Taps) -> np.ndarray:
    """The last conv as the restriction of the target to its groups and taps."""
    conv, link = chain.convs[-1], chain.links[-1]
    cin, cout = conv.in_channels // conv.groups, conv.out_channels // conv.groups
    weight = np.zeros(conv.weight_shape)
    inverse = np.argsort(chain.out.index)
    zero = np.zeros((spec.target.out_channels, len(link.index)))
    for jh, jw, off in _offsets(spec, conv):
        mat = target.get(off, zero)
        for u in range(conv.out_channels):
            o = int(inverse[u])
            qs = list(range((u // cout) * cin, (u // cout + 1) * cin))
            weight[u, :, jh, jw] = mat[o, link.index[qs]] / link.scale[qs] / chain.out.scale[o]
    return weight


def chain_projection(spec: LayerSpec, chain: Chain, target: np.ndarray, lo: Pair) -> dict[str, np.ndarray]:
    """The greedy sweep: each conv's weight for the target kernel ``target`` ``(C_out, C_in, h, w)`` whose
    index ``(0, 0)`` is offset ``lo``."""
    taps: Taps = {(lo[0] + y, lo[1] + x): target[:, :, y, x] for y in range(target.shape[2])
                  for x in range(target.shape[3])}
    weights = {}
    for k in range(len(chain.convs) - 1):
        weights[chain.convs[k].id], taps = _stage(spec, chain, k, taps)
    weights[chain.convs[-1].id] = _last(spec, chain, taps)
    return weights


def exact_chain(spec: LayerSpec, chain: Chain) -> bool:
    """Whether the sweep is the exact optimum: at most two convs, and for two, taps that add to distinct offsets."""
    if len(chain.convs) == 1:
        return True
    if len(chain.convs) > 2:
        return False
    a, b = (_offsets(spec, c) for c in chain.convs)
    sums = {(x[2][0] + y[2][0], x[2][1] + y[2][1]) for x in a for y in b}
    return len(sums) == len(a) * len(b)
