"""A converted network exported with ``torch.onnx.export`` runs in onnxruntime with the logits it has in torch.

Exported with the TorchScript-based exporter (``dynamo=False``: no onnxscript needed), which traces the
converted model's designs (osc-design's ``SpecModule`` on main, standard modules once the designs are plain
torch modules) into standard ONNX ops; the channel shuffles become Reshape-Transpose-Reshape.
"""

from __future__ import annotations

import io
import warnings

import numpy as np
import pytest

from tests.backends.requested import require

torch = pytest.importorskip("torch")
require("onnxruntime")

import onnx  # noqa: E402

from osc_design import summary  # noqa: E402
from osc_design.backends.onnx import session  # noqa: E402
from osc_design.networks.catalog import catalog_layers  # noqa: E402
from osc_design.networks.convert import convert  # noqa: E402
from osc_design.networks.plan import plan_network  # noqa: E402
from osc_design.networks.torch_models import build_model  # noqa: E402


@pytest.mark.parametrize("policy", ["osc"])
def test_converted_network_exports_to_onnx_with_the_same_logits(policy):
    model = build_model("cifar-resnet20").eval()
    plan = plan_network(catalog_layers("cifar-resnet20"), policy)
    assert any(lp.chosen.spec is not None for lp in plan.layers)
    converted = convert(model, plan, weights="random").eval()
    x = torch.randn(3, 3, 32, 32, generator=torch.Generator().manual_seed(0))
    buf = io.BytesIO()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(converted, (x,), buf, dynamo=False, opset_version=17, input_names=["input"],
                          output_names=["logits"], dynamic_axes={"input": {0: "N"}})
    proto = onnx.load_from_string(buf.getvalue())
    onnx.checker.check_model(proto, full_check=True)
    y = session(proto).run(None, {"input": x.numpy()})[0]
    with torch.no_grad():
        ref = converted(x).numpy()
    assert y.shape == ref.shape and ref.shape[0] == 3
    assert np.max(np.abs(y - ref)) <= 1e-5 * np.max(np.abs(ref))
    # the file's counts: its Conv nodes hold the plan's conv MACs (designs and kept layers), per sample
    s = summary(proto, batch=1)
    assert sum(r.macs for r in s.rows if r.layer == "Conv") == plan.totals()["macs"]["after"]
