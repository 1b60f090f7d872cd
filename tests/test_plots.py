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


def test_pareto_svg_labels_its_axes(tmp_path):
    out = tmp_path / "pareto.svg"
    r = runner.invoke(app, ["plot", "pareto", "--channels", "64", "--kernel", "5", "--output", str(out)])
    assert r.exit_code == 0, r.stderr
    root = ET.parse(out).getroot()
    assert root.tag.endswith("svg")
    text = out.read_text()
    assert "stages (conv depth)" in text and "parameters (weights, no bias)" in text


def test_plot_rejects_other_formats(tmp_path):
    r = runner.invoke(app, ["plot", "pareto", "--channels", "64", "--output", str(tmp_path / "x.pdf")])
    assert r.exit_code == 2 and "must end in .png or .svg" in r.stderr


# issue 14 item 7: the pareto plot shows trade-offs that exist (params vs depth, params vs latency)
def test_pareto_figure_plots_params_against_stages():
    from osc_design import Target
    from osc_design.compare import compare
    from osc_design.plots import pareto_figure
    from osc_design.solver import pareto_front

    target = Target(256, 256, 7, input_size=56)
    fig = pareto_figure(target)
    (ax,) = fig.axes
    front = ax.lines[0]
    assert front.get_label() == "OSC Pareto front"
    expected = pareto_front(target)
    assert list(front.get_xdata()) == [s.spec.stages for s in expected]
    assert list(front.get_ydata()) == [s.cost.params for s in expected]
    by_label = {line.get_label(): (line.get_xdata()[0], line.get_ydata()[0]) for line in ax.lines[1:]}
    for d in compare(target).designs:
        if d.family in ("osc", "osc-2"):
            continue
        label = d.family if d.coverage.full else f"{d.family} (partial RF)"
        assert by_label[label] == (d.stages, d.cost.params)
    assert "grouped (partial RF)" in by_label and "slak (partial RF)" in by_label
    assert ax.get_xlabel() == "stages (conv depth)" and "MACs" not in ax.get_ylabel()


class _FakeModel:
    """A latency model predicting 1 microsecond per 1,000 params (enough to place the points)."""

    def prefetch(self, specs):
        return None

    def predict(self, spec, fresh=None):
        from osc_design import cost

        class P:
            seconds = cost(spec).params * 1e-9

        return P()


def test_pareto_figure_with_latency_has_a_latency_panel_and_labels_that_do_not_overlap():
    from osc_design import Target
    from osc_design.plots import pareto_figure
    from osc_design.solver import pareto_front

    target = Target(256, 256, 7, input_size=56)
    fig = pareto_figure(target, latency=_FakeModel())
    assert len(fig.axes) == 2
    lat = fig.axes[1]
    front = pareto_front(target)
    assert list(lat.lines[0].get_xdata()) == pytest.approx([s.cost.params * 1e-6 for s in front])
    assert "predicted" in lat.get_xlabel()
    fig.canvas.draw()
    renderer = fig.canvas.get_renderer()
    boxes = [t.get_window_extent(renderer) for t in lat.texts]
    assert len(boxes) == len(front)
    assert not any(a.overlaps(b) for i, a in enumerate(boxes) for b in boxes[i + 1:])
