"""Exported modules through the Backend protocol, for each requested backend: the op table the exporter reads
is the one the runtime runs, and verify() accepts the exported module of every registered family."""

from __future__ import annotations

import sys

import pytest
from backend_cases import case, export_family, load_export
from requested import requested_source_backends

from osc_design.backends import get_backend, verify
from osc_design.backends.export import backend_source
from osc_design.registry import family_ids


@pytest.mark.parametrize("name", requested_source_backends())
def test_templates_read_from_the_text_are_the_op_table(name):
    backend = get_backend(name)
    module = sys.modules[f"osc_design.backends.{name}"]
    src = backend_source(name)
    assert src.ops == {op: (entry.init, entry.line) for op, entry in module.OPS.items()}
    assert src.text == module.SOURCE and src.layout == module.LAYOUT == backend.layout


@pytest.mark.parametrize("name", requested_source_backends())
def test_verify_accepts_exported_modules(tmp_path, name):
    spec = case("shift-add")
    mod, _ = load_export(tmp_path, spec, name)
    assert verify(spec, name, module=mod.OscDesign()).ok


@pytest.mark.parametrize("name", requested_source_backends())
@pytest.mark.parametrize("fid", family_ids())
def test_registered_families_export(tmp_path, fid, name):
    spec, module = export_family(tmp_path, fid, name)
    assert verify(spec, name, module=module).ok
