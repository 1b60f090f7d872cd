"""Writing what a command shows: stdout or an atomic ``--output`` file, rich rendering, JSON/CSV text, progress bars."""

from __future__ import annotations

import io
import json
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import typer


def emit(text: str, output: Path | None) -> None:
    """Write ``text`` to stdout, or to ``output`` through the one writer (:mod:`osc_design.io`: atomic for a
    regular file, straight through for a FIFO, a device or ``-``)."""
    if output is None:
        sys.stdout.write(text)
        sys.stdout.flush()
        return
    from ..io import write_text

    try:
        write_text(output, text)
    except OSError as e:
        raise typer.BadParameter(f"{str(output)!r}: {e.strerror or e}", param_hint="'--output'") from None


PLAIN_WIDTH = 120
"""Width of text lines (not tables) in pipes and files; a wider table keeps its own width."""


def terminal_width(output: Path | None) -> int | None:
    """The terminal's width when writing to a terminal stdout; ``None`` in pipes and files (tables size to
    their content there)."""
    if output is None and sys.stdout.isatty():
        from rich.console import Console

        return Console().width
    return None


def render(*renderables: Any, output: Path | None, width: int | None = None) -> str:
    """Render rich objects to text: colour only for a terminal stdout, plain in files.

    On a terminal (or at an explicit ``width``) every table is fitted to the width without cutting a
    number (:func:`osc_design._render.fit`); in pipes and files tables take the width their content needs
    and text wraps at :data:`PLAIN_WIDTH` columns (or the widest table's width).
    """
    from rich.console import Console

    from .._render import fit

    to_terminal = output is None and sys.stdout.isatty()
    width = width if width is not None else terminal_width(output)
    parts = [fit(r, width) for r in renderables]
    if width is None:
        probe = Console(width=10**6, color_system=None)
        width = max([PLAIN_WIDTH] + [probe.measure(r).maximum for r in parts if hasattr(r, "columns")])
    buf = io.StringIO()
    console = Console(file=buf, width=width, force_terminal=to_terminal,
                      color_system="auto" if to_terminal else None, highlight=False, soft_wrap=False)
    for r in parts:
        console.print(r)
    return buf.getvalue()


def json_text(obj: Any) -> str:
    """A JSON document as the commands print it (two-space indent, final newline)."""
    return json.dumps(obj, indent=2) + "\n"


def csv_text(rows: list[dict[str, Any]]) -> str:
    """Rows as CSV with a header (the first row's keys); empty text for no rows."""
    import csv

    buf = io.StringIO()
    if rows:
        writer = csv.DictWriter(buf, fieldnames=list(rows[0]), lineterminator="\n")
        writer.writeheader()
        writer.writerows(rows)
    return buf.getvalue()


def emit_document(fmt: Any, output: Path | None, doc: Callable[[], Any],
                  rows: Callable[[], list[dict[str, Any]]]) -> bool:
    """Emit the library's JSON document ``doc()`` or CSV ``rows()`` when ``fmt`` (``--format``) asks for one;
    ``False`` when it asks for a table (which the command renders)."""
    if fmt.value == "json":
        emit(json_text(doc()), output)
    elif fmt.value == "csv":
        emit(csv_text(rows()), output)
    else:
        return False
    return True


def progress(total: int, label: str) -> Any:
    """A rich progress bar on stderr (silent when stderr is not a terminal); returns (advance, close)."""
    from rich.console import Console
    from rich.progress import Progress

    console = Console(stderr=True)
    bar = Progress(console=console, transient=True, disable=not console.is_terminal)
    task = bar.add_task(label, total=total)
    bar.start()

    def advance(step: Any = 1) -> None:  # a layer name (one step) or a number of steps
        bar.advance(task, step if isinstance(step, int) else 1)

    return advance, bar.stop


def op_progress(label: str, before: Callable[[], Any] | None = None
                ) -> tuple[Callable[[int, int], None], Callable[[], None]]:
    """A progress bar for ops timed on demand, started at the first report (after ``before()``, which
    closes another bar: one live display at a time); returns (report, close)."""
    bar: list[Any] = []

    def report(done: int, total: int) -> None:
        if not bar:
            if before is not None:
                before()
            bar.extend(progress(total, label))
        bar[0](done - report.done)  # type: ignore[attr-defined]
        report.done = done  # type: ignore[attr-defined]

    report.done = 0  # type: ignore[attr-defined]
    return report, (lambda: bar[1]() if bar else None)
