"""Fuzz cases over everything osc-design reads: layer specs, network descriptions, the latency cache and the
command line; shared by ``tests/fuzz/test_fuzz.py`` (a few hundred cases, derandomized) and
``benchmarks/fuzz.py`` (thousands).

A case is a file's bytes or an argument list; running it gives an :class:`Outcome`. The rule every case must
keep: it ends with exit 0, or with a one-line error (``Error: ...`` on stderr, exit 1 or 2; from the library,
an :class:`~osc_design.errors.OscDesignError` whose message is one line); no other exception, no traceback,
and a failed ``-o FILE`` leaves neither the file nor a temporary file behind. A corrupt latency cache is
rebuilt with one :class:`~osc_design.latency.cache.CacheWarning`, never an error.

Plans (``plan.json``) are written but not read by this version (no ``load_plan`` yet), so they are not fuzzed.
"""

from __future__ import annotations

import copy
import json
import os
import tempfile
import traceback
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from hypothesis import strategies as st

from osc_design.errors import OscDesignError

FAIL = "FAIL"


@dataclass(frozen=True)
class Outcome:
    """How one case ended: ``kind`` is ``ok``, ``error`` (one line, exit 1 or 2), ``rebuilt`` (a cache,
    with its warning) or :data:`FAIL`; ``code`` the exit code (library calls: 0 ok, 1 error)."""

    fmt: str
    kind: str
    code: int
    detail: str = ""

    @property
    def failed(self) -> bool:
        return self.kind == FAIL


# -- JSON text with what json.dumps cannot write: bare tokens and repeated fields ------------------------
class Raw(str):
    """Text put into the document as it is: ``NaN``, ``1e999``, a 5000-digit integer, deep nesting."""


class Pairs(list):
    """A JSON object written from its ``(key, value)`` pairs, so a key can occur twice."""


def render(value: Any) -> str:
    if isinstance(value, Raw):
        return str(value)
    if isinstance(value, (dict, Pairs)):
        items = value.items() if isinstance(value, dict) else value
        return "{" + ", ".join(f"{json.dumps(k)}: {render(v)}" for k, v in items) + "}"
    if isinstance(value, list):
        return "[" + ", ".join(render(v) for v in value) + "]"
    return json.dumps(value)


# -- values a mutation puts in ----------------------------------------------------------------------------
NASTY_NUMBERS = [0, -1, -7, 1, 2, 2**31, 2**63, 2**64 + 1, 10**20, 99999999999999999999, -(10**20), 1.5, -0.0,
                 1e308, 3.0, Raw("1e999"), Raw("-1e999"), Raw("NaN"), Raw("Infinity"), Raw("-Infinity"),
                 Raw("1" * 5000), Raw("1" * 4000), True, False, None]
NASTY_STRINGS = ["", " ", "x", "conv2d", "input", "osc-design.layer", "osc-design.network", "é\u00e9\u4e2d",
                 "\x00", "a" * 2000, Raw('"\\ud800"'), Raw('"\\udfff x"'), Raw('"\\ud83d\\ude00"'), "../../etc/passwd",
                 "[bold]x[/bold]", "\n"]
DEPTHS = [2, 30, 500, 990, 3000, 100_000]


def nested(depth: int, kind: str) -> Raw:
    return Raw(("[" * depth + "1" + "]" * depth) if kind == "list" else ('{"a": ' * depth + "1" + "}" * depth))


def values(depth: int = 0) -> st.SearchStrategy[Any]:
    """Any value of any JSON type, nasty numbers and strings included."""
    scalars = st.one_of(st.sampled_from(NASTY_NUMBERS), st.integers(-(10**6), 10**6), st.sampled_from(NASTY_STRINGS),
                        st.floats(allow_nan=False, allow_infinity=False), st.text(max_size=8))
    if depth >= 2:
        return scalars
    return st.one_of(scalars, st.lists(values(depth + 1), max_size=4),
                     st.dictionaries(st.text(max_size=6), values(depth + 1), max_size=3),
                     st.builds(nested, st.sampled_from(DEPTHS), st.sampled_from(["list", "dict"])))


# -- mutations of a valid document ------------------------------------------------------------------------
def _paths(value: Any, here: tuple = ()) -> list[tuple]:
    out = [here]
    if isinstance(value, dict):
        for k, v in value.items():
            out += _paths(v, (*here, k))
    elif isinstance(value, list) and not isinstance(value, Pairs):
        for i, v in enumerate(value):
            out += _paths(v, (*here, i))
    return out


def _at(doc: Any, path: tuple) -> Any:
    for key in path:
        doc = doc[key]
    return doc


MUTATIONS = ["delete", "duplicate", "retype", "number", "string", "nest", "unknown", "empty"]


@st.composite
def mutated_doc(draw: Any, seed: Any) -> Any:
    """``seed`` (a parsed document) with one to three mutations: a field or item deleted, a field written
    twice, a value replaced by another type, a huge or negative number, NaN, Infinity, a nasty string,
    deep nesting, an unknown field, an empty container."""
    doc = copy.deepcopy(seed)
    for _ in range(draw(st.integers(1, 3))):
        paths = _paths(doc)
        path = draw(st.sampled_from(paths))
        how = draw(st.sampled_from(MUTATIONS))
        if not path:  # the root: replace it, or leave it
            if how in ("retype", "nest", "number", "string"):
                doc = draw(values())
            continue
        parent, key = _at(doc, path[:-1]), path[-1]
        if how == "delete":
            del parent[key]
        elif how == "duplicate" and isinstance(parent, dict):
            again = draw(st.one_of(st.just(parent[key]), values()))
            pairs = Pairs(parent.items())
            pairs.insert(draw(st.integers(0, len(pairs))), (key, again))
            if len(path) == 1:
                doc = pairs
            else:
                _at(doc, path[:-2])[path[-2]] = pairs
        elif how == "number":
            parent[key] = draw(st.sampled_from(NASTY_NUMBERS))
        elif how == "string":
            parent[key] = draw(st.sampled_from(NASTY_STRINGS))
        elif how == "nest":
            parent[key] = nested(draw(st.sampled_from(DEPTHS)), draw(st.sampled_from(["list", "dict"])))
        elif how == "unknown" and isinstance(parent, dict):
            parent[draw(st.sampled_from(["zzz", "", "format", "__proto__", "id"]))] = draw(values())
        elif how == "empty":
            parent[key] = draw(st.sampled_from([[], {}, "", Raw("[[]]")]))
        else:
            parent[key] = draw(values())
    return doc


@st.composite
def mutated_bytes(draw: Any, seed: Any) -> bytes:
    """The bytes of a mutated ``seed`` document, sometimes damaged as bytes: not UTF-8 (a stray byte,
    Latin-1, UTF-16), a byte-order mark, cut short, or not JSON at all."""
    if draw(st.integers(0, 9)) == 0:
        return draw(st.sampled_from([b"", b" ", b"null", b"[]", b"{}", b"0", b'"x"', b"\xff\xfe\x00\x00", b"\x00" * 9,
                                     b"{" * 50_000, b"[" * 200_000]))
    text = render(draw(mutated_doc(seed)) if draw(st.integers(0, 5)) else seed)
    data = text.encode("utf-8", "surrogatepass")
    damage = draw(st.sampled_from(["none"] * 6 + ["stray", "latin1", "utf16", "bom", "cut"]))
    if damage == "stray":
        at = draw(st.integers(0, len(data)))
        data = data[:at] + draw(st.sampled_from([b"\xff", b"\xc3", b"\xed\xa0\x80", b"\x80\x80"])) + data[at:]
    elif damage == "latin1":
        data = text.replace('"', '"\u00e9', 1).encode("latin-1", "replace")
    elif damage == "utf16":
        data = text.encode("utf-16", "surrogatepass")
    elif damage == "bom":
        data = b"\xef\xbb\xbf" + data
    elif damage == "cut":
        data = data[: draw(st.integers(0, max(0, len(data) - 1)))]
    return data


# -- seeds: valid documents -------------------------------------------------------------------------------
def spec_seeds() -> list[dict[str, Any]]:
    """The documents of every design ``compare`` gives for an 8->8 3x3 conv on 8x8 (every family)."""
    import osc_design as od
    from osc_design.serialize import to_dict

    return [to_dict(d.spec) for d in od.compare(od.Target(8, 8, 3, input_size=(8, 8))).designs]


def network_seed() -> dict[str, Any]:
    """A valid description: the first three convs of cifar-resnet20 (one with a keep reason)."""
    from osc_design.networks.catalog import catalog_layers
    from osc_design.networks.description import layers_to_dict

    doc = layers_to_dict("tiny", catalog_layers("cifar-resnet20")[:3], (3, 32, 32))
    doc["layers"][0]["keep_reason"] = "stem"
    doc["layers"][1]["pre_padding"] = [1, 0, 0, 1]
    return doc


def cache_keys() -> tuple[Any, list[Any]]:
    """The table key and op keys of :func:`cache_seed`."""
    from osc_design.latency.cache import TableKey
    from osc_design.latency.opkeys import CALL_KEY, conv_key

    key = TableKey("torch", "2.0", "cpu", "float32", 8, 2, "system")
    return key, [CALL_KEY, conv_key(8, 8, 3, 8), conv_key(8, 8, 1, 8, groups=8)]


def cache_seed() -> dict[str, Any]:
    """A valid cache file's document: one table of three timings."""
    from osc_design.latency.cache import CACHE_FORMAT, CACHE_VERSION

    key, ops = cache_keys()
    entries = {op.id: {"op": op.to_dict(), "median": 1e-5 * (i + 1), "spread": 1e-6, "runs": 20,
                       "min": 9e-6 if i else None, "time": "2026-01-01T00:00:00+00:00"} for i, op in enumerate(ops)}
    return {"format": CACHE_FORMAT, "version": CACHE_VERSION,
            "tables": {key.id: {"context": key.to_dict(), "ops": entries}}}


# -- running a case ---------------------------------------------------------------------------------------
def _one_line(message: str) -> bool:
    return bool(message.strip()) and "\n" not in message.strip() and "Traceback" not in message


def library_outcome(fmt: str, call: Any) -> Outcome:
    """Run ``call()``: ``ok``; ``error`` for a one-line OscDesignError; :data:`FAIL` for anything else."""
    try:
        call()
    except OscDesignError as e:
        if _one_line(str(e)):
            return Outcome(fmt, "error", 1)
        return Outcome(fmt, FAIL, 1, f"multi-line {type(e).__name__}: {e!r}")
    except Exception as e:  # the fuzzing is looking for exactly these
        return Outcome(fmt, FAIL, 1, f"{type(e).__name__}: {_last_frame(e)}: {str(e)[:200]}")
    return Outcome(fmt, "ok", 0)


def _last_frame(exc: BaseException) -> str:
    frames = traceback.extract_tb(exc.__traceback__)
    ours = [f for f in frames if "osc_design" in f.filename] or frames
    return f"{Path(ours[-1].filename).name}:{ours[-1].lineno}" if ours else "?"


def cli_outcome(fmt: str, args: list[str], output: Path | None = None, env: dict[str, str] | None = None,
                codes: tuple[int, ...] = (1, 2)) -> Outcome:
    """Run ``osc-design ARGS`` in-process (``typer.testing.CliRunner``, stderr apart) and classify it;
    with ``output`` (the ``-o`` path in ``args``), a failed run must leave no file and no temporary file.
    ``codes``: the exit codes a failure may have (``(2,)`` where the only way to fail is invalid input)."""
    from typer.testing import CliRunner

    from osc_design.cli import app

    with warnings.catch_warnings():
        warnings.simplefilter("default")  # a rebuilt cache warns; the test suite turns warnings into errors
        result = CliRunner(env=env).invoke(app, args)
    exc, code, err = result.exception, result.exit_code, result.stderr
    if exc is not None and not isinstance(exc, SystemExit):
        return Outcome(fmt, FAIL, code, f"{type(exc).__name__}: {_last_frame(exc)}: {str(exc)[:200]}")
    if "Traceback" in err or "Traceback" in result.stdout:
        return Outcome(fmt, FAIL, code, "traceback: " + err[-300:])
    if "internal error" in err:  # the CLI's last-resort line for a bug: still a failure of the product
        return Outcome(fmt, FAIL, code, err[-300:])
    if code not in (0, *codes):
        return Outcome(fmt, FAIL, code, f"exit code {code}: {err[-200:]}")
    if code and not (_one_line(err) and err.startswith("Error: ")):
        return Outcome(fmt, FAIL, code, f"not one error line: {err[:300]!r}")
    if code and output is not None:
        left = [p.name for p in output.parent.iterdir() if p.name == output.name or p.name.endswith(".tmp")]
        if left:
            return Outcome(fmt, FAIL, code, f"failed run left {left}")
    return Outcome(fmt, "ok" if code == 0 else "error", code)


def in_temp_file(data: bytes, run: Any, name: str = "doc.json") -> Outcome:
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / name
        path.write_bytes(data)
        return run(path, Path(tmp))


def spec_case(data: bytes) -> list[Outcome]:
    """A spec file through ``load`` and through ``osc-design export FILE -o OUT``."""
    from osc_design.serialize import load

    def run(path: Path, tmp: Path) -> list[Outcome]:
        out = tmp / "out" / "module.py"
        out.parent.mkdir()
        return [library_outcome("spec:load", lambda: load(path)),
                cli_outcome("spec:export", ["export", str(path), "--to", "torch", "-o", str(out)], out, codes=(2,))]

    return in_temp_file(data, run)  # type: ignore[return-value]


def spec_verify_case(data: bytes) -> Outcome:
    """A spec file through ``osc-design verify FILE -f json -o OUT`` (a numeric check: few cases)."""
    def run(path: Path, tmp: Path) -> Outcome:
        out = tmp / "out" / "report.json"
        out.parent.mkdir()
        return cli_outcome("spec:verify", ["verify", str(path), "-f", "json", "-o", str(out)], out)

    return in_temp_file(data, run)


def network_case(data: bytes, cli: bool = True) -> list[Outcome]:
    """A network description through ``load_network`` and ``osc-design network --from FILE -f json -o OUT``."""
    from osc_design.networks.description import load_network

    def run(path: Path, tmp: Path) -> list[Outcome]:
        outcomes = [library_outcome("network:load", lambda: load_network(path))]
        if cli and outcomes[0].kind == "ok" or cli == "always":
            out = tmp / "out" / "plan.json"
            out.parent.mkdir()
            outcomes.append(cli_outcome("network:cli", ["network", "--from", str(path), "-f", "json", "-o", str(out)],
                                        out))
        return outcomes

    return in_temp_file(data, run)  # type: ignore[return-value]


def cache_case(data: bytes) -> Outcome:
    """A cache file read by :class:`LatencyCache`: loaded (every seed timing readable), or rebuilt with one
    one-line :class:`CacheWarning` into a valid cache; then a timing added and read back."""
    from osc_design.latency.cache import CacheWarning, LatencyCache
    from osc_design.latency.timing import Timing

    def run(path: Path, tmp: Path) -> Outcome:
        key, ops = cache_keys()
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            outcome = library_outcome("cache", lambda: _use_cache(LatencyCache(tmp), key, ops, Timing))
            if outcome.failed:
                return outcome
            try:
                LatencyCache(tmp)  # the file is valid now
            except Exception as e:
                return Outcome("cache", FAIL, 1, f"after the first read: {type(e).__name__}: {e}")
        bad = [w for w in caught if not issubclass(w.category, CacheWarning) or not _one_line(str(w.message))]
        if bad or len(caught) > 1:
            return Outcome("cache", FAIL, 1, f"warnings: {[str(w.message)[:200] for w in caught]}")
        return Outcome("cache", "rebuilt" if caught else outcome.kind, outcome.code)

    return in_temp_file(data, run, "latency.json")


def _use_cache(cache: Any, key: Any, ops: list[Any], timing: Any) -> None:
    for op in ops:
        cache.get(key, op)
    cache.table(key)
    cache.tables()
    cache.add(key, {ops[0]: timing(1e-5, 1e-6, 10, 9e-6)})
    if cache.get(key, ops[0]) is None:
        raise AssertionError("an added timing is not read back")


def cache_cli_case(data: bytes, seeded: Path) -> Outcome:
    """A mutated copy of a real cache (``seeded``: a directory the CLI filled) read by
    ``osc-design -c 8 -k 3 -i 8 --backend torch -f json``."""
    with tempfile.TemporaryDirectory() as tmp:
        (Path(tmp) / "latency.json").write_bytes(data)
        return cli_outcome("cache:cli", ["-c", "8", "-k", "3", "-i", "8", "--backend", "torch", "-f", "json"],
                           env={"OSC_DESIGN_CACHE_DIR": tmp})


# -- command lines ----------------------------------------------------------------------------------------
NUMBERS = ["0", "-1", "1", "3", "8", "16", "abc", "", "8.5", "1e3", "0x3", "99999999999999999999", "-0", "+4", " 8",
           "٣", "NaN", "inf"]
PAIRS = ["3", "7x5", "7x", "x5", "0x3", "3x0", "1x1", "3X3", "3x3x3", "-3", "3 x 3", "99999999999999999999",
         "99999999999999999999x3", "", "x", "٣", "3x-1", "5x3"]
FRACTIONS = ["0.5", "1", "0", "-0.1", "2", "nan", "inf", "abc", "1e-300", ""]
WORDS = ["osc", "bogus", "", "--channels", "-c", "torch", "json", "OSC", "osc,bogus", "-", "p=0.5", "p=abc", "q=1"]

FLAG_VALUES: dict[str, list[str]] = {
    "--channels": NUMBERS, "-c": NUMBERS, "--in-channels": NUMBERS, "--out-channels": NUMBERS, "--kernel": PAIRS,
    "-k": PAIRS, "--stride": PAIRS, "-s": PAIRS, "--input-size": PAIRS, "-i": PAIRS, "--max-stages": NUMBERS,
    "--objective": ["params", "macs", "macs-valid", "latency", "nope", "macs_valid", ""],
    "--format": ["table", "json", "csv", "xml", ""], "-f": ["table", "json", "csv", "JSON"],
    "--device": ["cpu", "cuda", "tpu"], "--batch": NUMBERS, "--refine": NUMBERS, "--backend": ["tf", "", "none", "all"],
    "--policy": WORDS, "--option": WORDS, "--budget-params": FRACTIONS, "--budget-macs": FRACTIONS,
    "--budget-latency": FRACTIONS, "--families": WORDS, "--kernels": ["3", "3,5", "0", "3,,5", "abc", "-3", ""],
    "--to": ["torch", "jax", "onnx", ""], "--class-name": ["OscDesign", "", "1bad", "class", "a-b", "X" * 300],
}
BOOL_FLAGS = ["--square-only", "--dilation", "--no-dilation", "--pareto", "--version", "--bogus", "-x", "--",
              "--help"]
COMMANDS = [[], ["compare"], ["solve"], ["network"], ["network", "cifar-resnet20"], ["network", "nope"], ["sweep"],
            ["plot", "scaling"], ["plot", "pareto"], ["plot", "nope"], ["verify"], ["export"], ["calibrate"], ["nope"]]
SLOW = {"calibrate"}
"""Commands that time ops when their arguments are valid: fuzzed only with a flag that must be refused."""


BASES = [["-c", "8", "-k", "3", "-i", "8"], ["compare", "-c", "8", "-k", "5x3", "-f", "json"],
         ["solve", "-c", "8", "-k", "7", "--max-stages", "2"], ["solve", "--in-channels", "4", "--out-channels", "8",
                                                                "-k", "3", "--pareto", "-f", "csv"],
         ["network", "cifar-resnet20", "--policy", "osc-2", "-f", "json"],
         ["network", "cifar-resnet20", "--budget-params", "0.5", "-f", "csv"], ["sweep", "-c", "8,16", "-k", "3"],
         ["plot", "scaling", "-c", "8", "-k", "3"], ["-c", "8", "-k", "3", "-s", "2", "--objective", "macs"]]


@st.composite
def near_valid_lines(draw: Any) -> list[str]:
    """A valid command line with one or two flags' values replaced by nasty ones, a flag dropped,
    repeated or added."""
    args = list(draw(st.sampled_from(BASES)))
    for _ in range(draw(st.integers(1, 2))):
        spots = [i for i, a in enumerate(args) if a in FLAG_VALUES and i + 1 < len(args)]
        how = draw(st.sampled_from(["value", "value", "drop", "repeat", "add"]))
        if how == "value" and spots:
            i = draw(st.sampled_from(spots))
            args[i + 1] = draw(st.sampled_from(FLAG_VALUES[args[i]]))
        elif how == "drop" and len(args) > 1:
            del args[draw(st.integers(0, len(args) - 1))]
        elif how == "repeat" and spots:
            i = draw(st.sampled_from(spots))
            args += [args[i], draw(st.sampled_from(FLAG_VALUES[args[i]]))]
        else:
            flag = draw(st.sampled_from(sorted(FLAG_VALUES) + BOOL_FLAGS))
            args += [flag] + ([draw(st.sampled_from(FLAG_VALUES[flag]))] if flag in FLAG_VALUES else [])
    return args


@st.composite
def random_lines(draw: Any) -> list[str]:
    """A command and up to six flags of the real CLI, each with a value that is valid, out of range,
    not a number, a flag itself, or missing; flags repeated and unknown flags too."""
    args = list(draw(st.sampled_from(COMMANDS)))
    flags = sorted(FLAG_VALUES)
    for _ in range(draw(st.integers(0, 6))):
        if draw(st.integers(0, 4)) == 0:
            args.append(draw(st.sampled_from(BOOL_FLAGS)))
            continue
        flag = draw(st.sampled_from(flags))
        args.append(flag)
        if draw(st.integers(0, 12)):  # sometimes the value is missing
            args.append(draw(st.one_of(st.sampled_from(FLAG_VALUES[flag]), st.sampled_from(flags))))
    if args[:1] and args[0] in SLOW:
        args.append("--bogus")
    if draw(st.booleans()) and "--channels" not in args and "-c" not in args:
        args += ["-c", "8", "-k", draw(st.sampled_from(["3", "5x3", "1"]))]
    return args


def command_lines() -> st.SearchStrategy[list[str]]:
    """Command lines near a valid one, or anything built from the real flags."""
    return st.one_of(near_valid_lines(), random_lines())


def cli_case(args: list[str]) -> Outcome:
    """``osc-design ARGS`` with plots and ``-o`` redirected into a temporary directory."""
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "out.png"
        argv = [*args, "-o", str(out)] if args[:1] == ["plot"] or "-o" not in args and _wants_output(args) else args
        cwd = os.getcwd()
        os.chdir(tmp)  # anything written by a relative path lands here
        try:
            return cli_outcome("cli", argv, out if "-o" in argv else None, env={"OSC_DESIGN_CACHE_DIR": tmp})
        finally:
            os.chdir(cwd)


def _wants_output(args: list[str]) -> bool:
    return len(args) % 3 == 0  # every third case writes with -o (deterministic in the arguments)


def parse_seed(path: Path) -> Any:
    """The parsed document of a file the product wrote (a seed to mutate)."""
    return json.loads(path.read_text("utf-8"))
