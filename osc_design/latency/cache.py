"""The on-disk cache of op timings: one versioned JSON file, safe under interruption and concurrent writers.

Location
--------
``$OSC_DESIGN_CACHE_DIR/latency.json`` when the environment variable is set, else
``platformdirs.user_cache_dir("osc-design")/latency.json`` (``~/.cache/osc-design`` on Linux).

Format
------
::

    {"format": "osc-design-latency-cache", "version": 3,
     "tables": {"<table id>": {"context": {"backend": "torch", "backend_version": "2.13.0", "device": "cpu",
                                           "dtype": "float32", "batch": 8, "threads": 2,
                                           "allocator": "glibc-steady"},
                               "ops": {"<op id>": {"op": {...}, "median": s, "spread": s, "runs": n,
                                                   "min": s, "time": "<ISO 8601 UTC>"}}}}}

A table holds the timings of one context: backend and its version, device, dtype, batch, thread
count and allocator mode (:class:`TableKey`; the mode is
:func:`~osc_design.latency.timing.allocator_mode`); an op id is
:attr:`OpKey.id <osc_design.latency.opkeys.OpKey.id>`. ``median``, ``spread`` (interquartile range)
and ``min`` (fastest call, ``null`` where unknown) are seconds per call.

Safety
------
* Every write goes through :func:`osc_design.io.write_text`: a temporary file in the same directory,
  flushed to disk, then moved over the cache with ``os.replace`` (atomic): a reader sees the old file
  or the new one, never half of one, and an interrupted writer leaves the old file intact.
* Writers hold an exclusive lock on ``latency.json.lock`` (``filelock``: ``fcntl.flock``,
  ``msvcrt.locking`` on Windows) while they re-read the file, merge their new entries into it and
  replace it: concurrent writers lose nothing and cannot interleave.
* A file that is not valid JSON (read strictly, with no size limit: :func:`~osc_design.serialize.parse_json`),
  not this format, another format version, or with an entry whose times are not finite seconds >= 0 is
  rebuilt (as an empty cache, plus whatever is being written) with a :class:`CacheWarning` saying why.
* A writer killed between creating its temporary file and the replace leaves that file behind; the
  next writer deletes it (under the lock no other writer can be mid-write).
"""

from __future__ import annotations

import contextlib
import json
import os
import sys
import warnings
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from ..errors import SchemaError, SpecError
from ..io import temporary_files, write_text
from ..serialize import parse_json
from .opkeys import OpKey
from .timing import Context, Timing, allocator_mode, backend_version

__all__ = ["CACHE_FORMAT", "CACHE_VERSION", "CACHE_ENV", "CacheWarning", "TableKey", "LatencyCache",
           "default_cache_dir"]

CACHE_FORMAT = "osc-design-latency-cache"
CACHE_VERSION = 3
"""Format version of the cache file; a file of another version is rebuilt (version 1 had no allocator
mode and timed under glibc's default allocator, whose page faults swamped many timings; version 2 timed
ops the latency module built itself, not the backends' modules)."""
CACHE_ENV = "OSC_DESIGN_CACHE_DIR"
"""Environment variable that overrides the cache directory."""
FILE_NAME = "latency.json"


class CacheWarning(UserWarning):
    """The latency cache file was corrupt or stale and has been rebuilt."""


def default_cache_dir() -> Path:
    """``$OSC_DESIGN_CACHE_DIR`` if set, else the user cache directory of osc-design."""
    env = os.environ.get(CACHE_ENV)
    if env:
        return Path(env).expanduser()
    import platformdirs

    return Path(platformdirs.user_cache_dir("osc-design", appauthor=False))


@dataclass(frozen=True)
class TableKey:
    """What one cache table is keyed by."""

    backend: str
    backend_version: str
    device: str
    dtype: str
    batch: int
    threads: int
    allocator: str = "system"

    @classmethod
    def of(cls, ctx: Context, version: str | None = None) -> TableKey:
        """The table of a context in this process (``version``: the installed framework's, read from
        package metadata; the allocator mode: :func:`~osc_design.latency.timing.allocator_mode`)."""
        return cls(ctx.backend, backend_version(ctx.backend, ctx.device) if version is None else version, ctx.device,
                   ctx.dtype, ctx.batch, ctx.threads, allocator_mode())

    @property
    def id(self) -> str:
        """e.g. ``torch-2.13.0|cpu|float32|batch8|threads2|glibc-steady``."""
        return (f"{self.backend}-{self.backend_version}|{self.device}|{self.dtype}|batch{self.batch}"
                f"|threads{self.threads}|{self.allocator}")

    def to_dict(self) -> dict[str, Any]:
        return {"backend": self.backend, "backend_version": self.backend_version, "device": self.device,
                "dtype": self.dtype, "batch": self.batch, "threads": self.threads, "allocator": self.allocator}


def entry_timing(entry: Mapping[str, Any]) -> Timing:
    """The :class:`Timing` of a cache entry."""
    best, alone = entry.get("min"), entry.get("alone")
    return Timing(float(entry["median"]), float(entry["spread"]), int(entry["runs"]),
                  None if best is None else float(best), None if alone is None else float(alone))


def _empty() -> dict[str, Any]:
    return {"format": CACHE_FORMAT, "version": CACHE_VERSION, "tables": {}}


def _valid_entry(entry: Any) -> bool:
    if not isinstance(entry, dict) or not isinstance(entry.get("op"), dict):
        return False
    def number(v: Any) -> bool:  # seconds: finite, not negative, an int within float range
        return isinstance(v, (int, float)) and not isinstance(v, bool) and 0 <= v <= sys.float_info.max

    best, alone = entry.get("min"), entry.get("alone")
    return (number(entry.get("median")) and number(entry.get("spread")) and type(entry.get("runs")) is int
            and entry["runs"] >= 1 and (best is None or number(best)) and (alone is None or number(alone)))


def _problem(data: Any) -> str | None:
    """Why ``data`` is not a cache of this version (``None`` when it is)."""
    if not isinstance(data, dict) or data.get("format") != CACHE_FORMAT:
        return "it is not an osc-design latency cache"
    if data.get("version") != CACHE_VERSION:
        return f"it has format version {data.get('version')!r}, this osc-design reads version {CACHE_VERSION}"
    tables = data.get("tables")
    if not isinstance(tables, dict):
        return "its `tables` is not an object"
    for tid, table in tables.items():
        if not isinstance(table, dict) or not isinstance(table.get("ops"), dict):
            return f"table {tid!r} has no `ops` object"
        for oid, entry in table["ops"].items():
            if not _valid_entry(entry):
                return f"entry {oid!r} of table {tid!r} is malformed"
    return None


def _unusable(directory: Path, what: str, exc: OSError) -> SpecError:
    return SpecError(f"cannot {what} the latency cache directory {directory} ({exc}); set {CACHE_ENV} to a "
                     "writable directory")


@contextlib.contextmanager
def _locked(path: Path) -> Iterator[None]:
    """An exclusive lock on ``<path>.lock`` (``filelock``: ``fcntl.flock`` on POSIX, ``msvcrt.locking`` on
    Windows; released when the process dies, too), for ``with``; a lock file that cannot be created or
    locked (no permission, ...) is a :class:`~osc_design.errors.SpecError` naming the directory."""
    from filelock import FileLock

    lock = FileLock(path.with_name(path.name + ".lock"))
    try:
        lock.acquire()
    except OSError as exc:
        raise _unusable(path.parent, "lock a file in", exc) from exc
    try:
        yield
    finally:
        lock.release()


class LatencyCache:
    """The latency cache file: read it, look up timings, add timings (merged in atomically).

    Parameters
    ----------
    directory : str or Path, optional
        Where ``latency.json`` lives; default :func:`default_cache_dir`. Created on the first write.

    Notes
    -----
    The in-memory copy is loaded on construction and refreshed on every :meth:`add` (which re-reads
    the file under the lock and merges), so entries written by other processes become visible then
    or on :meth:`reload`. ``generation`` counts the refreshes (models sharing the cache watch it).
    """

    def __init__(self, directory: str | os.PathLike[str] | None = None) -> None:
        self.directory = Path(directory).expanduser() if directory is not None else default_cache_dir()
        self.path = self.directory / FILE_NAME
        self._data = _empty()
        self.generation = 0
        self.reload()

    # -- reading ----------------------------------------------------------------------------
    def _read(self) -> tuple[dict[str, Any], str | None]:
        """The file's content and, when it must be rebuilt, why (a missing file is an empty cache)."""
        try:
            text = self.path.read_bytes()
        except FileNotFoundError:
            return _empty(), None
        except OSError as exc:
            return _empty(), f"it cannot be read ({exc})"
        try:
            data = parse_json(text, limit=None)
        except SchemaError as exc:
            return _empty(), f"it is not valid JSON ({exc})"
        why = _problem(data)
        return (_empty(), why) if why else (data, None)

    def reload(self) -> None:
        """Re-read the file; a corrupt or stale one is rebuilt now, with a :class:`CacheWarning`."""
        data, why = self._read()
        if why is not None:
            self._rebuild(why)
            data, _ = self._read()
        self._set(data)

    def _set(self, data: dict[str, Any]) -> None:
        self._data = data
        self.generation += 1

    def _warn(self, why: str) -> None:
        warnings.warn(f"osc-design latency cache {self.path} was rebuilt because {why}; its timings are "
                      "measured again as needed", CacheWarning, stacklevel=4)

    def _rebuild(self, why: str) -> None:
        with _locked(self._ensure_dir()):
            _, still = self._read()  # another process may have rebuilt it meanwhile
            if still is not None:
                self._write(_empty())
                self._warn(still)

    def table(self, key: TableKey) -> dict[str, dict[str, Any]]:
        """The entries of one table (op id -> entry), a copy."""
        table = self._data["tables"].get(key.id)
        return {} if table is None else dict(table["ops"])

    def get(self, key: TableKey, op: OpKey) -> Timing | None:
        """The cached timing of ``op`` in table ``key``, or ``None``."""
        table = self._data["tables"].get(key.id)
        entry = None if table is None else table["ops"].get(op.id)
        return None if entry is None else entry_timing(entry)

    def tables(self) -> list[str]:
        """Ids of the tables in the file."""
        return list(self._data["tables"])

    # -- writing ----------------------------------------------------------------------------
    def _ensure_dir(self) -> Path:
        try:
            self.directory.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise _unusable(self.directory, "create", exc) from exc
        return self.path

    def _write(self, data: Mapping[str, Any]) -> None:
        """Atomically replace the file by ``data`` (:func:`osc_design.io.write_text`)."""
        write_text(self.path, json.dumps(data, indent=1, sort_keys=True) + "\n")

    def _remove_orphans(self) -> None:
        """Delete temporary files of writers killed mid-write (called under the lock: no live writer has one)."""
        for tmp in temporary_files(self.path):
            with contextlib.suppress(OSError):
                tmp.unlink()

    def add(self, key: TableKey, timings: Mapping[OpKey, Timing]) -> None:
        """Merge ``timings`` into table ``key`` of the file (under the lock, atomically) and refresh."""
        if not timings:
            return
        stamp = datetime.now(timezone.utc).isoformat(timespec="seconds")
        with _locked(self._ensure_dir()):
            self._remove_orphans()
            data, why = self._read()
            if why is not None:
                self._warn(why)
            table = data["tables"].setdefault(key.id, {"context": key.to_dict(), "ops": {}})
            for op, t in timings.items():
                table["ops"][op.id] = {"op": op.to_dict(), "median": t.median, "spread": t.spread, "runs": t.runs,
                                       "min": t.best, **({} if t.alone is None else {"alone": t.alone}),
                                       "time": stamp}
            self._write(data)
        self._set(data)

    def clear(self, key: TableKey | None = None) -> None:
        """Drop one table (or every table) from the file."""
        with _locked(self._ensure_dir()):
            data, _ = self._read()
            if key is None:
                data = _empty()
            else:
                data["tables"].pop(key.id, None)
            self._write(data)
        self._set(data)
