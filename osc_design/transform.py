"""Spec-to-spec transformations used when designs are dropped into real networks."""

from __future__ import annotations

from dataclasses import replace

from .errors import SpecError, check_type
from .geometry import check_int
from .ops import (
    Add, BatchNorm, ChannelShuffle, Concat, Conv2d, Identity, Input, Node, Permute, Shift, Slice, shuffle_permutation,
)
from .spec import LayerSpec, Target, _freeze_options

__all__ = ["lift_groups", "with_output_bias"]


def _blockwise(perm: tuple[int, ...] | list[int], width: int, groups: int) -> tuple[int, ...]:
    """A per-block permutation repeated over ``groups`` contiguous blocks of ``width`` channels."""
    return tuple(j * width + p for j in range(groups) for p in perm)


def lift_groups(spec: LayerSpec, groups: int, target: Target) -> LayerSpec:
    """Run ``groups`` independent copies of ``spec`` side by side, as one spec for a grouped ``target``.

    ``spec`` replaces one group (``C_in / g -> C_out / g``); the result replaces the grouped conv:
    every channel count is multiplied by ``groups``, conv groups too (block ``j`` of the input
    only ever meets block ``j``), and permutations, slices and concatenations act inside each block.
    Costs scale by exactly ``groups``.

    >>> from osc_design.spec import GraphBuilder
    >>> b = GraphBuilder(Target(4, 4, 3))
    >>> one = b.build(b.conv2d(b.input, 4, 3, padding=1, groups=2))
    >>> lifted = lift_groups(one, 8, Target(32, 32, 3))
    >>> lifted.convs[0].groups, lifted.convs[0].in_channels
    (16, 32)
    """
    check_type(spec, LayerSpec, "spec")
    g = check_int(groups, "groups", minimum=1)
    check_type(target, Target, "target")
    if target.in_channels != g * spec.target.in_channels or target.out_channels != g * spec.target.out_channels:
        raise SpecError(f"`groups` (={g}) does not scale {spec.target.describe()} to {target.describe()}")
    nodes: list[Node] = []
    for nid in spec.order:
        node = spec.node_map[nid]
        c = spec.channels(nid)
        if isinstance(node, Input):
            nodes.append(Input(id=nid, channels=c * g))
        elif isinstance(node, Conv2d):
            nodes.append(replace(node, in_channels=node.in_channels * g, out_channels=node.out_channels * g,
                                 groups=node.groups * g))
        elif isinstance(node, BatchNorm):
            nodes.append(replace(node, num_features=node.num_features * g))
        elif isinstance(node, (Add, Shift, Identity)):
            nodes.append(node)
        elif isinstance(node, (Permute, ChannelShuffle)):
            perm = node.perm if isinstance(node, Permute) else shuffle_permutation(c, node.groups)
            nodes.append(Permute(id=nid, inputs=node.inputs, perm=_blockwise(perm, c, g)))
        elif isinstance(node, Slice):
            # gather the kept channels of every block to the front, then cut them off
            width = spec.channels(node.inputs[0])
            kept = list(range(node.start, node.stop))
            rest = [i for i in range(width) if i not in kept]
            order = [j * width + i for j in range(g) for i in kept] + [j * width + i for j in range(g) for i in rest]
            nodes.append(Permute(id=f"{nid}__gather", inputs=node.inputs, perm=tuple(order)))
            nodes.append(Slice(id=nid, inputs=(f"{nid}__gather",), start=0, stop=g * len(kept)))
        elif isinstance(node, Concat):
            # concatenation puts whole inputs side by side; regroup so block j holds every input's block j
            widths = [spec.channels(i) for i in node.inputs]
            starts = [g * sum(widths[:k]) for k in range(len(widths))]
            order = [starts[k] + j * w + i for j in range(g) for k, w in enumerate(widths) for i in range(w)]
            nodes.append(replace(node, id=f"{nid}__cat"))
            nodes.append(Permute(id=nid, inputs=(f"{nid}__cat",), perm=tuple(order)))
        else:  # pragma: no cover - every op is handled above
            raise SpecError(f"cannot lift op {node.op!r}")
    options = _freeze_options({**spec.options_dict, "lifted_groups": g})
    return LayerSpec(target, tuple(nodes), spec.output, spec.family, options)


def with_output_bias(spec: LayerSpec) -> LayerSpec:
    """The same design with a bias on the conv that produces its output (where a replaced conv had one)."""
    check_type(spec, LayerSpec, "spec")
    out = spec.node_map[spec.output]
    if not isinstance(out, Conv2d):
        raise SpecError(f"family {spec.family!r} ends in {out.op!r}, not a conv, so it cannot carry the bias")
    nodes = tuple(replace(out, bias=True) if n.id == spec.output else n for n in spec.nodes)
    return LayerSpec(spec.target, nodes, spec.output, spec.family, spec.options)
