"""The one output writer: atomic replacement of regular files, modes, symlinks, FIFOs, stdout, failures."""

from __future__ import annotations

import os
import stat
import sys
import threading

import pytest

from osc_design.errors import OscDesignError, OutputError
from osc_design.io import open_output, temporary_files, write_bytes, write_text

posix = pytest.mark.skipif(os.name != "posix", reason="POSIX modes, symlinks and FIFOs")


@pytest.fixture
def umask():
    """``umask(value)`` sets the process umask for one test; the old one is restored afterwards."""
    old = os.umask(0o022)
    yield os.umask
    os.umask(old)


def _mode(path):
    return stat.S_IMODE(os.stat(path).st_mode)


def test_new_file_and_replacement_leave_no_temporary(tmp_path):
    path = tmp_path / "out.txt"
    write_text(path, "first\n")
    assert path.read_text() == "first\n"
    write_bytes(path, b"second\n")
    assert path.read_bytes() == b"second\n"
    assert sorted(tmp_path.iterdir()) == [path] and temporary_files(path) == []


@posix
@pytest.mark.parametrize("mask, expected", [(0o022, 0o644), (0o077, 0o600), (0o002, 0o664)])
def test_new_file_gets_the_mode_the_umask_gives(tmp_path, umask, mask, expected):
    umask(mask)
    path = tmp_path / "new.json"
    write_text(path, "{}\n")
    assert _mode(path) == expected
    # the same mode as a plain open() under that umask
    plain = tmp_path / "plain.json"
    with open(plain, "w") as fh:
        fh.write("{}\n")
    assert _mode(plain) == expected


@posix
@pytest.mark.parametrize("mode", [0o644, 0o640, 0o600, 0o755])
def test_replaced_file_keeps_its_mode(tmp_path, umask, mode):
    umask(0o077)  # would give 0600 to a new file
    path = tmp_path / "kept.txt"
    path.write_text("old\n")
    os.chmod(path, mode)
    inode = os.stat(path).st_ino
    write_text(path, "new\n")
    assert path.read_text() == "new\n" and _mode(path) == mode
    assert os.stat(path).st_ino != inode  # replaced by a rename, not rewritten in place


@posix
def test_symlink_is_followed_and_stays_a_link(tmp_path):
    real_dir = tmp_path / "real"
    real_dir.mkdir()
    target = real_dir / "data.txt"
    target.write_text("old\n")
    os.chmod(target, 0o640)
    link = tmp_path / "link.txt"
    link.symlink_to(target)
    chain = tmp_path / "chain.txt"
    chain.symlink_to(link)
    write_text(chain, "new\n")
    assert chain.is_symlink() and link.is_symlink() and os.readlink(chain) == str(link)
    assert target.read_text() == "new\n" and _mode(target) == 0o640
    assert sorted(p.name for p in real_dir.iterdir()) == ["data.txt"]  # the temporary file was beside the target


@posix
def test_dangling_symlink_creates_its_target(tmp_path):
    target = tmp_path / "made.txt"
    link = tmp_path / "link.txt"
    link.symlink_to(target)
    write_text(link, "hello\n")
    assert link.is_symlink() and target.read_text() == "hello\n"


@posix
def test_fifo_is_written_straight_through(tmp_path):
    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)
    got = []

    def reader():
        with open(fifo, "rb") as fh:
            got.append(fh.read())

    thread = threading.Thread(target=reader)
    thread.start()
    write_bytes(fifo, b"through the pipe\n")
    thread.join(timeout=10)
    assert got == [b"through the pipe\n"]
    assert stat.S_ISFIFO(os.lstat(fifo).st_mode)  # still the FIFO, not replaced by a regular file
    assert sorted(p.name for p in tmp_path.iterdir()) == ["pipe"]


def test_dash_is_standard_output(capsys):
    write_text("-", "to stdout\n")
    assert capsys.readouterr().out == "to stdout\n"


def test_dash_bytes_go_to_the_stdout_buffer(monkeypatch):
    import io

    buffer = io.BytesIO()
    monkeypatch.setattr(sys, "stdout", io.TextIOWrapper(buffer))
    write_bytes("-", b"raw\n")
    assert buffer.getvalue() == b"raw\n"


def test_failure_leaves_the_old_file_and_no_temporary(tmp_path):
    path = tmp_path / "out.txt"
    path.write_text("old\n")
    with pytest.raises(RuntimeError, match="boom"), open_output(path) as fh:
        fh.write("half")
        raise RuntimeError("boom")
    assert path.read_text() == "old\n"
    assert sorted(tmp_path.iterdir()) == [path]
    with pytest.raises(TypeError):
        write_text(path, b"not text")  # type: ignore[arg-type]
    assert path.read_text() == "old\n" and sorted(tmp_path.iterdir()) == [path]


def test_new_path_is_not_created_on_failure(tmp_path):
    path = tmp_path / "never.txt"
    with pytest.raises(KeyboardInterrupt), open_output(path, "wb") as fh:
        fh.write(b"x")
        raise KeyboardInterrupt
    assert list(tmp_path.iterdir()) == []


def test_directory_and_missing_parent_name_the_path(tmp_path):
    with pytest.raises(OutputError, match=rf"cannot write '{tmp_path}': it is a directory"):
        write_text(tmp_path, "x")
    missing = tmp_path / "nowhere" / "out.txt"
    with pytest.raises(OutputError, match=r"'.*nowhere/out.txt'.*does not exist") as err:
        write_text(missing, "x")
    assert isinstance(err.value, OscDesignError) and isinstance(err.value, OSError)  # `except OSError` still works
    assert "\n" not in str(err.value)


def test_parent_that_is_a_file(tmp_path):
    (tmp_path / "file").write_text("x")
    with pytest.raises(OutputError, match="file/out.txt': Not a directory"):
        write_text(tmp_path / "file" / "out.txt", "x")


def test_disk_error_mid_write_keeps_the_old_file(tmp_path, monkeypatch):
    import errno

    path = tmp_path / "out.txt"
    path.write_text("old\n")

    def full(fd):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(os, "fsync", full)
    with pytest.raises(OutputError, match="No space left on device"):
        write_text(path, "new\n")
    assert path.read_text() == "old\n" and sorted(tmp_path.iterdir()) == [path]


@posix
def test_unwritable_directory_is_an_output_error(tmp_path):
    if os.geteuid() == 0:
        pytest.skip("root writes anywhere")
    locked = tmp_path / "locked"
    locked.mkdir()
    os.chmod(locked, 0o500)
    try:
        with pytest.raises(OutputError, match="locked/out.txt"):
            write_text(locked / "out.txt", "x")
    finally:
        os.chmod(locked, 0o700)


def test_temporary_files_lists_leftovers(tmp_path):
    path = tmp_path / "cache.json"
    stale = tmp_path / ".cache.json.0123abcd.tmp"
    stale.write_text("interrupted")
    (tmp_path / ".other.json.0123abcd.tmp").write_text("not ours")
    assert temporary_files(path) == [stale]


@pytest.mark.parametrize("name", ["cache[ab].json", "c*e.json", "c?che.json"])
def test_temporary_files_take_glob_characters_literally(tmp_path, name):
    ours = tmp_path / f".{name}.0123abcd.tmp"
    ours.write_text("interrupted")
    for other in ("cache.json", "ca.json", "cb.json", "cxche.json", "c-xyz-e.json"):  # what the pattern would match
        (tmp_path / f".{other}.0123abcd.tmp").write_text("not ours")
    assert temporary_files(tmp_path / name) == [ours]


def test_bad_mode_is_refused(tmp_path):
    with pytest.raises(ValueError, match="mode"), open_output(tmp_path / "x", "a"):
        pass


def test_docstring_example_runs():
    import doctest

    import osc_design.io

    result = doctest.testmod(osc_design.io)
    assert result.attempted > 0 and result.failed == 0
