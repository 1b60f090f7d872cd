"""Issue 14, items 4, 5 and 8 (solver and verifier): large targets answer exactly within the supported limits
and are refused beyond them; square kernels never pass off a design worse than the target conv as optimal;
the solver's public functions name a bad argument."""

from __future__ import annotations

import itertools
import subprocess
import sys
import tracemalloc

import pytest

from osc_design import GraphBuilder, InfeasibleDesignError, SpecError, Target, cost, coverage
from osc_design.compare import compare
from osc_design.coverage import MAX_CHANNELS, MAX_KERNEL, chain_coverage
from osc_design.solver import lower_bound, pareto_front, solve, stage_cap
from osc_design.solver.chain import Stage, build


def _cli(*args):
    return subprocess.run([sys.executable, "-m", "osc_design", *args], capture_output=True, text=True, timeout=120)


# -- item 5: large targets, supported limits ---------------------------------------------------------
def test_large_plausible_target_answers_with_exact_counts_in_linear_memory():
    c, k = 65536, 7
    tracemalloc.start()
    result = compare(Target(c, c, k, input_size=56))
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert peak < 400 * 2**20  # a C x C bit matrix alone would be 512 MiB
    by = {d.family: d for d in result.designs}
    assert by["conv"].cost.params == c * c * k * k and by["conv"].coverage.full
    assert by["grouped"].coverage.covered * 2 == by["grouped"].coverage.total  # two groups: half the channels
    assert by["depthwise-separable"].cost.params == c * k * k + c * c and by["depthwise-separable"].coverage.full
    assert by["osc"].coverage.full and by["osc-2"].coverage.full
    osc = by["osc"].spec
    assert chain_coverage(osc.target, osc.convs) == coverage(osc)


def test_large_plausible_target_on_the_command_line():
    r = _cli("--channels", "65536", "--kernel", "7")
    assert r.returncode == 0, r.stderr
    assert "210,453,397,504" in r.stdout  # 65536^2 * 49, uncut
    assert "(verified exactly)" in r.stdout


@pytest.mark.parametrize("field, ok, bad", [
    ("in_channels", lambda n: Target(n, 4, 3), lambda n: Target(n + 1, 4, 3)),
    ("out_channels", lambda n: Target(4, n, 3), lambda n: Target(4, n + 1, 3)),
])
def test_channel_limit_both_sides(field, ok, bad):
    b = GraphBuilder(ok(MAX_CHANNELS))
    spec = b.build(b.conv2d(b.input, b.target.out_channels, 3, padding=1, groups=4))
    assert coverage(spec).covered * 4 == coverage(spec).total  # four groups: a quarter of the channels
    b = GraphBuilder(bad(MAX_CHANNELS))
    spec = b.build(b.conv2d(b.input, b.target.out_channels, 3, padding=1))
    with pytest.raises(SpecError, match=f"`{field}` \\(={MAX_CHANNELS + 1}\\) exceeds the supported limit"):
        coverage(spec)
    with pytest.raises(SpecError, match=f"`{field}`"):
        solve(bad(MAX_CHANNELS))


def test_kernel_limit_both_sides():
    assert solve(Target(8, 8, (MAX_KERNEL, 3))).coverage.full
    with pytest.raises(SpecError, match="`kernel_size`"):
        solve(Target(8, 8, (3, MAX_KERNEL + 1)))
    b = GraphBuilder(Target(2, 2, MAX_KERNEL + 1))
    with pytest.raises(SpecError, match="`kernel_size`"):
        coverage(b.build(b.conv2d(b.input, 2, MAX_KERNEL + 1, padding=MAX_KERNEL // 2)))


@pytest.mark.parametrize("args, flag", [
    (("--channels", "99999999999999999999", "--kernel", "3"), "--channels"),
    (("--channels", str(MAX_CHANNELS + 1), "--kernel", "3"), "--channels"),
    (("solve", "-c", "8", "-k", str(MAX_KERNEL + 1)), "--kernel"),
])
def test_cli_refuses_beyond_the_limits_with_one_line(args, flag):
    r = _cli(*args)
    assert r.returncode == 2
    assert r.stderr.count("\n") == 1 and "Traceback" not in r.stderr and flag in r.stderr
    assert "supported limit" in r.stderr


# -- item 4: square kernels for a rectangular window --------------------------------------------------
def _square_brute_force(c, kh, kw, n_max, sizes=(9, 12)):
    """Cheapest chain of at most ``n_max`` square-kernel stages (shuffles as the solver builds them) whose
    output size equals the target's and that the exact verifier proves full; ``None`` if there is none."""
    target = Target(c, c, (kh, kw))
    want = [target.with_input_size(s).output_size for s in sizes]
    best = None
    groups = [g for g in range(1, c + 1) if c % g == 0]
    kernels = range(1, max(kh, kw) + 3)
    for n in range(1, n_max + 1):
        for ks in itertools.product(kernels, repeat=n):
            for pads in itertools.product(*[range(k) for k in ks]):
                got = []
                for s in sizes:
                    h, w = s, s
                    for k, p in zip(ks, pads, strict=True):
                        h, w = h + 2 * p - k + 1, w + 2 * p - k + 1
                    got.append((h, w))
                if got != want:
                    continue
                for gs in itertools.product(groups, repeat=n):
                    stages = [Stage(c, c, g, (k, k), padding=(p, p)) for g, k, p in zip(gs, ks, pads, strict=True)]
                    params = sum(st.params for st in stages)
                    if best is not None and params >= best:
                        continue
                    if coverage(build(target, stages, "osc", {})).full:
                        best = params
    return best


@pytest.mark.parametrize("c, kh, kw, n_max", [(4, 3, 1, 1), (4, 3, 1, 2), (2, 5, 3, 1), (2, 5, 3, 2), (6, 1, 3, 2),
                                              (3, 3, 5, 2), (4, 7, 5, 1)])
def test_square_only_equals_brute_force_or_is_refused(c, kh, kw, n_max):
    best = _square_brute_force(c, kh, kw, n_max)
    own = c * c * kh * kw
    target = Target(c, c, (kh, kw))
    if best is None or best > own:
        with pytest.raises(InfeasibleDesignError):
            solve(target, square_only=True, max_stages=n_max)
        return
    sol = solve(target, square_only=True, max_stages=n_max)
    assert sol.cost.params == best == sol.certificate.value
    assert sol.certificate.bound <= best and sol.coverage.full
    assert sol.cost.params <= own


def test_square_only_single_stage_7x5_is_refused_on_the_command_line():
    r = _cli("solve", "-c", "64", "-k", "7x5", "--square-only", "--max-stages", "1")
    assert r.returncode == 1 and r.stdout == ""
    assert r.stderr.count("\n") == 1 and "more than the 7x5 target conv itself (143,360)" in r.stderr
    sol = solve(Target(64, 64, (7, 5)), square_only=True, max_stages=2)  # two square stages do beat it
    assert sol.cost.params < 64 * 64 * 35 and sol.coverage.full
    assert all(s.cost.params <= 64 * 64 * 35 for s in pareto_front(Target(64, 64, (7, 5)), square_only=True,
                                                                    max_stages=3))


# -- item 8: the solver's public functions name a bad argument ---------------------------------------
def _spec():
    b = GraphBuilder(Target(4, 4, 3))
    return b.build(b.conv2d(b.input, 4, 3, padding=1))


@pytest.mark.parametrize("fn", [solve, pareto_front, lower_bound, stage_cap])
@pytest.mark.parametrize("bad", [{"in_channels": 4}, "64", None, 3.0, "spec"])
def test_bad_target_is_named(fn, bad):
    value = _spec() if bad == "spec" else bad
    with pytest.raises(SpecError, match="`target`") as exc:
        fn(value)
    assert repr(value)[:20] in str(exc.value)


@pytest.mark.parametrize("fn, kwargs, name", [
    (solve, {"max_stages": 2.0}, "max_stages"), (pareto_front, {"max_stages": "2"}, "max_stages"),
    (lower_bound, {"n_max": 2.0}, "n_max"), (lower_bound, {"n_min": 0}, "n_min"),
    (lower_bound, {"min_coverage": "1"}, "min_coverage"), (lower_bound, {"objective": ["params"]}, "objective"),
    (lower_bound, {"square_only": 1}, "square_only"), (stage_cap, {"dilation": 1}, "dilation"),
    (solve, {"objective": {"params": 1}}, "objective"), (solve, {"verify": ["full"]}, "verify"),
    (solve, {"widths": {"a": 1}}, "widths"), (solve, {"square_only": "yes"}, "square_only"),
])
def test_bad_option_is_named(fn, kwargs, name):
    with pytest.raises(SpecError, match=f"`{name}`"):
        fn(Target(8, 8, 3), **kwargs)


def test_checked_arguments_still_solve():
    assert solve(Target(8, 8, 3), widths=[8]).cost.params == cost(solve(Target(8, 8, 3), widths=(8,)).spec).params
    assert stage_cap(Target(8, 8, 3), dilation=True) >= stage_cap(Target(8, 8, 3))
    assert lower_bound(Target(8, 8, 3), n_min=2, n_max=2) <= solve(Target(8, 8, 3), max_stages=2).cost.params
