"""A design as the solver returns it: its stages, the spec they build, and the check of its coverage."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, NamedTuple

from ..coverage import Coverage, chain_coverage, chain_footprint
from ..coverage import coverage as exact_coverage
from ..errors import OscDesignError
from ..spec import GraphBuilder, LayerSpec, Target

if TYPE_CHECKING:
    from .axis import Axis

__all__ = ["Stage", "Move", "build", "reordered", "model_coverage", "verify"]


@dataclass(frozen=True)
class Stage:
    """One conv stage of a design (as built into the spec)."""

    in_channels: int
    out_channels: int
    groups: int
    kernel_size: tuple[int, int]
    stride: tuple[int, int] = (1, 1)
    padding: tuple[int, int] = (0, 0)
    dilation: tuple[int, int] = (1, 1)

    @property
    def fan_in(self) -> int:
        """Input channels seen by one output channel, ``in_channels // groups``."""
        return self.in_channels // self.groups

    @property
    def params(self) -> int:
        return self.out_channels * self.fan_in * self.kernel_size[0] * self.kernel_size[1]

    def describe(self) -> str:
        """One line, e.g. ``7x1 g16 (256->256, fan-in 16)``.

        >>> Stage(256, 256, 16, (7, 1), padding=(3, 0)).describe()
        '7x1 g16 (256->256, fan-in 16)'
        """
        kh, kw = self.kernel_size
        s = f"{kh}x{kw} g{self.groups} ({self.in_channels}->{self.out_channels}, fan-in {self.fan_in})"
        if self.dilation != (1, 1):
            s += f" d{self.dilation[0]}x{self.dilation[1]}"
        if self.stride != (1, 1):
            s += f" s{self.stride[0]}x{self.stride[1]}"
        return s

    def to_dict(self) -> dict[str, Any]:
        return {"in_channels": self.in_channels, "out_channels": self.out_channels, "groups": self.groups,
                "fan_in": self.fan_in, "kernel_size": list(self.kernel_size), "stride": list(self.stride),
                "padding": list(self.padding), "dilation": list(self.dilation)}


class Move(NamedTuple):
    """One stage of a reordered-space chain before its padding is set: kernel, dilation, fan-in, and whether it
    is the ``C_in -> C_out`` stage (``special``)."""

    kernel: tuple[int, int]
    dilation: tuple[int, int]
    fan_in: int
    special: bool


def reordered(axes: Sequence[Axis], cin: int, cout: int, moves: Sequence[Move]) -> list[Stage]:
    """The chain of ``moves`` (given in an order valid for the mixed-radix rule) with the ``C_in -> C_out`` stage
    first and the others in their order, paddings by the centring rule along the chain as built.

    With an input size, if that order would leave an intermediate map empty, the given order is built when
    ``C_in = C_out`` and it keeps every map, else the whole padding goes on the first stage (every map is then at
    least the output); the footprint and the cost do not depend on the order.
    """
    order = sorted(moves, key=lambda m: not m.special)  # stable
    if _maps_nonempty(axes, order):
        return _build_ordered(axes, cin, cout, order, False)
    if cin == cout and _maps_nonempty(axes, moves):
        return _build_ordered(axes, cin, cout, moves, False)
    return _build_ordered(axes, cin, cout, order, True)


def _maps_nonempty(axes: Sequence[Axis], moves: Sequence[Move]) -> bool:
    """With an input size: does every stage of the chain built in this order keep a non-empty map?"""
    spans = [0, 0]
    for m in moves:
        for a, ax in enumerate(axes):
            spans[a] += m.dilation[a] * (m.kernel[a] - 1)
            size = ax.size_pre(spans[a], True)
            if size is not None and size < 1:
                return False
    return True


def _build_ordered(axes: Sequence[Axis], cin: int, cout: int, moves: Sequence[Move], front: bool) -> list[Stage]:
    """The stages in the order of ``moves``; paddings by the centring rule along the chain as built, or
    (``front``) all of it on the first stage."""
    spans = [0, 0]
    if front:
        for m in moves:
            for a in (0, 1):
                spans[a] += m.dilation[a] * (m.kernel[a] - 1)
    stages: list[Stage] = []
    for i, m in enumerate(moves):
        c = cin if m.special else cout
        pads = []
        for a in (0, 1):
            if front:
                pads.append(0 if i else axes[a].cum_pad(spans[a], True))
                continue
            before = axes[a].cum_pad(spans[a], i > 0)
            spans[a] += m.dilation[a] * (m.kernel[a] - 1)
            pads.append(axes[a].cum_pad(spans[a], True) - before)
        stages.append(Stage(c, cout, c // m.fan_in, m.kernel, (1, 1), (pads[0], pads[1]), m.dilation))
    return stages


def build(target: Target, stages: Sequence[Stage], family: str, options: dict[str, Any]) -> LayerSpec:
    """The chain as a spec: conv stages, a channel shuffle with the previous stage's groups in between
    (left out where it is the identity or the next stage has one group; the chains of
    :func:`osc_design.coverage.chain_coverage`)."""
    b = GraphBuilder(target)
    x = b.input
    prev: Stage | None = None
    for i, st in enumerate(stages, 1):
        if prev is not None and 1 < prev.groups < prev.out_channels and st.groups > 1:
            x = b.channel_shuffle(x, prev.groups, name=f"shuffle{i - 1}")
        x = b.conv2d(x, st.out_channels, st.kernel_size, stride=st.stride, padding=st.padding,
                     dilation=st.dilation, groups=st.groups, name=f"stage{i}")
        prev = st
    return b.build(x, family=family, options=options)


def model_coverage(target: Target, stages: Sequence[Stage]) -> Coverage:
    """Coverage as the model states it, unverified: full when ``prod n_i >= C_in`` and every window tap
    is in the 1-D footprints; otherwise the per-group computation (:func:`~osc_design.coverage.chain_coverage`)."""
    reach = 1
    for st in stages:
        reach *= st.fan_in
    if reach >= target.in_channels:
        for a in (0, 1):
            offs = chain_footprint(stages, a)
            if any(t - target.padding[a] not in offs for t in range(target.kernel_size[a])):
                break
        else:
            total = target.out_channels * target.in_channels * target.kernel_size[0] * target.kernel_size[1]
            return Coverage(total, total, None)
    return chain_coverage(target, stages)


def verify(spec: LayerSpec, stages: Sequence[Stage], mode: str, lam: float) -> Coverage:
    """Coverage of the returned design: ``"full"`` runs the exact verifier, ``"fast"`` the equivalent
    per-group computation, ``"none"`` states the model's value (see :func:`osc_design.solver.solve`)."""
    if mode == "none":
        return model_coverage(spec.target, stages)
    cov = exact_coverage(spec) if mode == "full" else chain_coverage(spec.target, stages)
    if not (cov.full or cov.fraction >= lam):
        raise OscDesignError(
            f"internal error (a bug in osc_design.solver): the optimal design for {spec.target.describe()} covers "
            f"only {cov.fraction:.4%} of the volume ({cov.describe()}); please report it"
        )
    return cov
