"""Exported files are clean Python: pyflakes reports nothing (no undefined or unused name) for every registered
family's design and every hand-written case, and ``typing.get_type_hints`` resolves every annotation of every
function and method in the loaded file (with ``from __future__ import annotations`` a missing import only shows
up there)."""

from __future__ import annotations

import ast
import functools
import inspect
import typing

import pytest
from backend_cases import CASES, FAMILY_TARGETS, build_family, case, load_export
from pyflakes.checker import Checker
from requested import requested_source_backends

from osc_design.backends import export_source
from osc_design.registry import family_ids


@functools.lru_cache(maxsize=None)
def family_specs(fid):
    """The family's default designs for every target of FAMILY_TARGETS it applies to."""
    return tuple(spec for spec in (build_family(fid, t) for t in FAMILY_TARGETS.values()) if spec is not None)


def flakes(text):
    """pyflakes' messages on ``text``, as strings."""
    return [str(m) for m in Checker(ast.parse(text), "exported.py").messages]


@pytest.mark.parametrize("to", ["torch", "jax"])
@pytest.mark.parametrize("fid", family_ids())
def test_every_family_exports_pyflakes_clean(fid, to):
    specs = family_specs(fid)
    assert specs, f"{fid} builds no design for any test target"
    for spec in specs:
        assert flakes(export_source(spec, to)) == [], spec.target.describe()


@pytest.mark.parametrize("to", ["torch", "jax"])
@pytest.mark.parametrize("name", CASES)
def test_hand_written_cases_export_pyflakes_clean(name, to):
    assert flakes(export_source(case(name), to)) == []


def annotated(module):
    """Every function of ``module`` and every method of its classes."""
    for value in vars(module).values():
        if inspect.isfunction(value) and value.__module__ == module.__name__:
            yield value
        elif inspect.isclass(value) and value.__module__ == module.__name__:
            yield from (f for f in vars(value).values() if inspect.isfunction(f))


@pytest.mark.parametrize("to", requested_source_backends())
@pytest.mark.parametrize("name", ["all-ops", "shift-add"])
def test_type_hints_of_the_exported_module_resolve(tmp_path, name, to):
    module, _ = load_export(tmp_path, case(name), to)
    functions = list(annotated(module))
    assert {"shift2d", "channel_shuffle", "__init__", "forward" if to == "torch" else "__call__"} <= {
        f.__name__ for f in functions}
    for f in functions:
        hints = typing.get_type_hints(f)
        assert "return" in hints, f.__qualname__
