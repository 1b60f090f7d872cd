"""Whole-network planning: architecture catalogue, extraction and conversion.

The workflow's entry points are attributes of this package, imported on first use (importing it needs
no framework): :func:`extract_convs` and :func:`extract_network` (a PyTorch model's convolutions),
:func:`plan_network`, :func:`load_plan` and :func:`save_plan` (plan files), :func:`load_network` and
:func:`save_network` (description files). ``convert`` names its module here
(``from osc_design.networks.convert import convert``, or ``osc_design.convert``).
"""

from __future__ import annotations

_LAZY = {
    "extract_convs": "extract", "extract_network": "extract",
    "plan_network": "plan", "load_plan": "plan", "save_plan": "plan", "NetworkPlan": "plan",
    "load_network": "description", "save_network": "description",
}

__all__ = sorted(_LAZY)


def __getattr__(name: str) -> object:  # PEP 562: torch is imported only by the modules that need it
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(f"{__name__}.{_LAZY[name]}"), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
