"""Writing the files osc-design produces: one writer for specs, plots, the latency cache and ``--output``.

What a write does depends on what the path names:

* a regular file, or a path that does not exist yet: the data goes to a temporary file
  ``.NAME.<random>.tmp`` in the same directory, is flushed to disk (``fsync``) and renamed over
  ``NAME`` (``os.replace``, atomic): a reader sees the old file or the new one, never half of one, and
  a failed write leaves the old file as it was (the temporary file is removed). An existing file keeps
  its permission mode; a new one gets the mode the umask gives (``0o666 & ~umask``), like ``open``.
* a symbolic link: followed to its final target, which is replaced as above (the link stays a link).
* ``-``: standard output. A character device (``/dev/null``, a terminal), a FIFO or any other
  non-regular file: opened and written straight through (no temporary file, no rename).
* a directory, or a path whose directory does not exist: :class:`~osc_design.errors.OutputError`
  naming the path, as is any other failure to write (an ``OSError`` too, so ``except OSError`` catches it).

>>> import pathlib, tempfile
>>> path = pathlib.Path(tempfile.mkdtemp()) / "out.txt"
>>> write_text(path, "hello\\n")
>>> path.read_text()
'hello\\n'
>>> with open_output(path) as fh:
...     _ = fh.write("bye\\n")
>>> path.read_text()
'bye\\n'
"""

from __future__ import annotations

import contextlib
import os
import stat
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any

from .errors import OutputError

__all__ = ["STDOUT", "write_text", "write_bytes", "open_output", "temporary_files"]

STDOUT = "-"
"""The path that means standard output."""

PathLike = str | os.PathLike[str]


def _fail(path: PathLike, why: str) -> OutputError:
    return OutputError(f"cannot write {str(path)!r}: {why}")


def _existing_mode(target: Path, shown: PathLike) -> int | None:
    """The permission bits of the regular file ``target``; ``None`` if it does not exist yet; -1 if it is
    a device, FIFO or another non-regular file (written straight through)."""
    try:
        st = os.stat(target)
    except FileNotFoundError:
        parent = target.parent
        if not parent.is_dir():
            raise _fail(shown, f"the directory {str(parent)!r} does not exist") from None
        return None
    except OSError as e:
        raise _fail(shown, e.strerror or str(e)) from None
    if stat.S_ISDIR(st.st_mode):
        raise _fail(shown, "it is a directory")
    return stat.S_IMODE(st.st_mode) if stat.S_ISREG(st.st_mode) else -1


def _create_temporary(target: Path) -> tuple[int, Path]:
    """A new file ``.NAME.<random>.tmp`` beside ``target``, created with mode 0o666 (the umask applies)."""
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0) | getattr(os, "O_CLOEXEC", 0)
    while True:
        tmp = target.with_name(f".{target.name}.{os.urandom(6).hex()}.tmp")
        try:
            return os.open(tmp, flags, 0o666), tmp
        except FileExistsError:  # pragma: no cover - 48 random bits
            continue


def _sync_directory(directory: Path) -> None:
    """Make a rename in ``directory`` durable (POSIX; a no-op where directories cannot be opened)."""
    with contextlib.suppress(OSError):
        fd = os.open(directory, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


@contextlib.contextmanager
def _atomic(target: Path, mode: int | None, binary: bool, encoding: str, shown: PathLike) -> Iterator[IO[Any]]:
    try:
        fd, tmp = _create_temporary(target)
    except OSError as e:
        raise _fail(shown, e.strerror or str(e)) from None
    try:
        with os.fdopen(fd, "wb" if binary else "w", encoding=None if binary else encoding) as fh:
            if mode is not None:
                os.chmod(tmp, mode)  # keep the replaced file's permissions
            yield fh
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, target)
    except BaseException as e:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        if isinstance(e, OSError) and not isinstance(e, OutputError):
            raise _fail(shown, e.strerror or str(e)) from e
        raise
    _sync_directory(target.parent)


@contextlib.contextmanager
def _straight(target: Path, binary: bool, encoding: str, shown: PathLike) -> Iterator[IO[Any]]:
    try:
        fh = open(target, "wb" if binary else "w", encoding=None if binary else encoding)
    except OSError as e:
        raise _fail(shown, e.strerror or str(e)) from None
    try:
        with fh:
            yield fh
    except OSError as e:
        if isinstance(e, OutputError):
            raise
        raise _fail(shown, e.strerror or str(e)) from e


@contextlib.contextmanager
def _stdout(binary: bool) -> Iterator[IO[Any]]:
    out: IO[Any] = sys.stdout.buffer if binary else sys.stdout
    yield out
    out.flush()


@contextlib.contextmanager
def open_output(path: PathLike, mode: str = "w", encoding: str = "utf-8") -> Iterator[IO[Any]]:
    """A file object to write ``path`` through (``mode`` ``"w"`` text or ``"wb"`` bytes); the file is
    in place, whole, when the ``with`` block ends, and untouched if the block raises (see module docstring)."""
    if mode not in ("w", "wb"):
        raise ValueError(f"`mode` (={mode!r}) must be 'w' or 'wb'")
    binary = mode == "wb"
    if str(path) == STDOUT:
        with _stdout(binary) as fh:
            yield fh
        return
    target = Path(os.path.realpath(path))
    existing = _existing_mode(target, path)
    writer = (_straight(target, binary, encoding, path) if existing == -1
              else _atomic(target, existing, binary, encoding, path))
    with writer as fh:
        yield fh


def write_text(path: PathLike, text: str, encoding: str = "utf-8") -> None:
    """Write ``text`` to ``path`` (``-``: standard output), atomically for a regular file."""
    with open_output(path, "w", encoding) as fh:
        fh.write(text)


def write_bytes(path: PathLike, data: bytes) -> None:
    """Write ``data`` to ``path`` (``-``: standard output), atomically for a regular file."""
    with open_output(path, "wb") as fh:
        fh.write(data)


def temporary_files(path: PathLike) -> list[Path]:
    """Temporary files that interrupted writes of ``path`` left behind (safe to delete when no write of
    ``path`` is under way, e.g. under a lock that every writer holds)."""
    import glob  # not on the start-up path

    target = Path(os.path.realpath(path))
    return sorted(target.parent.glob(f".{glob.escape(target.name)}.*.tmp"))
