"""Property-based fuzzing of everything osc-design reads (issue 14): every case ends with exit 0 or a
one-line error with exit 1 or 2, never a traceback, and a failed ``-o`` leaves no file behind.

A few hundred derandomized cases (the ``fuzz-ci`` profile, under a minute on two cores); the cases
themselves live in :mod:`tests.fuzz.cases`, and ``benchmarks/fuzz.py`` runs thousands of them.
Plans (``plan.json``) are not fuzzed: this version writes them but has no reader.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import warnings
from pathlib import Path

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from osc_design.errors import SchemaError
from osc_design.latency.cache import CacheWarning, LatencyCache
from osc_design.networks.description import load_network
from osc_design.serialize import MAX_BYTES, load, loads, parse_json
from tests.fuzz import cases

settings.register_profile("fuzz-ci", derandomize=True, database=None, deadline=None, print_blob=True,
                          suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large,
                                                 HealthCheck.filter_too_much])
CI = settings.get_profile("fuzz-ci")

SPEC_SEEDS = cases.spec_seeds()
NETWORK_SEED = cases.network_seed()
CACHE_SEED = cases.cache_seed()

# Inputs that broke a reader before this suite (each pinned for every format it applies to).
PINNED = [b"1" * 5000, b"[" * 100_000 + b"]" * 100_000, b'{"a": ' * 3000 + b"1" + b"}" * 3000, b"NaN", b"[Infinity]",
          b"\xff\xfe{\x00", b'{"format": 1, "format": 2}', b'["\\ud800"]', b"\xef\xbb\xbf{}", b"", b"\xed\xa0\x80"]


def _assert_all_ok(outcomes):
    outcomes = outcomes if isinstance(outcomes, list) else [outcomes]
    bad = [o for o in outcomes if o.failed]
    assert not bad, bad


def _pinned(test):
    for data in PINNED:
        test = example(data)(test)
    return test


@settings(CI, max_examples=80)
@given(data=st.sampled_from(SPEC_SEEDS).flatmap(cases.mutated_bytes))
@_pinned
@example(cases.render(cases.Pairs([("format", "osc-design.layer"), ("format", "osc-design.layer")])).encode())
@example(json.dumps(SPEC_SEEDS[0]).replace('"family": "conv"', '"family": "\\udc80"').encode())
@example(json.dumps(SPEC_SEEDS[0]).replace('"in_channels": 8', '"in_channels": 99999999999999999999', 1).encode())
def test_spec_files(data):
    """``load`` and ``osc-design export FILE --to torch -o OUT`` over mutated layer specs."""
    _assert_all_ok(cases.spec_case(data))


@settings(CI, max_examples=8)
@given(data=st.sampled_from(SPEC_SEEDS).flatmap(cases.mutated_bytes))
@example(json.dumps(SPEC_SEEDS[-1]).encode())
def test_spec_files_verify(data):
    """``osc-design verify FILE -f json -o OUT`` over a few mutated specs (a numeric check each)."""
    _assert_all_ok(cases.spec_verify_case(data))


@settings(CI, max_examples=110)
@given(data=cases.mutated_bytes(NETWORK_SEED))
@_pinned
@example(json.dumps(NETWORK_SEED).replace('"name": "tiny"', '"name": "\\ud800"').encode())
@example(json.dumps(NETWORK_SEED).replace('"groups": 1', '"groups": 1e999', 1).encode())
def test_network_descriptions(data):
    """``load_network`` and, where it loads, ``osc-design network --from FILE -f json -o OUT``."""
    _assert_all_ok(cases.network_case(data))


@settings(CI, max_examples=110)
@given(data=cases.mutated_bytes(CACHE_SEED))
@_pinned
@example(json.dumps(CACHE_SEED).replace('"median": 1e-05', '"median": 1' + "0" * 400).encode())
@example(json.dumps(CACHE_SEED).replace('"median": 1e-05', '"median": Infinity').encode())
@example(json.dumps(CACHE_SEED).replace('"spread": 1e-06', '"spread": -1e-06', 1).encode())
def test_latency_cache(data):
    """``LatencyCache`` over mutated cache files: loaded, or rebuilt with one ``CacheWarning``; never an error."""
    _assert_all_ok(cases.cache_case(data))


@settings(CI, max_examples=100)
@given(args=cases.command_lines())
@example(["-c", "8", "-k", "3", "--square-only", "true"])
@example(["-c", "8", "-k", "0x3"])
@example(["-c", "8", "-k", "x5", "-k", "7x"])
@example(["-c", "--kernel", "3"])
@example(["network", "cifar-resnet20", "--option", "p=abc"])
@example(["sweep", "--families", "osc,bogus", "-c", "8", "-k", "3"])
@example(["plot", "pareto", "-c", "8", "-k", "3"])
def test_command_lines(args):
    """The real flags with valid, out-of-range, non-numeric and flag-like values, repeated and unknown flags."""
    _assert_all_ok(cases.cli_case(args))


# -- huge targets: refused with one line beyond the supported limits, answered quickly within them -------
@pytest.mark.parametrize("args", [
    ["--channels", "99999999999999999999", "--kernel", "3"],
    ["sweep", "-c", "99999999999999999999", "-k", "3"],
])
def test_huge_targets_in_process(args):
    outcome = cases.cli_case(args)
    _assert_all_ok(outcome)
    assert outcome.code == 2


@pytest.mark.parametrize("args", [
    ["-c", "8", "-k", "99999999999999999999"],
    ["-c", "8", "-k", "3", "--max-stages", "99999999999999999999"],
    ["-c", "100000", "-k", "3", "-i", "1"],
])
def test_huge_targets_answer(args):
    code, err = _subprocess(args, timeout=60)
    assert code == 2 and "supported limit" in err and "Traceback" not in err


# -- real processes and files over the size cap ------------------------------------------------------------
def _subprocess(args, timeout=60, cwd=None):
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[2]), "COLUMNS": "100"}
    try:
        proc = subprocess.run([sys.executable, "-m", "osc_design", *args], capture_output=True, text=True,
                              timeout=timeout, env=env, cwd=cwd)
    except subprocess.TimeoutExpired:
        return None, "timed out"
    return proc.returncode, proc.stderr


def test_real_processes(tmp_path):
    """A handful of real runs: the exit code and one error line, no traceback, no file left by ``-o``."""
    bad = tmp_path / "bad.json"
    bad.write_bytes(b"[" * 100_000)
    out = tmp_path / "out.json"
    for args in (["verify", str(bad), "-o", str(out)], ["network", "--from", str(bad), "-o", str(out)],
                 ["-c", "8", "-k", "7x", "-o", str(out)], ["--channels", "0x3", "--kernel", "3"]):
        code, err = _subprocess(args, cwd=tmp_path)
        assert code in (1, 2) and err.startswith("Error: ") and err.count("\n") == 1, (args, code, err)
        assert sorted(p.name for p in tmp_path.iterdir()) == ["bad.json"], args
    code, err = _subprocess(["-c", "8", "-k", "3", "-i", "8", "-f", "json", "-o", str(out)], cwd=tmp_path)
    assert code == 0 and "Traceback" not in err and json.loads(out.read_text())["target"]


def test_files_over_the_size_cap(tmp_path):
    """A spec or network file one byte over the cap is refused before it is read, in one line."""
    big = tmp_path / "big.json"
    with open(big, "wb") as fh:  # sparse: no 10 MB written
        fh.truncate(MAX_BYTES + 1)
    for read in (load, load_network):
        with pytest.raises(SchemaError, match=f"{MAX_BYTES + 1} bytes exceeds the {MAX_BYTES} byte limit"):
            read(big)
    with pytest.raises(SchemaError, match="exceeds"):
        loads(b" " * MAX_BYTES + b"{}")
    for args in (["verify", str(big)], ["export", str(big)], ["network", "--from", str(big)]):
        _assert_all_ok(cases.cli_outcome("size-cap", args))
    assert parse_json(b" " * MAX_BYTES + b"[]", limit=None) == []  # the cache reads any size


@pytest.fixture(scope="module")
def seeded_cache(tmp_path_factory):
    """A cache directory filled by one real (timed) run of the command the cache CLI cases use."""
    directory = tmp_path_factory.mktemp("seeded-cache")
    outcome = cases.cli_outcome("cache:seed", ["-c", "8", "-k", "3", "-i", "8", "--backend", "torch", "-f", "json"],
                                env={"OSC_DESIGN_CACHE_DIR": str(directory)})
    assert outcome.kind == "ok", outcome
    return directory / "latency.json"


def _set_every_median(doc, value: str) -> bytes:
    for table in doc["tables"].values():
        for entry in table["ops"].values():
            entry["median"] = cases.Raw(value)
    return cases.render(doc).encode()


@pytest.mark.parametrize("value", ["0", "1e308"])
def test_cache_through_the_cli(seeded_cache, value, tmp_path):
    """The CLI over a real cache whose every median is zero or huge: exit 0 (no op is timed again)."""
    pytest.importorskip("torch")
    data = _set_every_median(json.loads(seeded_cache.read_text()), value)
    _assert_all_ok(cases.cache_cli_case(data, seeded_cache.parent))


def test_corrupt_real_cache_is_rebuilt_with_one_warning(seeded_cache, tmp_path):
    (tmp_path / "latency.json").write_bytes(b"\xff" + seeded_cache.read_bytes()[:100])
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        LatencyCache(tmp_path)
    assert [w.category for w in caught] == [CacheWarning]
    assert "not UTF-8" in str(caught[0].message)
