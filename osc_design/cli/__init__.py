"""The ``osc-design`` command line: the only package that prints or exits.

It parses, calls the library and renders what the library returns; every document (JSON, CSV rows) comes
from the library. Modules: :mod:`._app` (the application and its one-line errors), :mod:`.options` (the
option sets shared by the commands), :mod:`.output` (writing, rendering, progress bars), and one module
per command group: :mod:`.compare` (the root command, ``compare``, ``solve``), :mod:`.network` (``network``,
``describe``), :mod:`.summary` (``summary``), :mod:`.spec_files` (``verify``, ``export``) and :mod:`.sweep`
(``sweep``, ``plot``, ``calibrate``).

Exit codes: 0 ok; 1 domain error (no valid design, numeric mismatch, bad spec content); 2 usage
error (bad option value, unreadable file, unwritable ``--output``). Errors are one line on stderr.
"""

from __future__ import annotations

from . import compare, network, summary, spec_files, sweep  # noqa: F401  (registers the commands, in help order)
from ._app import app
from .options import DEFAULT_INPUT, parse_pair

__all__ = ["app", "main", "DEFAULT_INPUT", "parse_pair"]


def main() -> None:
    """Console entry point."""
    app()
