"""The ``osc-2`` and ``osc`` families: the solver's optimal chains, registered beside the rival families.

The structure of the optimized separable convolution is a reconstruction (papers.md section 1: only
the abstract's asymptotic claims are verified), so both families are marked ``reconstructed``.
Their closed forms are the chain formula ``sum_i C_{i-1} C_i kh_i kw_i / g_i`` (times each stage's
output size for MACs) with the solver's chosen stage values, written in the target's symbols where
a stage uses the target's own channels or kernel sides.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from ..ops import Conv2d
from ..registry import Family, register
from ..spec import LayerSpec, Target
from ._common import symbols

if TYPE_CHECKING:  # pragma: no cover
    import sympy

    from ..solver import Solution

__all__ = ["OSC_OPTIONS", "chain_params_expr", "chain_macs_expr"]

OSC_OPTIONS: dict[str, Any] = {
    "objective": "params",
    "max_stages": None,
    "square_only": False,
    "dilation": False,
    "widths": None,
    "min_coverage": 1.0,
}
"""Options of ``osc`` (``osc-2`` takes the same but ``max_stages``, which is fixed at 2)."""


def _solve(target: Target, two_stage: bool, options: dict[str, Any]) -> Solution:
    from ..errors import SpecError
    from ..solver import solve

    unknown = set(options) - set(OSC_OPTIONS) - ({"max_stages"} if not two_stage else set())
    if two_stage and "max_stages" in options:
        unknown.add("max_stages")
    if unknown:
        family = "osc-2" if two_stage else "osc"
        raise SpecError(f"unknown option(s) {sorted(unknown)} for family {family!r}; "
                        f"expected {sorted(k for k in OSC_OPTIONS if not (two_stage and k == 'max_stages'))}")
    if two_stage:
        options = {**options, "max_stages": 2}
    return solve(target, **options)


def _conv_term(conv: Conv2d, target: Target, s: dict[str, Any]) -> Any:
    """``C_{i-1} C_i kh_i kw_i / g_i`` of one conv, with the target's symbols for the target's own values."""

    def term(value: int, name: str, target_value: int) -> Any:
        return s[name] if value == target_value else value

    return (term(conv.in_channels, "C_in", target.in_channels) * term(conv.out_channels, "C_out", target.out_channels)
            * term(conv.kernel_size[0], "K_h", target.kernel_size[0])
            * term(conv.kernel_size[1], "K_w", target.kernel_size[1]) / conv.groups)


def chain_params_expr(spec: LayerSpec) -> sympy.Expr:
    """``sum_i C_{i-1} C_i kh_i kw_i / g_i`` over the spec's convs, in the target's symbols where they apply."""
    import sympy

    s = symbols()
    return sympy.Add(*(_conv_term(conv, spec.target, s) for conv in spec.convs))


def chain_macs_expr(spec: LayerSpec) -> sympy.Expr:
    """Each conv's params term times its output size (``H_out``, ``W_out``, ``H``, ``W`` where sizes match)."""
    import sympy

    from ..errors import SpecError

    s, t = symbols(), spec.target
    if t.input_size is None or t.output_size is None:
        raise SpecError("MAC closed forms need a target with an `input_size`")
    sizes = spec.spatial_sizes()

    def size(value: int, axis: int) -> Any:
        if value == t.output_size[axis]:  # type: ignore[index]
            return s["H_out" if axis == 0 else "W_out"]
        if value == t.input_size[axis]:  # type: ignore[index]
            return s["H" if axis == 0 else "W"]
        return value

    return sympy.Add(*(_conv_term(conv, t, s) * size(sizes[conv.id][0], 0) * size(sizes[conv.id][1], 1)
                       for conv in spec.convs))


def _solver(two_stage: bool) -> Callable[..., Solution]:
    def solution(target: Target, **options: Any) -> Solution:
        return _solve(target, two_stage, options)

    return solution


def _expr(chain: Callable[[LayerSpec], sympy.Expr], two_stage: bool) -> Callable[..., sympy.Expr]:
    def expr(target: Target, **options: Any) -> sympy.Expr:
        return chain(_solve(target, two_stage, options).spec)

    return expr


def _family(family_id: str, title: str, two_stage: bool, asymptotic: str) -> Family:
    solution = _solver(two_stage)
    return Family(
        id=family_id,
        title=title,
        build=lambda target, **options: solution(target, **options).spec,
        params_expr=_expr(chain_params_expr, two_stage),
        macs_expr=_expr(chain_macs_expr, two_stage),
        asymptotic=asymptotic,
        certainty="reconstructed",
        options={k: v for k, v in OSC_OPTIONS.items() if not (two_stage and k == "max_stages")},
        solve=solution,
    )


register(_family("osc-2", "Optimized separable convolution, two stages (Wei et al. 2022; structure reconstructed)",
                 True, "C^(3/2) K"))
register(_family("osc", "Optimized separable convolution, stages free (Wei et al. 2022; structure reconstructed)",
                 False, "C log(C K^2)"))
