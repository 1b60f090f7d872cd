"""The plot commands write valid PNG and SVG files."""

from __future__ import annotations

import xml.etree.ElementTree as ET

import pytest
from typer.testing import CliRunner

from osc_design.cli import app

mpimg = pytest.importorskip("matplotlib.image", reason="plots need the `plot` extra (matplotlib)")
runner = CliRunner()


def test_scaling_png(tmp_path):
    out = tmp_path / "scaling.png"
    r = runner.invoke(app, ["plot", "scaling", "--kernel", "7", "--output", str(out)])
    assert r.exit_code == 0, r.stderr
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    image = mpimg.imread(out)
    assert image.shape[0] > 200 and image.shape[1] > 300
    assert [p.name for p in tmp_path.iterdir()] == ["scaling.png"]


def test_pareto_svg_labels_macs_convention(tmp_path):
    out = tmp_path / "pareto.svg"
    r = runner.invoke(app, ["plot", "pareto", "--channels", "64", "--kernel", "5", "--output", str(out)])
    assert r.exit_code == 0, r.stderr
    root = ET.parse(out).getroot()
    assert root.tag.endswith("svg")
    text = out.read_text()
    assert "FLOPs = 2 x MACs" in text and "parameters (weights, no bias)" in text


def test_plot_rejects_other_formats(tmp_path):
    r = runner.invoke(app, ["plot", "pareto", "--channels", "64", "--output", str(tmp_path / "x.pdf")])
    assert r.exit_code == 2 and "must end in .png or .svg" in r.stderr
