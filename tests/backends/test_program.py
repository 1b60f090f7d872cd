"""The framework-free part of the backends: the requested backends import, the op sequence of a spec, the
backend registry, and verify() driven only through the Backend protocol (two fake backends, no framework)."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest
from backend_cases import case, np_evaluate
from requested import ENV, requested_backends

from osc_design import GraphBuilder, SpecError, Target, UnknownBackendError
from osc_design import backends
from osc_design.backends import Check, get_backend, verify
from osc_design.backends.program import Op, op_of, program, python_names


@pytest.mark.parametrize("name", requested_backends())
def test_requested_backend_imports(name):
    """Fails (does not skip) when a backend named in OSC_DESIGN_TEST_BACKENDS cannot be imported."""
    backend = get_backend(name)
    assert backend.name == name and backend.layout in ("NCHW", "NHWC")


def test_requested_backends_are_known(monkeypatch):
    for name in requested_backends():
        assert name in backends.BACKENDS, f"{ENV} names {name!r}, not one of {backends.BACKENDS}"
    monkeypatch.setenv(ENV, " jax, torch ,")
    assert requested_backends() == ["jax", "torch"]


def test_program_names_and_order():
    spec = case("odd-ids")
    prog = program(spec)
    names = python_names(spec)
    assert prog.input == names["in"] == "in_1"
    assert [s.node.id for s in prog.steps] == list(spec.order[1:])
    assert prog.output == names[spec.output] == "len_1"
    assert prog.step("forward").name == "forward_1" and prog.step("forward").inputs == ("stage_1",)
    with pytest.raises(SpecError, match="not a node"):
        prog.step("in")
    with pytest.raises(SpecError, match="must be a LayerSpec"):
        program("not a spec")


def test_step_fields_fill_templates():
    b = GraphBuilder(Target(4, 4, 3))
    y = b.conv2d(b.input, 4, (3, 1), padding=(1, 0), groups=2, name="c")
    spec = b.build(b.add([b.shift(y, (2, -1), name="s"), y], name="a"))
    steps = {s.node.id: s for s in program(spec).steps}
    assert "{in_channels}->{out_channels} k{kernel_size} p{padding} g{groups} {x}".format(
        **steps["c"].fields) == "4->4 k(3, 1) p(1, 0) g2 x"
    assert "{name} = {plus} ({xs})".format(**steps["a"].fields) == "a = s + c (s, c)"
    assert "{shift[0]},{shift[1]}".format(**steps["s"].fields) == "2,-1"


def test_an_op_missing_from_a_table_is_named():
    step = program(case("rect-even")).steps[1]
    with pytest.raises(SpecError, match="op 'channel_shuffle' has no Fake implementation"):
        op_of({"conv2d": Op(run=lambda m, s, xs: xs[0], line="")}, step, "Fake")


def test_unknown_backend():
    with pytest.raises(UnknownBackendError, match="unknown backend 'tensorflow'; expected one of torch, jax"):
        get_backend("tensorflow")
    with pytest.raises(UnknownBackendError, match="unknown backend 'tf'"):
        verify(case("rect-even"), "tf")


def test_backends_namespace():
    assert backends.BACKENDS == ("torch", "jax", "onnxruntime")
    assert set(backends.__all__) >= {"get_backend", "available_backends", "verify", "export_source", "cross_check",
                                     "Backend"}


def test_importing_backends_imports_no_framework():
    code = ("import sys, osc_design.backends, osc_design.backends.export, osc_design.backends.program; "
            "from osc_design.backends import export_source, available_backends; "
            "from osc_design import GraphBuilder, Target; "
            "b = GraphBuilder(Target(4, 4, 3)); s = b.build(b.conv2d(b.input, 4, 3, padding=1)); "
            "export_source(s, 'torch'); export_source(s, 'jax'); available_backends(); "
            "bad = sorted(m for m, v in sys.modules.items() if m.split('.')[0] in ('torch', 'jax', 'jaxlib', 'flax') "
            "and v is not None); "
            "assert not bad, bad")
    subprocess.run([sys.executable, "-c", code], check=True)


# ------------------------------------------------------------------------------------------ verify, protocol only
class FakeBackend:
    """A Backend of numpy modules: a module is its spec and weights, run by the independent numpy evaluator."""

    layout = "NCHW"

    def __init__(self, name: str, scale: float = 1.0) -> None:
        self.name, self.scale, self.calls = name, scale, []

    def build(self, spec, *, seed=0):
        return {"spec": spec, "weights": {}}

    def set_weights(self, module, spec, weights):
        module["weights"] = dict(weights)

    def get_weights(self, module, spec):
        return module["weights"]

    def owns(self, module):
        return isinstance(module, dict)

    def run(self, module, x):
        return self.scale * np_evaluate(module["spec"], x, module["weights"]).astype(np.float32)

    def verify_counts(self, spec, size, batch, *, module=None, seed=0):
        self.calls.append((size, batch, module, seed))
        return [Check(self.name, "params", "fake", 1, 1, True)]

    def timer(self, device, dtype, threads, batch):  # pragma: no cover - not timed here
        raise NotImplementedError


@pytest.fixture
def fakes(monkeypatch):
    made = {"one": FakeBackend("one"), "two": FakeBackend("two"), "off": FakeBackend("off", scale=1.5)}
    monkeypatch.setattr(backends, "_REGISTRY", {name: ((), name) for name in made})
    monkeypatch.setattr(backends, "BACKENDS", tuple(made))
    monkeypatch.setattr(backends, "get_backend", lambda name: made[backends._check_name(name)])
    return made


def test_verify_asks_each_backend_for_its_counts_and_cross_checks(fakes):
    spec = case("shift-add")
    report = verify(spec, "all", batch=3, seed=7)
    assert [(c.backend, c.quantity) for c in report.checks] == [
        ("one", "params"), ("two", "params"), ("off", "params"), ("one+two", "outputs"), ("one+off", "outputs")]
    assert all(f.calls == [((16, 16), 3, None, 7)] for f in fakes.values())
    assert [c.ok for c in report.checks] == [True, True, True, True, False]  # "off" scales its output
    single = verify(spec, "two", module="m")
    assert [c.backend for c in single.checks] == ["two"] and fakes["two"].calls[-1][2] == "m"


@pytest.mark.parametrize("module", ["osc_design.backends.program", "osc_design.latency.opkeys"])
def test_docstring_examples(module):
    import doctest
    import importlib

    assert doctest.testmod(importlib.import_module(module)).failed == 0
