"""The ``osc-design`` application: its help, and every failure as one ``Error: ...`` line with its exit code."""

from __future__ import annotations

import sys
from collections.abc import Sequence
from typing import Any

import typer
from typer.core import TyperGroup

from ..errors import OscDesignError

_USAGE_EXC: Any = next(c for c in typer.BadParameter.__mro__ if c.__name__ == "UsageError")
_CLICK_EXC: Any = next(c for c in typer.BadParameter.__mro__ if c.__name__ == "ClickException")


class _OneLineErrors(TyperGroup):
    """Turns every failure into one ``Error: ...`` line on stderr with the documented exit code."""

    def main(self, args: Sequence[str] | None = None, prog_name: str | None = None, complete_var: str | None = None,
             standalone_mode: bool = True, windows_expand_args: bool = True, **extra: Any) -> Any:
        try:
            rv = super().main(args=args, prog_name=prog_name or "osc-design", complete_var=complete_var,
                              standalone_mode=False, windows_expand_args=windows_expand_args, **extra)
            code = rv if isinstance(rv, int) else 0
        except _USAGE_EXC as e:
            code = _fail(e.format_message(), 2)
        except _CLICK_EXC as e:
            code = _fail(e.format_message(), e.exit_code)
        except OscDesignError as e:
            code = _fail(str(e), 1)
        except KeyboardInterrupt:
            code = _fail("interrupted", 130)
        if not standalone_mode:
            return code
        sys.exit(code)


def _fail(message: str, code: int) -> int:
    sys.stderr.write(f"Error: {' '.join(str(message).split())}\n")
    return code


app = typer.Typer(
    cls=_OneLineErrors,
    add_completion=False,
    no_args_is_help=False,
    pretty_exceptions_show_locals=False,
    context_settings={"help_option_names": ["-h", "--help"]},
    help=(
        "Design efficient convolutions: compare every operator family against the conventional conv "
        "with exact params and MACs, and find the optimal separable convolution with a proof of "
        "receptive-field coverage and its distance to the lower bound.\n\n"
        "Example: osc-design --channels 256 --kernel 7\n\n"
        "Exit codes: 0 ok, 1 no valid design or a failed check, 2 bad usage."
    ),
)
