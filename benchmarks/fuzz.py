"""Fuzz every format osc-design reads, and its command line, with thousands of random cases (hypothesis);
print the cases per format, the outcomes by exit code, and every failure (a traceback, an exception, a
multi-line error, another exit code, a file left behind by a failed ``-o``).

Run: python benchmarks/fuzz.py [cases per format, default 1000] [--seed N]

Formats: layer specs (``load``, ``export FILE -o``, a few ``verify FILE``), network descriptions
(``load_network``, ``network --from FILE``), the latency cache (``LatencyCache``, and a few CLI runs over a
mutated real cache: these time ops), command lines. Plans are not read by this version (no ``load_plan``).
Exit status: 0 when no case failed, 1 otherwise.
"""

from __future__ import annotations

import argparse
import collections
import os
import sys
import tempfile
import time
import warnings
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from hypothesis import HealthCheck, Phase, given, seed, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

from tests.fuzz import cases  # noqa: E402


failed_inputs: list = []


def _drive(strategy, n: int, run, tally: list, seed_value: int) -> None:
    @seed(seed_value)
    @settings(max_examples=n, database=None, deadline=None, phases=[Phase.generate], derandomize=False,
              suppress_health_check=list(HealthCheck))
    @given(case=strategy)
    def body(case):
        result = run(case)
        for outcome in result if isinstance(result, list) else [result]:
            tally.append(outcome)
            if outcome.failed:
                failed_inputs.append((outcome, case))

    body()


def _seeded_cache() -> Path:
    """A cache directory filled by one real run of the command the cache cases use."""
    directory = Path(tempfile.mkdtemp(prefix="osc-fuzz-cache-"))
    cases.cli_outcome("cache:seed", ["-c", "8", "-k", "3", "-i", "8", "--backend", "torch", "-f", "json"],
                      env={"OSC_DESIGN_CACHE_DIR": str(directory)})
    return directory


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("cases", nargs="?", type=int, default=1000, help="cases per format")
    parser.add_argument("--seed", type=int, default=int(time.time()) % 100_000)
    parser.add_argument("--cache-cli", type=int, default=12, help="CLI runs over a mutated real cache (slow)")
    parser.add_argument("--verify", type=int, default=50, help="verify runs over mutated specs")
    ns = parser.parse_args()
    os.environ.setdefault("OSC_DESIGN_CACHE_DIR", tempfile.mkdtemp(prefix="osc-fuzz-"))
    warnings.simplefilter("ignore")
    n = ns.cases
    specs = st.sampled_from(cases.spec_seeds()).flatmap(cases.mutated_bytes)
    real = _seeded_cache()
    plan = [
        ("spec files", specs, cases.spec_case, n),
        ("spec files (verify)", specs, cases.spec_verify_case, ns.verify),
        ("network descriptions", cases.mutated_bytes(cases.network_seed()), cases.network_case, n),
        ("latency cache", cases.mutated_bytes(cases.cache_seed()), cases.cache_case, n),
        ("latency cache (CLI)", cases.mutated_bytes(cases.parse_seed(real / "latency.json")),
         lambda data: cases.cache_cli_case(data, real), ns.cache_cli),
        ("command lines", cases.command_lines(), cases.cli_case, n),
    ]
    tally: list[cases.Outcome] = []
    print(f"osc-design fuzz: seed {ns.seed}, {n} cases per format")
    for name, strategy, run, count in plan:
        t0, before = time.perf_counter(), len(tally)
        _drive(strategy, count, run, tally, ns.seed)
        print(f"  {name}: {count} cases, {len(tally) - before} outcomes in {time.perf_counter() - t0:.1f} s")
    by_fmt: dict[str, collections.Counter] = collections.defaultdict(collections.Counter)
    for o in tally:
        by_fmt[o.fmt][(o.kind, o.code)] += 1
    print(f"{'format':<16}{'runs':>7}  outcomes (kind/exit code: count)")
    for fmt, counter in sorted(by_fmt.items()):
        parts = ", ".join(f"{k}/{c}: {v}" for (k, c), v in sorted(counter.items()))
        print(f"{fmt:<16}{sum(counter.values()):>7}  {parts}")
    failures = [o for o in tally if o.failed]
    tracebacks = sum("Traceback" in o.detail or "traceback" in o.detail for o in failures)
    print(f"total {len(tally)} runs, {len(failures)} failures, {tracebacks} tracebacks")
    for o, case in failed_inputs[:40]:
        shown = repr(case)
        more = "..." if len(shown) > 300 else ""
        print(f"  FAIL {o.fmt} exit {o.code}: {o.detail}\n      input: {shown[:300]}{more}")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
