"""What every family module shares: the closed-form symbols, their evaluation, option checks, geometry."""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from functools import lru_cache
from typing import TYPE_CHECKING, Any

from ..errors import SpecError
from ..registry import Family, get_family, register
from ..spec import LayerSpec, Target

if TYPE_CHECKING:  # pragma: no cover
    import sympy

Pair = tuple[int, int]
Expr = Callable[..., Any]

SYMBOL_NAMES = ("C_in", "C_out", "K_h", "K_w", "s_h", "s_w", "p_h", "p_w", "H", "W", "H_out", "W_out")
"""Names of the closed-form symbols, in a fixed order (all integers; all positive but ``p_h, p_w``)."""


@lru_cache(maxsize=1)
def _symbol_table() -> dict[str, Any]:
    import sympy

    table = {}
    for name in SYMBOL_NAMES:
        if name in ("p_h", "p_w"):
            table[name] = sympy.Symbol(name, integer=True, nonnegative=True)
        else:
            table[name] = sympy.Symbol(name, integer=True, positive=True)
    return table


def symbols() -> dict[str, sympy.Symbol]:
    """The closed-form symbols by name (imports sympy on first call).

    Returns
    -------
    dict
        ``{"C_in": C_in, "C_out": C_out, ..., "W_out": W_out}`` (see :data:`SYMBOL_NAMES`).

    Examples
    --------
    >>> s = symbols()
    >>> s["C_in"] * s["K_h"]
    C_in*K_h
    """
    return dict(_symbol_table())


def _values(target: Target) -> dict[str, int]:
    (kh, kw), (sh, sw), (ph, pw) = target.kernel_size, target.stride, target.padding
    vals = {"C_in": target.in_channels, "C_out": target.out_channels, "K_h": kh, "K_w": kw,
            "s_h": sh, "s_w": sw, "p_h": ph, "p_w": pw}
    if target.input_size is not None:
        (h, w), (ho, wo) = target.input_size, target.output_size  # type: ignore[misc]
        vals.update(H=h, W=w, H_out=ho, W_out=wo)
    return vals


def evaluate(expr: sympy.Expr, target: Target) -> int:
    """Evaluate a closed form at a target: its channels, kernel, stride, padding and (if any) sizes.

    Parameters
    ----------
    expr : sympy.Expr
        An expression in the symbols of :func:`symbols` (e.g. from a family's ``params_expr``).
    target : Target
        Supplies the numbers; ``H, W, H_out, W_out`` need ``target.input_size``.

    Returns
    -------
    int
        The exact value.

    Raises
    ------
    SpecError
        If the expression still has free symbols (e.g. a MAC count for a target without input size).

    Examples
    --------
    >>> t = Target(256, 256, 3, input_size=56)
    >>> evaluate(get_family("depthwise-separable").macs_expr(t), t)
    212746240
    """
    import sympy

    table = _symbol_table()
    subs = {table[k]: sympy.Integer(v) for k, v in _values(target).items()}
    value = sympy.sympify(expr).xreplace(subs)
    if value.free_symbols:
        names = ", ".join(sorted(str(s) for s in value.free_symbols))
        raise SpecError(f"the expression still depends on {names}; give the target an `input_size`")
    value = sympy.simplify(value) if not value.is_Integer else value
    if not value.is_Integer:
        raise SpecError(f"the expression evaluates to {value}, not an integer")
    return int(value)


def count_params(family: str, target: Target, **options: Any) -> int:
    """Params of ``family`` (any registered id) at ``target`` from its closed form (``evaluate(params_expr)``).

    >>> count_params("depthwise-separable", Target(256, 256, 3))  # 256 * 9 + 256 * 256
    67840
    >>> count_params("osc", Target(256, 256, 7)) == get_family("osc").design(Target(256, 256, 7)).solution.cost.params
    True
    """
    fam = get_family(family)
    return evaluate(fam.params_expr(target, **options), target)


def count_macs(family: str, target: Target, **options: Any) -> int:
    """MACs (padding taps included) of ``family`` at ``target`` (which needs an ``input_size``) from its closed form."""
    fam = get_family(family)
    return evaluate(fam.macs_expr(target, **options), target)


def add(family_id: str, title: str, build: Callable[..., LayerSpec], params: Expr, macs: Expr, asymptotic: str,
        certainty: str, options: Mapping[str, Any]) -> None:
    """Register a rival family (:func:`osc_design.registry.register`) with its builder and closed forms."""
    register(Family(family_id, title, build, params, macs, asymptotic, certainty, dict(options)))


def _options(family: str, given: Mapping[str, Any], defaults: Mapping[str, Any]) -> dict[str, Any]:
    unknown = sorted(set(given) - set(defaults))
    if unknown:
        allowed = ", ".join(f"`{k}`" for k in defaults) or "none"
        raise SpecError(f"{family}: unknown option `{unknown[0]}` (={given[unknown[0]]!r}); options: {allowed}")
    return {**defaults, **given}


def _kind(default: Any) -> tuple[str, Callable[[Any], bool]] | None:
    """What an option whose default is ``default`` accepts, in words, and the test (``None``: not checked here)."""
    if isinstance(default, bool):
        return "true or false", lambda v: isinstance(v, bool)
    if isinstance(default, int):
        return "an integer", lambda v: type(v) is int
    if isinstance(default, float):
        return "a number", lambda v: isinstance(v, (int, float)) and not isinstance(v, bool)
    if isinstance(default, str):
        return "text", lambda v: isinstance(v, str)
    return None


def check_options(family: str, options: Mapping[str, Any]) -> dict[str, Any]:
    """Check ``options`` against the registered ``family``'s options before any design is built: each name
    must be one of the family's options, and each value of the kind its default is (true/false, an
    integer, a number, text). Values the builder checks against a target (ranges, kernel fits) are left
    to it.

    Raises :class:`~osc_design.errors.OptionError` naming the option and its value (``rule`` ``"unknown"``
    or ``"kind"``).

    >>> check_options("bsconv-s", {"p": 0.5, "with_bn": True})
    {'p': 0.5, 'with_bn': True}
    >>> check_options("bsconv-s", {"p": "abc"})
    Traceback (most recent call last):
    ...
    osc_design.errors.OptionError: bsconv-s: option `p` (='abc') must be a number
    """
    from ..errors import OptionError

    defaults = get_family(family).options
    for name, value in options.items():
        if name not in defaults:
            allowed = ", ".join(f"`{k}`" for k in defaults) or "none"
            raise OptionError(f"{family}: unknown option `{name}` (={value!r}); options: {allowed}", name, "unknown")
        kind = _kind(defaults[name])
        if kind is not None and not kind[1](value):
            raise OptionError(f"{family}: option `{name}` (={value!r}) must be {kind[0]}", name, "kind")
    return dict(options)


def _check_bool(value: Any, name: str) -> bool:
    if not isinstance(value, bool):
        raise SpecError(f"`{name}` (={value!r}) must be true or false")
    return value


def _centred_padding(target: Target, kernel: Pair, *, family: str, option: str) -> Pair:
    """Padding that puts a ``kernel`` stage centred in the target's window, with the target's output grid.

    Along an axis with target kernel ``K`` and padding ``p``, a ``k``-tap stage with padding
    ``p - (K - k) / 2`` has exactly the target's output size (for every input size and stride) and reads the
    centre ``k`` taps of the window. ``option`` names what to blame when ``K - k`` is odd.
    """
    pads = []
    for axis, axis_name in ((0, "height"), (1, "width")):
        big, small, pad = target.kernel_size[axis], kernel[axis], target.padding[axis]
        if (big - small) % 2:
            raise SpecError(
                f"{family}: `{option}` (={small}) cannot be centred in the target's {big}-tap kernel {axis_name}: "
                f"the kernel side minus `{option}` must be even for the output size to match; "
                f"try {option}={small - 1 if small > 1 else small + 1}"
            )
        inner = pad - (big - small) // 2
        if inner < 0:
            raise SpecError(
                f"{family}: the target's `padding` (={target.padding}) is too small: a {small}-tap stage centred "
                f"in the {big}-tap {axis_name} window needs padding >= {(big - small) // 2} to keep the output size "
                f"(no op can crop)"
            )
        pads.append(inner)
    return (pads[0], pads[1])


def _smallest_prime_factor(n: int) -> int:
    for d in range(2, math.isqrt(n) + 1):
        if n % d == 0:
            return d
    return n


def _lazy_sympy() -> Any:
    import sympy

    return sympy


def _syms() -> dict[str, Any]:
    return _symbol_table()

