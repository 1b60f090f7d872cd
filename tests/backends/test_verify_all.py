"""``verify(spec, "all")`` passes on every design ``compare`` produces: PyTorch's, XLA's and onnxruntime's counters,
the output shapes and the three runtimes' outputs agree with the closed forms for every family at K = 1, 3 and 7."""

from __future__ import annotations

import pytest

from requested import require

require("torch")
require("jax")
require("onnxruntime")

from osc_design import Target  # noqa: E402
from osc_design.backends import verify  # noqa: E402
from osc_design.compare import compare  # noqa: E402

TARGETS = {"16->16": (16, 16, 1), "40->80": (40, 80, 1), "24->12/2": (24, 12, 2)}
"""(C_in, C_out, stride): square, widening (1x1 depthwise stages are XLA multiplies there), strided narrowing."""


@pytest.mark.parametrize("kernel", [1, 3, 7])
@pytest.mark.parametrize("tid", TARGETS)
def test_verify_all_passes_on_every_compared_design(tid, kernel):
    c_in, c_out, stride = TARGETS[tid]
    designs = compare(Target(c_in, c_out, kernel, stride, input_size=8))
    assert len(designs) >= 8
    failed = {}
    for d in designs:
        report = verify(d.spec, "all")
        assert not report.skipped, report.skipped
        assert {c.backend for c in report.checks} == {"torch", "jax", "onnxruntime", "torch+jax", "torch+onnxruntime"}
        bad = [f"{c.backend} {c.quantity}: expected {c.expected}, measured {c.measured}" for c in report.checks
               if not c.ok]
        if bad:
            failed[d.family] = bad
    assert not failed, failed
