"""The searched space: one target and the options that shape its designs, validated once.

:class:`SearchSpace` carries what used to be threaded by hand through the search, the bounds and
the certificate (objective, stage range, square kernels, dilation, widths, required coverage); it
also says how the space reads in a certificate (:attr:`SearchSpace.text`), which family and spec
options its designs carry, and why it is empty when no design is found.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from typing import Any

from ..coverage import check_supported
from ..errors import InfeasibleDesignError, SpecError
from ..geometry import check_int
from ..spec import Target, check_undilated
from .intmath import clog2

__all__ = ["OBJECTIVES", "VERIFY_MODES", "SearchSpace", "stage_cap", "norm_widths", "check_verify", "check_options",
           "check_target_type"]

OBJECTIVES = ("params", "macs", "macs_valid")
VERIFY_MODES = ("full", "fast", "none")

Widths = tuple[int, ...] | int | None


def stage_cap(target: Target, *, dilation: bool = False, square_only: bool = False) -> int:
    """Default largest number of stages searched (see "Stage cap" in :mod:`osc_design.solver`).

    ``ceil(log2 C_in) + 1`` channel stages, plus per axis 1 spatial stage without dilation (2 with a
    stride on that axis), ``ceil(log2 K) + 1`` with dilation, ``ceil((K_max - 1) / 2)`` for square
    kernels without dilation, plus 1 for the strided stage.

    >>> stage_cap(Target(256, 256, 7))
    11
    """
    check_target_type(target)
    _check_flags(square_only, dilation, 1.0)
    n = clog2(target.in_channels) + 1
    (kh, kw), (sh, sw) = target.kernel_size, target.stride
    if square_only and not dilation:
        n += max(1, -(-(max(kh, kw) - 1) // 2))
    else:
        for K, s in ((kh, sh), (kw, sw)):
            if K > 1:
                n += (clog2(K) + 1) if dilation else (2 if s > 1 else 1)
    return n + (1 if target.stride != (1, 1) else 0)


def norm_widths(widths: Any) -> Widths:
    """``widths`` as ``None``, a positive int or a tuple of positive ints (a list becomes a tuple)."""
    if widths is None:
        return None
    if isinstance(widths, bool):
        raise SpecError(f"`widths` (={widths!r}) must be None, an integer or a sequence of integers")
    if isinstance(widths, int):
        return check_int(widths, "widths", minimum=1)
    if isinstance(widths, (list, tuple)):
        return tuple(check_int(w, f"widths[{i}]", minimum=1) for i, w in enumerate(widths))
    raise SpecError(f"`widths` (={widths!r}) must be None, an integer or a sequence of integers")


def check_verify(verify: Any) -> str:
    """``verify`` if it names a verification mode of :func:`osc_design.solver.solve`."""
    if not isinstance(verify, str) or verify not in VERIFY_MODES:
        raise SpecError(f"`verify` (={verify!r}) must be 'full', 'fast' or 'none'")
    return verify


def check_target_type(target: Any) -> Target:
    """``target`` if it is a :class:`~osc_design.spec.Target` within the supported limits; else :class:`SpecError`."""
    if not isinstance(target, Target):
        raise SpecError(f"`target` (={target!r}) must be a Target, got {type(target).__name__}")
    return check_supported(target)


def check_objective(objective: Any) -> str:
    if not isinstance(objective, str) or objective not in OBJECTIVES:
        raise SpecError(f"`objective` (={objective!r}) must be one of {', '.join(OBJECTIVES)}")
    return objective


_GAPS_ORDER = ("dilations forming mixed-radix digits in some order of the stages in which the C_in -> C_out stage "
               "may take any place (each step <= footprint span + 1 in that order, on both axes; so a dilated "
               "first stage's gaps may be filled by later stages)")

MAX_STAGES = 256
"""Largest ``max_stages`` accepted: far beyond any optimum's depth (the default cap is ``ceil(log2 C) + 1`` plus
a few spatial stages, 36 at most within the supported limits), and the search is linear in it."""


def _check_max_stages(max_stages: Any) -> int:
    check_int(max_stages, "max_stages", minimum=1)
    if max_stages > MAX_STAGES:
        raise SpecError(f"`max_stages` (={max_stages}) exceeds the supported limit {MAX_STAGES}")
    return int(max_stages)


def check_options(target: Any, objective: Any, max_stages: Any, square_only: Any, dilation: Any, widths: Any,
                  min_coverage: Any, verify: Any = "full") -> None:
    """Check the types and values of :func:`~osc_design.solver.solve`'s arguments (before they meet a cache,
    which would fail on an unhashable one); raises :class:`SpecError` naming the argument and its value."""
    _check_target(target, objective)
    _check_flags(square_only, dilation, min_coverage)
    if max_stages is not None:
        _check_max_stages(max_stages)
    norm_widths(widths)
    check_verify(verify)


def _check_target(target: Any, objective: Any) -> None:
    check_target_type(target)
    check_undilated(target, "the solver")
    check_objective(objective)
    if objective != "params" and target.input_size is None:
        raise SpecError(f"objective {objective!r} counts MACs and needs a target `input_size`")


def _check_stride(target: Target) -> None:
    for a, axis in enumerate(("height", "width")):
        s, K = target.stride[a], target.kernel_size[a]
        if s > K:
            raise SpecError(
                f"stride {s} exceeds the kernel {K} along the {axis}: the target skips input pixels, so no "
                f"design can (or needs to) cover a contiguous window; use a kernel of at least {s}"
            )


def _check_flags(square_only: Any, dilation: Any, min_coverage: Any) -> float:
    for name, value in (("square_only", square_only), ("dilation", dilation)):
        if not isinstance(value, bool):
            raise SpecError(f"`{name}` (={value!r}) must be true or false")
    if isinstance(min_coverage, bool) or not isinstance(min_coverage, (int, float)) \
            or not (0.0 < float(min_coverage) <= 1.0) or math.isnan(float(min_coverage)):
        raise SpecError(f"`min_coverage` (={min_coverage!r}) must be a number in (0, 1]")
    return float(min_coverage)


def _stage_range(target: Target, max_stages: Any, widths: Widths, square: bool, dilated: bool) -> tuple[int, int]:
    if max_stages is not None:
        _check_max_stages(max_stages)
    if isinstance(widths, tuple):
        n = len(widths) + 1
        if max_stages is not None and max_stages != n:
            raise SpecError(f"`widths` has {len(widths)} internal width(s), i.e. {n} stages, "
                            f"but `max_stages` is {max_stages}")
        return n, n
    return 1, (max_stages if max_stages is not None else stage_cap(target, dilation=dilated, square_only=square))


@dataclass(frozen=True)
class SearchSpace:
    """Every design the solver considers for ``target`` under one set of options (see :func:`solve`).

    Build it with :meth:`create`, which validates the options. ``max_stages`` is kept as given (it
    names the family and goes into the spec's options); ``n_lo..n_hi`` is the searched stage range,
    ``exact_n`` says that the stage count is fixed (by the widths, or per count in a Pareto front).

    >>> space = SearchSpace.create(Target(64, 64, 3), "params", 2, False, False, None, 1.0)
    >>> space.n_lo, space.n_hi, space.family
    (1, 2, 'osc-2')
    >>> space.text[:40]
    'chains of 1 <= N <= 2 stages, internal w'
    """

    target: Target
    objective: str
    max_stages: int | None
    square: bool
    dilated: bool
    widths: Widths
    lam: float
    n_lo: int
    n_hi: int
    exact_n: bool = False

    @classmethod
    def create(cls, target: Any, objective: Any = "params", max_stages: Any = None, square_only: Any = False,
               dilation: Any = False, widths: Any = None, min_coverage: Any = 1.0) -> SearchSpace:
        """The validated space (arguments as in :func:`osc_design.solver.solve`); raises :class:`SpecError`."""
        _check_target(target, objective)
        lam = _check_flags(square_only, dilation, min_coverage)
        _check_stride(target)
        w = norm_widths(widths)
        n_lo, n_hi = _stage_range(target, max_stages, w, square_only, dilation)
        return cls(target, objective, max_stages, square_only, dilation, w, lam, n_lo, n_hi, isinstance(w, tuple))

    def with_stages(self, n: int, objective: str) -> SearchSpace:
        """The sub-space of exactly ``n`` stages for ``objective`` (one point of a Pareto front)."""
        return dataclasses.replace(self, objective=objective, max_stages=n, n_lo=n, n_hi=n, exact_n=True)

    def smaller(self) -> SearchSpace | None:
        """A space whose designs lie in this one (for ``params`` with dilation or a stride), or ``None``.

        Without dilation; or the unstrided chain (every stage before the stride, the last one strided).
        """
        if self.objective != "params" or not (self.dilated or self.strided):
            return None
        t = self.target
        target = t if self.dilated else Target(t.in_channels, t.out_channels, t.kernel_size, (1, 1), t.padding)
        n = self.n_hi if self.max_stages is None else self.max_stages
        return SearchSpace.create(target, self.objective, n, self.square, False, self.widths, self.lam)

    # -- derived facts ------------------------------------------------------------------------------
    @property
    def strided(self) -> bool:
        return self.target.stride != (1, 1)

    @property
    def gaps(self) -> bool:
        """The reordered (gap-filling) space: ``params`` with dilation, no stride, every stage ``C_out`` wide."""
        return self.dilated and self.objective == "params" and not self.strided and self.widths is None

    @property
    def partial(self) -> bool:
        """Only a fraction of the volume must be covered."""
        return self.lam < 1.0

    @property
    def uniform(self) -> bool:
        """Every stage maps to ``C_out`` channels."""
        return self.widths is None or self.widths == self.target.out_channels

    def width(self, t: int, last: bool) -> int:
        """Output width of stage ``t`` (1-based)."""
        w = self.widths
        if last or w is None:
            return self.target.out_channels
        if isinstance(w, int):
            return w
        return w[t - 1]

    def min_width(self, t_from: int) -> int:
        """Smallest output width of stages ``t_from..``."""
        w, cout = self.widths, self.target.out_channels
        if w is None:
            return cout
        if isinstance(w, int):
            return min(w, cout)
        return min(list(w[t_from - 1:]) + [cout])

    @property
    def family(self) -> str:
        n = self.n_hi if isinstance(self.widths, tuple) else self.max_stages
        return "osc-2" if n == 2 else "osc"

    @property
    def options(self) -> dict[str, Any]:
        """The options recorded in the spec of a design of this space."""
        w = self.widths
        return {"objective": self.objective, "max_stages": self.max_stages, "square_only": self.square,
                "dilation": self.dilated, "widths": (list(w) if isinstance(w, tuple) else w),
                "min_coverage": self.lam}

    # -- texts --------------------------------------------------------------------------------------
    @property
    def text(self) -> str:
        """The space in words, as the certificate states it."""
        widths = self.widths
        w = ("internal widths C_out" if widths is None else
             f"internal widths {widths}" if isinstance(widths, int) else f"widths {list(widths)}")
        n = f"N = {self.n_hi} stages" if self.n_lo == self.n_hi else f"1 <= N <= {self.n_hi} stages"
        k = "square kernels k x k" if self.square else "rectangular kernels kh x kw"
        d = ("dilations forming mixed-radix digits along the chain (each step <= footprint span + 1)"
             if self.dilated else "no dilation")
        if self.gaps:
            d = _GAPS_ORDER
        s = "the stride on one searched stage (later taps spaced by the stride)" if self.strided else "no stride"
        cov = "full volumetric coverage" if self.lam >= 1.0 else f"at least {self.lam:.6g} of the volume covered"
        extra = ""
        if self.objective == "params" and not self.dilated and not self.square:
            extra = "; at most one stage per axis and stride phase with a kernel > 1 (exact by exchange)"
        return (f"chains of {n}, {w}, groups dividing both widths of a stage, {k}, {d}, {s}, channel shuffles "
                f"with the previous stage's groups, padding by the centring rule, {cov}{extra}")

    def text_for(self, proof: str) -> str:
        """:attr:`text` for a design found by ``proof`` (see :class:`~osc_design.solver.result.Found`): the closed
        searches of the reordered space also cover chains whose two axes need different orders."""
        if proof == "pairs":
            return self.text.replace(_GAPS_ORDER, "dilations making each axis's footprint gap-free in some order of "
                                     "the stages, each axis its own (every two-stage footprint without gaps, so a "
                                     "dilated stage's gaps may be filled by the other)")
        if proof == "split":
            return self.text + ("; optimal also among every chain with these widths whose footprint contains the "
                                "centred window, with gaps or a different order on each axis (splitting every stage "
                                "into single-factor stages costs no more, and each axis's kernels reach the counting "
                                "bound: a footprint has at most prod k points, odd kernels alone give an even span)")
        return self.text

    def infeasible(self) -> InfeasibleDesignError:
        """The error for a space without a design, saying why."""
        target, lam = self.target, self.lam
        (kh, kw) = target.kernel_size
        if self.square and not self.dilated and (kh - kw) % 2:
            return InfeasibleDesignError(
                f"square kernels without dilation give both axes the same footprint span, which must be "
                f"= {kh - 1} (mod 2) for the height and = {kw - 1} (mod 2) for the width of kernel {kh}x{kw}; "
                "allow rectangular kernels or dilation"
            )
        n_hi = self.n_hi
        return InfeasibleDesignError(
            f"no chain of at most {n_hi} stage{'s' if n_hi > 1 else ''} in the searched space covers "
            f"{'the full' if lam >= 1 else f'{lam:.4g} of the'} volume of {target.describe()} "
            f"(kernel {kh}x{kw}, stride {target.stride}, padding {target.padding}); allow more stages, "
            "rectangular kernels or dilation"
        )
