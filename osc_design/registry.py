"""Registry of operator families: stable ids -> spec builders with closed forms.

A family is registered once, at import of the module that defines it; the ids appear in JSON
output and on the command line, so they never change. Closed forms are sympy expressions built on
demand (sympy is imported only when a closed form is asked for).
"""

from __future__ import annotations

import importlib
from types import MappingProxyType
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from .errors import SpecError

if TYPE_CHECKING:  # pragma: no cover
    import sympy

    from .solver import Solution
    from .spec import LayerSpec, Target

__all__ = ["Family", "FamilyDesign", "register", "get_family", "family_ids", "families", "registered",
           "FAMILY_MODULES"]


@dataclass(frozen=True)
class FamilyDesign:
    """A family's design for a target: the graph, with the solver's :class:`~osc_design.solver.Solution`
    (cost, coverage and certificate of optimality) when the family is built by the solver."""

    spec: LayerSpec
    solution: Solution | None = None


@dataclass(frozen=True)
class Family:
    """An operator family.

    Attributes
    ----------
    id:
        Stable identifier (``"depthwise-separable"``).
    title:
        Human name with its source (``"MobileNet depthwise separable (Howard et al. 2017)"``).
    build:
        ``build(target, **options) -> LayerSpec``; raises :class:`~osc_design.SpecError` naming a bad option.
    params_expr, macs_expr:
        ``f(target, **options) -> sympy.Expr`` closed forms; evaluated they equal the exact graph counts
        (params: weights without bias; macs: padding-inclusive, at the target's input size).
    asymptotic:
        Class of the parameter count for ``C_in = C_out = C``, kernel ``K x K``, e.g. ``"C^2 K^2"``.
    certainty:
        How the structure is known: ``"verified"`` (official code) or ``"reconstructed"`` (see docs).
    options:
        Option name -> default value (documented in the builder's docstring).
    solve:
        ``solve(target, **options) -> Solution`` for a family built by the solver (``osc``, ``osc-2``), whose
        ``build`` is then ``solve(...).spec``; ``None`` for the others.
    """

    id: str
    title: str
    build: Callable[..., LayerSpec]
    params_expr: Callable[..., sympy.Expr]
    macs_expr: Callable[..., sympy.Expr]
    asymptotic: str
    certainty: str = "verified"
    options: Mapping[str, Any] = field(default_factory=dict)
    solve: Callable[..., Solution] | None = None

    def design(self, target: Target, **options: Any) -> FamilyDesign:
        """The design for ``target``, with the solver's solution when there is one (one build, one solve).

        >>> from osc_design import Target
        >>> d = get_family("osc-2").design(Target(64, 64, 3))
        >>> d.spec == d.solution.spec, d.solution.certificate.gap >= 0
        (True, True)
        >>> get_family("conv").design(Target(64, 64, 3)).solution is None
        True
        """
        if self.solve is None:
            return FamilyDesign(self.build(target, **options))
        solution = self.solve(target, **options)
        return FamilyDesign(solution.spec, solution)


_REGISTRY: dict[str, Family] = {}

FAMILY_MODULES = ("osc_design.families",)
"""Modules whose import registers the built-in families (the package imports its modules in display order)."""


def register(family: Family) -> Family:
    """Add ``family`` to the registry (ids are unique)."""
    if family.id in _REGISTRY and _REGISTRY[family.id] is not family:
        raise SpecError(f"family id {family.id!r} is already registered")
    _REGISTRY[family.id] = family
    return family


def _load_builtins() -> None:
    for mod in FAMILY_MODULES:
        importlib.import_module(mod)


def family_ids() -> list[str]:
    """Ids of all registered families, in registration order."""
    _load_builtins()
    return list(_REGISTRY)


def registered() -> Mapping[str, Family]:
    """A live read-only view of the registry, id -> family, in registration order (the built-ins loaded)."""
    _load_builtins()
    return MappingProxyType(_REGISTRY)


def families() -> list[Family]:
    """All registered families, in registration order."""
    _load_builtins()
    return list(_REGISTRY.values())


def get_family(family_id: str) -> Family:
    """The family registered under ``family_id``.

    >>> get_family("conv").asymptotic
    'C^2 K^2'
    """
    _load_builtins()
    try:
        return _REGISTRY[family_id]
    except (KeyError, TypeError):  # TypeError: an unhashable id
        raise SpecError(f"unknown family {family_id!r}; expected one of {', '.join(_REGISTRY)}") from None
