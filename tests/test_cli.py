"""Every command through typer's CliRunner: table content, the JSON contract, files, exit codes."""

from __future__ import annotations

import csv
import io
import json
import subprocess
import sys

import pytest
from typer.testing import CliRunner

from osc_design import Target, cost, coverage, load
from osc_design.cli import app
from osc_design.compare import compare
from osc_design.serialize import from_dict
from osc_design.solver import solve

runner = CliRunner()


def run(*args):
    result = runner.invoke(app, list(args))
    assert "Traceback" not in result.stdout + result.stderr, result.stderr
    return result


def test_bare_command_table():
    r = run("--channels", "256", "--kernel", "7", "--input-size", "14")
    assert r.exit_code == 0, r.stderr
    out = r.stdout
    for family in ("conv", "depthwise-separable", "bsconv-u", "compconv", "slak", "shiftwise", "osc-2", "osc"):
        assert family in out
    assert "3,211,264" in out and "629,407,744" in out  # the conv's exact params and MACs
    assert "57,344" in out  # osc-2: 7x1 then 1x7, 16 groups each
    assert "MACs valid" in out and "FlopCounterMode" in out and "XLA" in out  # conventions are stated
    assert "Certificate" in out and "lower bound" in out and "gap" in out
    assert "\x1b[" not in out  # no colour codes when not writing to a terminal


def test_default_input_size_is_stated():
    out = run("--channels", "64", "--kernel", "3").stdout
    assert "input 56x56 (default)" in out and "default input 56x56" in out


def test_compare_json_contract_matches_library():
    r = run("compare", "--in-channels", "64", "--out-channels", "128", "--kernel", "3", "--stride", "2",
            "--input-size", "16", "--format", "json")
    assert r.exit_code == 0, r.stderr
    doc = json.loads(r.stdout)
    target = Target(64, 128, 3, 2, input_size=16)
    assert doc["target"] == target.to_dict()
    lib = compare(target)
    assert [d["family"] for d in doc["designs"]] == [d.family for d in lib.designs]
    assert doc["best"] == lib.best.family
    for row, design in zip(doc["designs"], lib.designs, strict=True):
        assert set(row) >= {"family", "params", "macs", "macs_valid", "flops", "stages", "coverage", "spec"}
        assert isinstance(row["params"], int) and isinstance(row["macs"], int) and isinstance(row["flops"], int)
        assert row["params"] == design.cost.params and row["macs"] == design.cost.macs
        assert row["macs_valid"] == design.cost.macs_valid and row["flops"] == 2 * design.cost.macs
        assert row["coverage"] == design.coverage.fraction and 0 <= row["coverage"] <= 1
        spec = from_dict(row["spec"])  # the embedded spec is a valid layer spec of the same design
        assert cost(spec).params == row["params"]


def test_solve_json_has_cost_and_certificate(tmp_path):
    out = tmp_path / "design.json"
    r = run("solve", "--channels", "256", "--kernel", "7", "--max-stages", "2", "--format", "json",
            "--output", str(out))
    assert r.exit_code == 0 and r.stdout == ""
    doc = json.loads(out.read_text())
    assert doc["format"] == "osc-design.layer" and doc["family"] == "osc-2"
    assert doc["cost"]["params"] == 57_344 and doc["certificate"]["bound"] == pytest.approx(57_344)
    assert doc["certificate"]["gap"] == pytest.approx(0.0)
    spec = load(out)
    assert coverage(spec).full and spec == solve(Target(256, 256, 7, input_size=56), max_stages=2).spec


def test_solve_pareto_table_and_csv():
    r = run("solve", "--channels", "64", "--kernel", "5", "--pareto", "--format", "csv")
    assert r.exit_code == 0, r.stderr
    rows = list(csv.DictReader(io.StringIO(r.stdout)))
    assert len(rows) >= 2
    params = [int(row["params"]) for row in rows]
    macs = [int(row["macs"]) for row in rows]
    for i in range(len(rows)):  # non-dominated
        assert not any(params[j] <= params[i] and macs[j] <= macs[i]
                       and int(rows[j]["stages"]) <= int(rows[i]["stages"])
                       and (params[j], macs[j], rows[j]["stages"]) != (params[i], macs[i], rows[i]["stages"])
                       for j in range(len(rows)))


def test_verify_and_export(tmp_path):
    spec_path = tmp_path / "d.json"
    solved = run("solve", "-c", "32", "-k", "3", "-i", "8", "--max-stages", "2", "-f", "json", "-o", str(spec_path))
    assert solved.exit_code == 0
    r = run("verify", str(spec_path))
    assert r.exit_code == 0 and "receptive field: full" in r.stdout
    r = run("verify", str(spec_path), "--format", "json")
    doc = json.loads(r.stdout)
    assert doc["coverage"]["full"] and doc["cost"]["params"] == cost(load(spec_path)).params
    py = tmp_path / "mod.py"
    r = run("export", str(spec_path), "--to", "torch", "--output", str(py))
    assert r.exit_code == 0 and "class OscDesign" in py.read_text()


def test_verify_bad_files(tmp_path):
    bad = tmp_path / "bad.json"
    bad.write_text('{"format": "osc-design.layer", "version": 7}')
    r = runner.invoke(app, ["verify", str(bad)])
    assert r.exit_code == 2 and "written by a newer osc-design" in r.stderr and r.stderr.count("\n") == 1
    r = runner.invoke(app, ["verify", str(tmp_path / "missing.json")])
    assert r.exit_code == 2 and "is not a readable file" in r.stderr


def test_csv_output_and_atomic_file(tmp_path):
    out = tmp_path / "cmp.csv"
    r = run("--channels", "32", "--kernel", "3", "--format", "csv", "--output", str(out))
    assert r.exit_code == 0
    rows = list(csv.DictReader(io.StringIO(out.read_text())))
    assert rows[0]["family"] == "conv" and int(rows[0]["params"]) == 32 * 32 * 9
    assert [p.name for p in tmp_path.iterdir()] == ["cmp.csv"]


def test_sweep_json():
    r = run("sweep", "--channels", "16,32", "--kernels", "3,5", "--families", "conv,depthwise-separable", "-f", "json")
    rows = json.loads(r.stdout)
    assert len(rows) == 8
    row = next(x for x in rows if x["channels"] == 32 and x["kernel"] == 5 and x["family"] == "conv")
    assert row["params"] == 32 * 32 * 25
    assert run("sweep", "--channels", "a,b").exit_code == 2


def test_network_command(tmp_path):
    r = run("network", "cifar-resnet20", "--policy", "bsconv-u", "--format", "json")
    doc = json.loads(r.stdout)
    assert doc["format"] == "osc-design.network-plan" and doc["totals"]["total_params"]["after"] == 44_996
    r = run("network", "cifar-resnet20", "--policy", "bsconv-u")
    assert "1x1 conv: bsconv-u separates the kernel window" in r.stdout
    r = runner.invoke(app, ["network", "resnet1000"])
    assert r.exit_code == 2 and "'resnet1000' is not in the catalogue" in r.stderr
    r = runner.invoke(app, ["network", "cifar-resnet20", "--policy", "bsconv-u", "--budget-params", "0.01"])
    assert r.exit_code == 1 and "below the smallest achievable" in r.stderr
    bad = tmp_path / "net.json"
    bad.write_text("{}")
    r = runner.invoke(app, ["network", "--from", str(bad)])
    assert r.exit_code == 2 and "not an osc-design network description" in r.stderr  # invalid input: 2


def test_bare_command_imports_no_framework():
    code = ("import sys; from typer.testing import CliRunner; from osc_design.cli import app; "
            "r = CliRunner().invoke(app, ['--channels', '64', '--kernel', '3']); assert r.exit_code == 0, r.output; "
            "print(sorted(m for m in ('torch', 'jax', 'sympy', 'scipy') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


def test_latency_columns_objective_and_refine(tmp_path, monkeypatch):
    """--backend adds predicted latency, --measure measured latency, --objective latency --refine K the
    fastest design chosen by measuring the K best predicted (real timings of a tiny target)."""
    pytest.importorskip("torch")
    monkeypatch.setenv("OSC_DESIGN_CACHE_DIR", str(tmp_path / "cache"))
    r = run("--channels", "8", "--kernel", "3", "--input-size", "6", "--batch", "2", "--backend", "torch",
            "--objective", "latency", "--refine", "2", "--measure", "--format", "json")
    assert r.exit_code == 0, r.stderr
    doc = json.loads(r.stdout)
    assert all(row["predicted_ms"] > 0 and row["measured_ms"] > 0 for row in doc["designs"])
    fastest = doc["fastest"]
    assert fastest["measured_ms"] == min(fastest["refined"].values()) and len(fastest["refined"]) >= 2
    assert fastest["design"] in fastest["refined"] and "measured end to end" in fastest["space"]
    assert (tmp_path / "cache" / "latency.json").exists()
    r = run("--channels", "8", "--kernel", "3", "--input-size", "6", "--batch", "2", "--backend", "torch",
            "--objective", "latency")
    assert r.exit_code == 0 and "Fastest fully-covering design on torch" in r.stdout


def test_compare_takes_the_certificate_from_the_osc_design(monkeypatch):
    # the optimal design's certificate comes with the compared osc design: one solve per osc family, not a third
    import osc_design.solver as solver

    calls = []
    real = solver.solve

    def counting(*args, **kwargs):
        calls.append(kwargs.get("max_stages"))
        return real(*args, **kwargs)

    monkeypatch.setattr(solver, "solve", counting)
    r = run("--channels", "64", "--kernel", "5", "--format", "json")
    assert r.exit_code == 0 and sorted(calls, key=str) == [2, None]
    doc = json.loads(r.stdout)
    osc = next(d for d in doc["designs"] if d["family"] == "osc")
    assert doc["optimal"]["graph"] == osc["spec"]["graph"] and doc["optimal"]["cost"]["params"] == osc["params"]


# issue 14 item 2: tables never cut a number, at any width and through a pipe
def _exact_counts(doc):
    return {f"{d[k]:,}" for d in doc["designs"] for k in ("params", "macs", "macs_valid")}


@pytest.mark.parametrize("args", [["-c", "1024", "-k", "13", "-i", "224"], ["-c", "2048", "-k", "31", "-i", "1024"]])
@pytest.mark.parametrize("width", [40, 80, 200, None])  # None: a pipe (stdout is not a terminal)
def test_table_never_cuts_a_count(args, width, monkeypatch):
    from osc_design.cli import output

    doc = json.loads(run(*args, "-f", "json").stdout)
    if width is not None:
        monkeypatch.setattr(output, "terminal_width", lambda _: width)
    text = run(*args).stdout
    assert "…" not in text
    for count in _exact_counts(doc):
        assert count in text
    if width is not None:
        table = text.split("* best")[0]
        assert max(len(line.rstrip()) for line in table.splitlines()[1:]) <= width


def test_piped_table_through_a_real_pipe_is_whole():
    proc = subprocess.run([sys.executable, "-m", "osc_design", "-c", "1024", "-k", "13", "-i", "224"],
                          capture_output=True, text=True, env={**__import__("os").environ, "COLUMNS": "60"})
    assert proc.returncode == 0 and "…" not in proc.stdout
    assert "8,891,656,044,544" in proc.stdout and "177,209,344" in proc.stdout


def test_narrow_table_drops_optional_columns_first(monkeypatch):
    from osc_design.cli import output

    monkeypatch.setattr(output, "terminal_width", lambda _: 100)
    text = run("-c", "256", "-k", "7", "-i", "14").stdout
    header = next(line for line in text.splitlines() if line.startswith("family"))
    assert "class" not in header and "params" in header and "MACs valid" in header


# issue 14 item 6: messages
def test_messages_read_right():
    text = run("solve", "-c", "64", "-k", "3", "--max-stages", "1").stdout
    assert "(osc, 1 stage, objective params)" in text
    text = run("solve", "-c", "64", "-k", "5", "--objective", "macs-valid").stdout
    assert "objective macs-valid" in text and "macs_valid" not in text
    text = run("network", "resnet50", "--policy", "osc", "--budget-params", "0.2").stdout
    assert "budget at most 20% of the convs' params" in text and "{'" not in text
    text = run("solve", "-c", "64", "-k", "5", "--pareto").stdout
    assert "┏" not in text and "─" in text  # the same box style as every other table


def test_speedup_and_refined_measurements_text():
    from osc_design.cli.compare import _measured_text, _speedup_text

    assert _speedup_text(58.1) == "58.1x faster than the conv"
    assert _speedup_text(0.5) == "2.0x slower than the conv"

    class M:
        seconds = 0.0012

    shared, other = M(), M()
    other.seconds = 0.002
    assert _measured_text({"osc-2": shared, "osc-2[2]": shared, "bsconv-s": other}) == \
        "osc-2 = osc-2[2] 1.20 ms, bsconv-s 2.00 ms"


# issue 14 item 4: sweep says which families it skipped
def test_sweep_notes_skipped_families():
    r = runner.invoke(app, ["sweep", "-c", "32", "-k", "3,5", "-f", "json"])
    assert r.exit_code == 0
    rows = json.loads(r.stdout)
    at3 = [row for row in rows if row["kernel"] == 3]
    assert {s["family"] for s in at3[0]["skipped"]} == {"slak", "shiftwise"}
    assert all(row["skipped"] == [] for row in rows if row["kernel"] == 5)
    assert "note: skipped slak at 1 of 2 targets (C=32 K=3)" in r.stderr
    assert "note: skipped shiftwise" in r.stderr
    r = runner.invoke(app, ["sweep", "-c", "32", "-k", "3", "-f", "csv"])
    assert "skipped" not in r.stdout.splitlines()[0] and "note: skipped slak" in r.stderr
