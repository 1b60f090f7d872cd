"""Latency model: the op cache (versioning, rebuild, concurrency, interruption) and the latency objective.

Most tests run on a fake, deterministic timing function injected as ``measure_fn``: no real timing, no
framework needed. The real-timing tests run for each backend of ``OSC_DESIGN_TEST_BACKENDS`` (default:
the installed ones): a prediction against the measured module, the ops timed as the backend builds them.
"""

from __future__ import annotations

import functools
import json
import math
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from osc_design import GraphBuilder, InfeasibleDesignError, SpecError, Target, cost_by_node
from osc_design.compare import compare
from osc_design.latency import (
    CACHE_VERSION,
    CALL_KEY,
    CacheWarning,
    LatencyCache,
    LatencyModel,
    OpKey,
    TableKey,
    Timing,
    TimingPolicy,
    calibrate,
    conv_key,
    measure,
    latency_candidates,
    op_keys,
    predict,
    solve_latency,
    solve_with_budget,
    standard_grid,
)
from osc_design.backends import usable_cpus
from osc_design.latency.opkeys import BASELINE_CONV_KEY, key_spec
from osc_design.latency.timing import Context
from osc_design.solver import pareto_front
from tests.backends.requested import requested_backends

ROOT = Path(__file__).resolve().parents[1]
CALL_S = 2e-5


# ------------------------------------------------------------------------------ a fake timing law
def fake_seconds(op: OpKey, batch: int = 8) -> float:
    """Deterministic latency law with the traits of a real CPU: grouped convs are slow per MAC."""
    if op.kind == "call":
        return CALL_S
    if op.kind == "conv2d":
        per_mac = {"dense": 1e-11, "depthwise": 8e-11, "grouped": 4e-11}[op.group_class]
        return 3e-5 + per_mac * op.macs * batch
    return 1e-5 + 2e-10 * op.work * batch


class Recorder:
    """A measure_fn that counts its calls."""

    def __init__(self) -> None:
        self.calls: list[str] = []

    def __call__(self, op: OpKey, ctx: Context) -> Timing:
        self.calls.append(op.id)
        s = fake_seconds(op, ctx.batch)
        return Timing(s, 0.01 * s, 7)


def predicted(spec, backend: str = "torch") -> float:
    """The prediction of a fresh fake model from the cache the test has filled (nothing is timed again)."""
    return predict(spec, fake_model(backend, measure_fn=lambda op, ctx: pytest.fail(f"{op.id} timed again"))).seconds


independent_latency = predicted  # the name tests/networks/test_plan_latency.py imports


@pytest.fixture
def cache_dir(tmp_path, monkeypatch):
    d = tmp_path / "cache"
    monkeypatch.setenv("OSC_DESIGN_CACHE_DIR", str(d))
    return d


def fake_model(backend: str = "torch", **kw) -> LatencyModel:
    kw.setdefault("measure_fn", Recorder())
    return LatencyModel(backend, threads=2, **kw)


TARGET = Target(32, 32, 5, input_size=8)


# -------------------------------------------------------------------------------------------- cache
def test_cache_file_is_versioned_and_keyed_by_context(cache_dir):
    m = fake_model(batch=4)
    p = predict(compare(TARGET, ["depthwise-separable"])[0].spec, m)
    assert p.measured == 3 and p.cached == 0  # call() and the two convs
    data = json.loads((cache_dir / "latency.json").read_text())
    assert data["format"] == "osc-design-latency-cache" and data["version"] == CACHE_VERSION
    (tid, table), = data["tables"].items()
    assert table["context"] == {**TableKey.of(m.context).to_dict(), "batch": 4, "threads": 2}
    assert tid == m.table_key.id and "batch4" in tid and "threads2" in tid and "float32" in tid
    assert set(table["ops"]) >= {CALL_KEY.id}
    # another batch, thread count or dtype is another table: nothing is reused across contexts
    for kw in ({"batch": 8}, {"threads": 1}, {"dtype": "bfloat16"}):
        other = LatencyModel("torch", **{"threads": 2, **kw}, measure_fn=Recorder())
        assert other.table_key.id != m.table_key.id
        assert other.known() == {}
    # the backend version is part of the key
    assert TableKey.of(m.context, version="0.0.1").id != m.table_key.id


def test_allocator_mode_keys_the_table(cache_dir, monkeypatch):
    from osc_design.latency import timing

    monkeypatch.delenv(timing.STEADY_MALLOC_ENV, raising=False)
    steady = timing.allocator_mode()
    if sys.platform.startswith("linux") and timing._glibc() is not None:
        assert steady == "glibc-steady"
        assert timing.steady_allocator() == "glibc-steady"  # and applying it works here
    monkeypatch.setenv(timing.STEADY_MALLOC_ENV, "0")
    assert timing.allocator_mode() == "system"
    system = fake_model()
    assert system.table_key.allocator == "system" and system.table_key.id.endswith("|system")
    monkeypatch.delenv(timing.STEADY_MALLOC_ENV)
    other = fake_model()
    assert other.table_key.allocator == steady
    if steady != "system":  # timings taken with and without the steady heap are never mixed
        predict(compare(TARGET, ["conv"])[0].spec, system)
        assert other.known() == {} and system.table_key.id != other.table_key.id


def _write(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)


@pytest.mark.parametrize("content, reason", [
    ("{not json", "not valid JSON"),
    (json.dumps({"format": "osc-design-latency-cache", "version": CACHE_VERSION + 1, "tables": {}}), "version"),
    (json.dumps({"format": "osc-design-latency-cache", "version": 0, "tables": {}}), "version"),
    (json.dumps({"format": "osc-design-latency-cache", "version": 1, "tables": {}}), "version 1"),
    (json.dumps([1, 2, 3]), "not an osc-design latency cache"),
    (json.dumps({"format": "osc-design-latency-cache", "version": CACHE_VERSION,
                 "tables": {"t": {"ops": {"x": {"op": {}, "median": "fast", "spread": 0, "runs": 1}}}}}),
     "malformed"),
])
def test_corrupt_or_stale_file_is_rebuilt_with_a_warning(cache_dir, content, reason):
    path = cache_dir / "latency.json"
    _write(path, content)
    with pytest.warns(CacheWarning, match=reason) as rec:
        cache = LatencyCache()
    assert "rebuilt" in str(rec[0].message) and str(path) in str(rec[0].message)
    data = json.loads(path.read_text())  # rebuilt at once, as a valid empty cache
    assert data == {"format": "osc-design-latency-cache", "version": CACHE_VERSION, "tables": {}}
    assert cache.tables() == []
    # and it works afterwards, without another warning
    m = fake_model(cache=cache)
    assert predict(compare(TARGET, ["conv"])[0].spec, m).measured == 2
    assert len(LatencyCache().table(m.table_key)) == 2


def test_file_corrupted_between_writes_is_rebuilt_on_write(cache_dir):
    m = fake_model()
    predict(compare(TARGET, ["conv"])[0].spec, m)
    (cache_dir / "latency.json").write_text('{"format": "osc-design-latency-cache", "vers')
    with pytest.warns(CacheWarning, match="not valid JSON"):
        m.cache.add(m.table_key, {conv_key(8, 8, 3, 5): Timing(1e-3, 0.0, 1)})
    assert list(LatencyCache().table(m.table_key)) == [conv_key(8, 8, 3, 5).id]


def test_a_cache_directory_that_cannot_be_locked_or_created_is_a_spec_error(cache_dir, tmp_path, monkeypatch):
    import filelock

    key, timings = TableKey("torch", "test", "cpu", "float32", 1, 1), {conv_key(8, 8, 3, 5): Timing(1e-3, 0.0, 1)}
    cache = LatencyCache()

    def refuse(self, *args, **kwargs):  # what an existing directory without write permission does
        raise PermissionError(13, "Permission denied", str(self.lock_file))

    monkeypatch.setattr(filelock.FileLock, "acquire", refuse)
    for write in (lambda: cache.add(key, timings), cache.clear):
        with pytest.raises(SpecError, match=rf"cannot lock a file in the latency cache directory {cache_dir} "
                                            r"\(.*Permission denied.*\); set OSC_DESIGN_CACHE_DIR"):
            write()
    monkeypatch.undo()
    (tmp_path / "plain").write_text("")
    with pytest.raises(SpecError, match=r"cannot create the latency cache directory .*plain.cache .*"
                                        "set OSC_DESIGN_CACHE_DIR"):
        LatencyCache(tmp_path / "plain" / "cache")  # the unreadable file is rebuilt: the directory is needed


_WRITER = textwrap.dedent("""
    import sys
    from osc_design.latency import LatencyCache, TableKey, Timing, conv_key
    from osc_design.latency.timing import Context
    tag, n = int(sys.argv[1]), int(sys.argv[2])
    cache = LatencyCache()
    key = TableKey.of(Context("torch", threads=1), version="test")
    for i in range(n):
        cache.add(key, {conv_key(8 + i, 8 * tag, 3, 5): Timing(1e-3 * tag, 0.0, 1)})
    print("done", flush=True)
""")


def _spawn(args: list[str], cache_dir: Path) -> subprocess.Popen:
    env = {**os.environ, "OSC_DESIGN_CACHE_DIR": str(cache_dir), "PYTHONPATH": str(ROOT)}
    return subprocess.Popen([sys.executable, "-c", _WRITER, *args], env=env, cwd=ROOT,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def test_two_processes_writing_at_once_lose_nothing(cache_dir):
    n = 40
    procs = [_spawn(["1", str(n)], cache_dir), _spawn(["2", str(n)], cache_dir)]
    for p in procs:
        out, err = p.communicate(timeout=60)
        assert p.returncode == 0, err
    cache = LatencyCache()
    ops = cache.table(TableKey.of(Context("torch", threads=1), version="test"))
    assert len(ops) == 2 * n  # every entry of both writers, none lost to a race
    assert {e["median"] for e in ops.values()} == {1e-3, 2e-3}
    assert not list(cache_dir.glob("*.tmp"))


def test_killed_writer_leaves_a_valid_file(cache_dir):
    p = _spawn(["3", "100000"], cache_dir)
    path = cache_dir / "latency.json"
    deadline = time.monotonic() + 30
    while not path.exists() and time.monotonic() < deadline:
        time.sleep(0.02)
    time.sleep(0.3)
    p.send_signal(signal.SIGKILL)
    p.communicate(timeout=30)
    data = json.loads(path.read_text())  # the old or the new file, never a torn one
    (table,) = data["tables"].values()
    assert len(table["ops"]) >= 1
    cache = LatencyCache()  # loads without a CacheWarning (pytest turns warnings into errors)
    assert cache.tables()
    cache.add(TableKey.of(Context("torch", threads=1), version="test"), {conv_key(4, 4, 1, 1): Timing(1.0, 0.0, 1)})
    assert not list(cache_dir.glob("*.tmp"))  # a killed writer's temporary file is cleaned up by the next one


def test_calibrate_interrupted_then_resumed(cache_dir):
    grid = [conv_key(c, c, k, s) for c in (8, 16) for k in (1, 3) for s in (4, 8)]
    seen: list[tuple[int, int, str, bool]] = []

    def stop_after_5(done, total, op, timing):
        seen.append((done, total, op.id, timing is None))
        if done == 5:
            raise KeyboardInterrupt

    first = Recorder()
    with pytest.raises(KeyboardInterrupt):
        calibrate("torch", batch=2, threads=1, grid=grid, progress=stop_after_5, measure_fn=first,
                  flush_every=3)
    total = len(grid) + 2  # + the call() overhead and the baseline conv
    assert [s[0] for s in seen] == [1, 2, 3, 4, 5] and seen[0][1] == total
    key = TableKey.of(Context("torch", batch=2, threads=1))
    done = LatencyCache().table(key)
    # everything measured before the interrupt (a whole round of ops) was written, in a valid file
    assert set(done) == set(first.calls) and len(done) >= 5
    rec = Recorder()
    report = calibrate("torch", batch=2, threads=1, grid=grid, measure_fn=rec)
    assert (report.skipped, report.measured, report.total) == (len(done), total - len(done), total)
    assert not set(rec.calls) & set(done)  # cached ops were not measured again
    assert len(LatencyCache().table(key)) == total


def test_standard_grid_covers_the_primitive_ops():
    grid = standard_grid()
    kinds = {k.kind for k in grid}
    assert kinds == {"conv2d", "channel_shuffle", "permute", "slice", "concat", "add", "shift"}
    classes = {k.group_class for k in grid if k.kind == "conv2d"}
    assert classes == {"dense", "depthwise", "grouped"}
    assert max(k.macs for k in grid) <= 400_000_000
    assert len({k.id for k in grid}) == len(grid)


# ------------------------------------------------------------------------------------------ keys
def test_op_keys_follow_the_spec_at_real_shapes():
    spec = compare(Target(16, 16, 3, stride=2, input_size=9), ["bsconv-s"])[0].spec
    keys = [k for _, k in op_keys(spec) if k is not None]
    assert [k.kind for k in keys] == ["conv2d"] * len(spec.convs)
    first = keys[0]
    assert (first["h"], first["w"]) == (9, 9)
    assert sum(k.macs for k in keys) == sum(c.macs for c in cost_by_node(spec).values())
    assert OpKey.from_dict(first.to_dict()) == first
    with pytest.raises(SpecError, match="input size"):
        op_keys(compare(Target(16, 16, 3), ["conv"])[0].spec)
    with pytest.raises(SpecError, match="unknown op kind"):
        OpKey("matmul", ())


# ------------------------------------------------------------------------------------- the model
def stated_design():
    """A conv, a batch norm of it and their sum, at 16 x 16."""
    b = GraphBuilder(Target(8, 8, 3, input_size=16))
    c = b.conv2d(b.input, 8, 3, padding=1, name="conv")
    return b.build(b.add([b.batch_norm(c, name="bn"), c], name="add"))


@pytest.mark.parametrize("backend, expected_us", [
    # eager: the call, then every op as in isolation: 20 + 400 + 70 + 60
    ("torch", 550.0),
    # one XLA program: the tiny conv's 50 (one dispatch and the thread pool's start, paid once), each conv's
    # time beyond it, each other op's time beyond one dispatch (the call's 20): 50 + 350 + 50 + 40
    ("jax", 490.0),
    # one session: the conv and the batch norm keep their input's shape, so their times are their cost inside a
    # graph (chain differences) and count whole; the add (two inputs) was timed alone and paid a call: 20 + 400
    # + 70 + 40
    ("onnxruntime", 530.0),
])
def test_prediction_composes_stated_op_times(cache_dir, backend, expected_us):
    spec = stated_design()
    keys = dict(op_keys(spec))
    stated_us = {CALL_KEY.id: 20.0, BASELINE_CONV_KEY.id: 50.0, keys["conv"].id: 400.0, keys["bn"].id: 70.0,
                 keys["add"].id: 60.0}
    p = predict(spec, fake_model(backend, measure_fn=lambda op, ctx: Timing(stated_us[op.id] * 1e-6, 1e-6, 5)))
    assert p.seconds == pytest.approx(expected_us * 1e-6, rel=1e-12)
    assert p.spread == pytest.approx(math.sqrt(len([o for o in p.ops if o.source != "free"])) * 1e-6)
    assert p.cached + p.measured + p.interpolated == sum(o.source != "free" for o in p.ops)


def test_onnxruntime_module_pays_its_edges_once(cache_dir):
    """A chained op's cost in a graph (``median``) and alone (``alone``): a one-op module is the op alone plus the
    call; a chain of ops pays half the first op's edges (alone - in graph) and half the last's. The ``alone``
    timings survive the cache file."""
    b = GraphBuilder(Target(8, 8, 3, input_size=16))
    dw = b.conv2d(b.input, 8, 3, padding=1, groups=8, name="dw")
    two = b.build(b.conv2d(dw, 8, 1, name="pw"))
    keys = dict(op_keys(two))
    # us: (in a graph, alone)
    stated = {CALL_KEY.id: (5.0, None), keys["dw"].id: (100.0, 180.0), keys["pw"].id: (300.0, 340.0)}

    def fn(op, ctx):
        t, alone = stated[op.id]
        return Timing(t * 1e-6, 0.0, 5, t * 1e-6, None if alone is None else alone * 1e-6)

    p = predict(two, fake_model("onnxruntime", measure_fn=fn))
    assert p.seconds == pytest.approx((5 + 100 + 300 + (80 + 40) / 2) * 1e-6, rel=1e-12)
    assert predicted(two, "onnxruntime") == pytest.approx(p.seconds, rel=1e-12)  # from the cache file
    one = GraphBuilder(Target(8, 8, 3, input_size=16))
    alone = one.build(one.conv2d(one.input, 8, 3, padding=1, groups=8, name="dw"))
    assert predicted(alone, "onnxruntime") == pytest.approx((5 + 180) * 1e-6, rel=1e-12)


@pytest.mark.parametrize("backend", requested_backends())
def test_prediction_is_near_the_measured_module(cache_dir, backend):
    """The sum of the per-op timings (as composed) against the whole module timed end to end: within 2x.

    The fastest call of each (``statistic="min"``), which a shared machine disturbs least; PyTorch on one
    thread (a busy core stalls a multi-threaded op at every call). A load spike can still spoil one
    attempt: up to three, each with its own cache.
    """
    spec = compare(Target(32, 32, 5, input_size=28), ["depthwise-separable"])[0].spec
    policy = TimingPolicy(warmup=3, min_runs=10, max_runs=60, budget_s=0.3)
    threads = 1 if backend == "torch" else None
    seen = []
    for attempt in range(3):
        model = LatencyModel(backend, batch=4, threads=threads, policy=policy, statistic="min",
                             cache=cache_dir / f"attempt{attempt}")
        p = predict(spec, model)
        m = measure(spec, backend, batch=4, threads=threads, policy=policy)
        assert p.measured == 3 + (backend == "jax")  # call(), two convs, for JAX the baseline conv
        seen.append(f"predicted {p.describe()}, measured {m.describe()}, fastest {m.best * 1e3:.3f} ms")
        if 0.5 < p.seconds / m.best < 2.0:
            break
    else:
        pytest.fail("; ".join(seen))


@pytest.mark.parametrize("backend", requested_backends())
def test_ops_are_timed_as_the_backend_builds_them(backend):
    """What measure_ops times for each key is the backend module's node, at the key's shapes."""
    from osc_design.backends import get_backend

    keys = [conv_key(8, 6, (3, 1), 9, groups=2, stride=2, dilation=(2, 1), bias=True),
            OpKey("batch_norm", (("channels", 6), ("h", 5), ("w", 7))),
            OpKey("channel_shuffle", (("channels", 6), ("groups", 3), ("h", 5), ("w", 7))),
            OpKey("permute", (("channels", 6), ("h", 5), ("w", 7))),
            OpKey("slice", (("in_channels", 6), ("width", 4), ("h", 5), ("w", 7))),
            OpKey("concat", (("parts", (2, 5, 3)), ("h", 5), ("w", 7))),
            OpKey("add", (("inputs", 3), ("channels", 6), ("h", 5), ("w", 7))),
            OpKey("shift", (("channels", 6), ("h", 5), ("w", 7)))]
    b = get_backend(backend)
    with b.timer("cpu", "float32", usable_cpus(), 2) as timer:
        for key in keys:
            out = timer.node_call(*key_spec(key))()
            c, (h, w) = key.out_elements // (key.out_size[0] * key.out_size[1]), key.out_size
            assert tuple(out.shape) == ((2, c, h, w) if b.layout == "NCHW" else (2, h, w, c)), key.id


def test_key_spec_holds_the_keyed_op():
    grid = standard_grid(channels=(32, 64), kernels=(3, 7), sizes=(7, 14)) + [
        conv_key(8, 6, (3, 1), 9, groups=2, stride=2, dilation=(2, 1), padding=(0, 2), bias=True),
        OpKey("batch_norm", (("channels", 6), ("h", 5), ("w", 7))),
        OpKey("concat", (("parts", (2, 5, 3)), ("h", 5), ("w", 7))),
        OpKey("add", (("inputs", 3), ("channels", 6), ("h", 5), ("w", 7)))]
    for key in grid:
        spec, node = key_spec(key)
        assert dict(op_keys(spec))[node] == key  # the node's own key, at its real shapes
    with pytest.raises(SpecError, match="call"):
        key_spec(CALL_KEY)


def test_provenance_measured_then_cached_then_interpolated(cache_dir):
    spec = compare(TARGET, ["depthwise-separable"])[0].spec
    rec = Recorder()
    first = predict(spec, fake_model(measure_fn=rec))
    assert (first.cached, first.measured, first.interpolated) == (0, 3, 0)
    again = predict(spec, fake_model(measure_fn=rec))  # a new model reads the cache file
    assert (again.cached, again.measured, again.interpolated) == (3, 0, 0)
    assert len(rec.calls) == 3 and again.seconds == first.seconds
    # another input size: unseen ops; the interpolating model estimates them from the table's convs
    other = compare(Target(32, 32, 5, input_size=12), ["depthwise-separable"])[0].spec
    inter = predict(other, fake_model(measure_fn=rec, on_miss="interpolate"))
    assert (inter.cached, inter.measured, inter.interpolated) == (1, 0, 2)
    assert len(rec.calls) == 3
    with pytest.raises(InfeasibleDesignError, match="on_miss"):
        predict(other, fake_model(measure_fn=rec, on_miss="error"))


def test_interpolation_is_exact_for_a_power_law_and_measures_unknown_kinds(cache_dir):
    def law(op: OpKey, ctx: Context) -> float:
        return 1e-9 * op.work ** 0.9 if op.kind != "call" else CALL_S

    grid = [conv_key(c, c, 3, s) for c in (16, 64, 256) for s in (7, 28)]
    calibrate("torch", threads=2, grid=grid, measure_fn=law)
    m = fake_model(on_miss="interpolate", measure_fn=law)
    for c, s in ((32, 14), (128, 10), (512, 28)):
        op = conv_key(c, c, 3, s)
        t, src = m.lookup(op)
        assert src == "interpolated"
        assert t.median == pytest.approx(law(op, m.context), rel=0.02)
    # no op of this kind in the table: measured instead of guessed
    shift = OpKey("shift", (("channels", 8), ("h", 4), ("w", 4)))
    assert m.lookup(shift)[1] == "measured"


def test_model_rejects_bad_arguments(cache_dir):
    with pytest.raises(SpecError, match="on_miss"):
        LatencyModel("torch", on_miss="guess")
    with pytest.raises(SpecError, match="device"):
        LatencyModel("torch", device="tpu")
    with pytest.raises(SpecError, match="batch"):
        LatencyModel("torch", batch=0)
    with pytest.raises(SpecError, match="dtype"):
        LatencyModel("torch", dtype="int8")
    with pytest.raises(SpecError, match="LatencyModel"):
        predict(compare(TARGET, ["conv"])[0].spec, "torch")
    with pytest.raises(SpecError, match="Timing or seconds"):
        predict(compare(TARGET, ["conv"])[0].spec, fake_model(measure_fn=lambda op, ctx: "fast"))


# --------------------------------------------------------------------------------- the objective
@functools.lru_cache(maxsize=None)
def independent_space(target: Target, max_stages: int | None = None) -> list:
    """The documented candidate space, rebuilt here: full-coverage family designs + the OSC Pareto front."""
    fam = [d.spec for d in compare(target) if d.coverage.full and (
        d.family == "conv" or max_stages is None or d.stages <= max_stages)]
    return fam + [s.spec for s in pareto_front(target, max_stages=max_stages)]


@pytest.mark.parametrize("backend", ["torch", "jax"])
@pytest.mark.parametrize("target, max_stages", [
    (TARGET, None),
    (Target(16, 24, 3, stride=2, input_size=9), None),
    (Target(32, 32, 7, input_size=10), 3),
])
def test_solve_latency_is_the_argmin_over_the_stated_space(cache_dir, backend, target, max_stages):
    rec = Recorder()
    sol = solve_latency(target, backend=backend, threads=2, max_stages=max_stages, measure_fn=rec)
    # every op of the space was timed once, up front (prefetch), and is reported as measured, not cached
    assert len(rec.calls) == len(set(rec.calls))
    assert set(rec.calls) == {op.id for c in sol.candidates for _, op in LatencyModel(backend, threads=2)._keys(c.spec)
                              if op is not None}
    assert sol.provenance["cached"] == 0 and sol.provenance["measured"] > 0
    space = independent_space(target, max_stages)
    assert [c.spec for c in sol.candidates] == space
    expected = min(predicted(s, backend) for s in space)
    assert sol.seconds == pytest.approx(expected, rel=1e-12)
    assert sol.coverage.full
    assert sol.seconds <= sol.conv.seconds and sol.speedup >= 1.0
    assert sol.conv.name == "conv" and sol.conv.spec.family == "conv"
    assert max_stages is None or all(c.stages <= max_stages or c.name == "conv" for c in sol.candidates)
    assert f"{len(space)} candidates" in sol.space and "Pareto" in sol.space
    assert {n for n, _ in sol.excluded} >= {d.family for d in compare(target) if not d.coverage.full}
    assert sum(sol.provenance.values()) > 0 and sol.name in sol.table()


def test_prefetch_times_each_missing_op_once_and_reports_progress(cache_dir, monkeypatch):
    monkeypatch.setattr(LatencyModel, "PREFETCH_CHUNK", 5)
    reports: list[tuple[int, int]] = []
    rec = Recorder()
    m = fake_model(measure_fn=rec, progress=lambda done, total: reports.append((done, total)))
    specs = [d.spec for d in compare(TARGET) if d.coverage.full]
    fresh = m.prefetch(specs)
    timed = list(rec.calls)
    assert len(rec.calls) == len(set(rec.calls)) == len(fresh) and CALL_KEY.id in fresh
    assert reports == [(0, len(timed))] + [(min(k, len(timed)), len(timed)) for k in range(5, len(timed) + 5, 5)]
    assert m.prefetch(specs) == frozenset() and len(reports) == 1 + math.ceil(len(timed) / 5)  # all cached now
    p = m.predict(specs[0], fresh=fresh)
    assert p.cached == 0 and p.measured == len(p.ops) - sum(o.source == "free" for o in p.ops)


def test_conv_is_always_a_candidate(cache_dir):
    sol = solve_latency(TARGET, families=["bsconv-u"], threads=2, measure_fn=Recorder())
    assert [c.name for c in sol.candidates if c.source == "family"] == ["conv", "bsconv-u"]
    cands, excluded = latency_candidates(TARGET, families=["bsconv-u"], pareto=False)
    assert [c.name for c in cands] == ["conv", "bsconv-u"] and excluded == []
    assert all(c.prediction is None for c in cands)


BUDGET_TARGET = Target(64, 64, 5, input_size=8)


@pytest.mark.parametrize("fraction", [0.28, 0.4, 0.6])
def test_budget_smallest_params_within_latency(cache_dir, fraction):
    target = BUDGET_TARGET
    sol = solve_with_budget(target, "params", latency_at_most=fraction, threads=2, measure_fn=Recorder())
    space = independent_space(target)
    conv = predicted(space[0])
    ok = [s for s in space if predicted(s) <= fraction * conv]
    assert sol.feasible == len(ok) and ok
    assert sol.cost.params == min(s_cost for s_cost in (cost_by_node_sum(s) for s in ok))
    assert sol.seconds <= fraction * sol.conv.seconds == pytest.approx(sol.budgets["latency_s"])
    assert sol.objective == "params"


def cost_by_node_sum(spec) -> int:
    return sum(c.params for c in cost_by_node(spec).values())


def test_budget_other_objectives_and_infeasible(cache_dir):
    target = BUDGET_TARGET
    space = independent_space(target)
    # fastest design within a params budget
    limit = 5_000
    sol = solve_with_budget(target, "latency", params_at_most=limit, threads=2, measure_fn=Recorder())
    ok = [s for s in space if cost_by_node_sum(s) <= limit]
    assert sol.cost.params <= limit
    assert sol.seconds == pytest.approx(min(predicted(s) for s in ok), rel=1e-12)
    # fewest MACs, no latency involved: no model is built, nothing is timed
    rec = Recorder()
    sol = solve_with_budget(target, "macs", params_at_most=limit, measure_fn=rec)
    assert sol.prediction is None and rec.calls == []
    assert sol.cost.macs == min(sum(c.macs for c in cost_by_node(s).values()) for s in ok)
    with pytest.raises(InfeasibleDesignError, match="fastest candidate"):
        solve_with_budget(target, "params", latency_at_most=0.2, threads=2, measure_fn=Recorder())
    with pytest.raises(InfeasibleDesignError, match="smallest candidate"):
        solve_with_budget(target, "params", params_at_most=10, measure_fn=Recorder())
    for kw in ({"minimise": "energy"}, {"latency_at_most": -1.0}, {"params_at_most": 1.5},
               {"macs_at_most": True}, {"max_stages": 0}):
        with pytest.raises(SpecError):
            solve_with_budget(target, **kw, measure_fn=Recorder())
    with pytest.raises(SpecError, match="input size"):
        solve_latency(Target(64, 64, 7), measure_fn=Recorder())


# ------------------------------------------------------------------------------------ timing
class FakeClock:
    """``perf_counter`` that advances only when the timed function runs (by the durations given)."""

    def __init__(self, durations: list[float]) -> None:
        self.now, self.durations = 0.0, list(durations)

    def perf_counter(self) -> float:
        return self.now

    def run(self) -> None:
        self.now += self.durations.pop(0)


def test_time_callable_median_spread_and_min(monkeypatch):
    from osc_design.latency import timing

    clock = FakeClock([9.0] + [3.0, 2.0, 1.5, 4.0, 100.0])  # one warm-up call, then 5 timed ones
    monkeypatch.setattr(timing, "time", clock)
    t = timing.time_callable(clock.run, TimingPolicy(warmup=1, min_runs=5, max_runs=5, budget_s=0.0))
    assert (t.median, t.spread, t.runs, t.best) == (3.0, 2.0, 5, 1.5)  # the warm-up is not timed; IQR 4 - 2
    assert (t.value("median"), t.value("min")) == (3.0, 1.5)
    # the budget: past min_runs, calls go on only while under budget_s
    clock = FakeClock([1.0] * 10)
    monkeypatch.setattr(timing, "time", clock)
    t = timing.time_callable(clock.run, TimingPolicy(warmup=0, min_runs=2, max_runs=10, budget_s=3.5))
    assert t.runs == 4
    for bad in ({"warmup": -1}, {"min_runs": 0}, {"max_runs": 2, "min_runs": 3}, {"budget_s": -1.0},
                {"budget_s": True}):
        with pytest.raises(SpecError):
            TimingPolicy(**bad)


def test_round_robin_rotates_and_times_every_callable_alike(monkeypatch):
    from osc_design.latency import timing

    class Clock:
        now = 0.0

        def perf_counter(self) -> float:
            return self.now

    clock, calls = Clock(), []
    monkeypatch.setattr(timing, "time", clock)

    def make(i: int, dt: float):
        def fn():
            calls.append(i)
            clock.now += dt
        return fn

    fns = [make(0, 1.0), make(1, 2.0), make(2, 4.0)]
    ts = timing.time_round_robin(fns, TimingPolicy(warmup=2, min_runs=3, max_runs=10, budget_s=0.0))
    assert calls[:6] == [0, 0, 1, 1, 2, 2]  # warm-up calls first, untimed
    rounds = [calls[6 + 3 * r: 9 + 3 * r] for r in range(3)]
    assert rounds == [[0, 1, 2], [1, 2, 0], [2, 0, 1]] and len(calls) == 15  # the order rotates
    assert [(t.median, t.runs, t.best) for t in ts] == [(1.0, 3, 1.0), (2.0, 3, 2.0), (4.0, 3, 4.0)]
    # the budget is per callable, of its own calls: a quick one keeps being sampled while slow ones run
    calls.clear()
    ts = timing.time_round_robin(fns, TimingPolicy(warmup=0, min_runs=1, max_runs=10, budget_s=7.0))
    assert [t.runs for t in ts] == [7, 4, 2] and calls[:3] == [0, 1, 2] and calls[-1] == 0
    ts = timing.time_round_robin(fns, TimingPolicy(warmup=0, min_runs=1, max_runs=3, budget_s=100.0))
    assert [t.runs for t in ts] == [3, 3, 3]


def test_model_statistic_min(cache_dir):
    class HalfBest(Recorder):
        def __call__(self, op, ctx):
            t = super().__call__(op, ctx)
            return Timing(t.median, t.spread, t.runs, 0.5 * t.median)

    spec = compare(TARGET, ["bsconv-s"])[0].spec
    med = predict(spec, fake_model(measure_fn=HalfBest()))
    low = predict(spec, fake_model(measure_fn=Recorder(), statistic="min"))  # from the cache: nothing measured
    assert low.cached == med.measured and low.seconds == pytest.approx(0.5 * med.seconds)
    entry = next(iter(LatencyCache().table(TableKey.of(low.context)).values()))
    assert entry["min"] == pytest.approx(0.5 * entry["median"])
    with pytest.raises(SpecError, match="statistic"):
        fake_model(statistic="mean")


# ------------------------------------------------------------------------------------ hygiene
def test_import_does_not_load_a_framework():
    code = ("import sys, osc_design.latency, osc_design.latency.objective; "
            "print(sorted(m for m in ('torch', 'jax', 'flax') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, check=True,
                         env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert out.stdout.strip() == "[]"


def test_refine_measures_the_best_predicted_distinct_designs(cache_dir, monkeypatch):
    """With ``refine=k`` the k best predicted distinct designs are measured; the fastest measured wins."""
    from osc_design.latency import objective
    from osc_design.latency.model import Measurement

    target = Target(64, 64, 5, input_size=14)
    seen: list[list[str]] = []

    def fake_measure_many(specs, backend, batch, **kw):
        seen.append([s.family for s in specs])
        # measured: the reverse of the predicted order (the model was wrong about these)
        return [Measurement(1e-3 * (len(specs) - i), 0.0, 5, Context(backend, batch=batch, threads=2))
                for i in range(len(specs))]

    monkeypatch.setattr(objective, "measure_many", fake_measure_many)
    base = solve_latency(target, model=fake_model(), verify="fast")
    assert base.measured == {} and base.measured_seconds is None
    ranked = sorted(base.candidates, key=lambda c: (c.seconds, c.cost.params))
    sol = solve_latency(target, model=fake_model(), verify="fast", refine=3)
    (families,) = seen
    assert len(families) == 3
    sigs = {c.name: tuple(o.id for _, o in op_keys(c.spec) if o is not None) for c in sol.candidates}
    distinct = list(dict.fromkeys(sigs[c.name] for c in ranked))[:3]
    # measured once per distinct op sequence, and every candidate with that sequence carries the measurement
    assert {sigs[n] for n in sol.measured} == set(distinct)
    assert all(sigs[n] in distinct for n in sol.measured)
    assert sigs[sol.name] == distinct[-1] and sol.measured_seconds == pytest.approx(1e-3)
    assert sol.prediction is not None and "measured" in sol.describe() and "meas ms" in sol.table()
    d = sol.to_dict()
    assert d["measured_seconds"] == pytest.approx(1e-3)
    assert sum(r["measured_seconds"] is not None for r in d["candidates"]) == len(sol.measured)
    for bad in (-1, 1.5, True):
        with pytest.raises(SpecError, match="refine"):
            solve_latency(target, model=fake_model(), verify="fast", refine=bad)


def test_smoke_real_timing_torch(cache_dir):
    pytest.importorskip("torch")
    from osc_design.latency import measure, measure_many

    spec = compare(Target(8, 8, 3, input_size=6), ["depthwise-separable"])[0].spec
    policy = TimingPolicy(warmup=1, min_runs=3, max_runs=3, budget_s=0.0)
    got = measure(spec, "torch", batch=2, threads=1, policy=policy)
    assert got.runs == 3 and 0 < got.seconds < 1 and got.spread >= 0
    p = predict(spec, LatencyModel("torch", batch=2, threads=1, policy=policy))
    assert p.measured == 3 and 0 < p.seconds < 1
    # round-robin: every design gets the same number of timed calls
    other = compare(Target(8, 8, 3, input_size=6), ["conv"])[0].spec
    a, b = measure_many([spec, other], "torch", batch=2, threads=1, policy=policy)
    assert a.runs == b.runs == 3 and 0 < a.seconds < 1 and 0 < b.seconds < 1
    sol = solve_latency(Target(8, 8, 3, input_size=6), batch=2, threads=1, refine=2, verify="fast",
                        model=LatencyModel("torch", batch=2, threads=1, policy=policy))
    assert len({id(m) for m in sol.measured.values()}) == 2 and sol.name in sol.measured
