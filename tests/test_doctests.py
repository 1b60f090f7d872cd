"""The examples in the core modules' docstrings run and print what they say."""

from __future__ import annotations

import doctest
import importlib

import pytest

MODULES = ["osc_design", "osc_design.geometry", "osc_design.ops", "osc_design.spec", "osc_design.cost",
           "osc_design.coverage", "osc_design.serialize", "osc_design.registry", "osc_design.transform",
           "osc_design.families", "osc_design.compare", "osc_design.solver", "osc_design.networks.plan",
           *(f"osc_design.solver.{m}" for m in ("api", "space", "bounds", "chain", "intmath"))]


@pytest.mark.parametrize("name", MODULES)
def test_docstring_examples(name):
    result = doctest.testmod(importlib.import_module(name), optionflags=doctest.ELLIPSIS)
    assert result.failed == 0
