"""The ``osc-design`` application: its help, and every failure as one ``Error: ...`` line with its exit code.

The exit-code policy (:data:`EXIT_CODES`), the same for every command: 0 ok; 2 for anything the user gave
that is invalid (arguments, option values, files that do not parse or validate, an unavailable backend or
device); 1 for valid input without a valid design, or with a failed check.
"""

from __future__ import annotations

import re
import sys
from collections.abc import Sequence
from typing import Any

import typer
from typer.core import TyperGroup

from ..errors import BackendUnavailableError, OscDesignError, SchemaError, UnknownBackendError

EXIT_CODES = ("Exit codes: 0 ok; 2 invalid input (arguments, option values, files that do not parse or validate, "
              "an unavailable backend or device); 1 valid input without a valid design, or a failed check.")
"""The exit-code policy, as ``--help`` states it."""

_USAGE_EXC: Any = next(c for c in typer.BadParameter.__mro__ if c.__name__ == "UsageError")
_CLICK_EXC: Any = next(c for c in typer.BadParameter.__mro__ if c.__name__ == "ClickException")
_ABORT_EXC: Any = typer.Abort
_INVALID_INPUT = (SchemaError, BackendUnavailableError, UnknownBackendError)
"""Library errors that are always about what the user gave: a file that does not validate, a framework
or backend that is not there (exit 2)."""

_SWITCH_VALUE = re.compile(
    r"^(?:No such command '|Got unexpected extra argument.*\()(true|false|yes|no|on|off)['\)]\.?$", re.IGNORECASE)


class _OneLineErrors(TyperGroup):
    """Turns every failure into one ``Error: ...`` line on stderr with the documented exit code."""

    def main(self, args: Sequence[str] | None = None, prog_name: str | None = None, complete_var: str | None = None,
             standalone_mode: bool = True, windows_expand_args: bool = True, **extra: Any) -> Any:
        argv = list(sys.argv[1:] if args is None else args)
        try:
            rv = super().main(args=argv, prog_name=prog_name or "osc-design", complete_var=complete_var,
                              standalone_mode=False, windows_expand_args=windows_expand_args, **extra)
            code = rv if isinstance(rv, int) else 0
        except _USAGE_EXC as e:
            code = _fail(_switch_hint(e.format_message(), argv), 2)
        except _CLICK_EXC as e:
            code = _fail(e.format_message(), e.exit_code)
        except _INVALID_INPUT as e:
            code = _fail(str(e), 2)
        except OscDesignError as e:
            code = _fail(str(e), 1)
        except (KeyboardInterrupt, _ABORT_EXC):
            code = 130
        except Exception as e:  # a bug of osc-design: still one line, and the words to report it by
            code = _fail(f"internal error ({type(e).__name__}: {e}); please report it with the command line", 1)
        if code == 130:  # Ctrl-C (typer turns it into exit code 130 itself)
            _fail("interrupted", 130)
        if not standalone_mode:
            return code
        sys.exit(code)


def _switch_hint(message: str, argv: list[str]) -> str:
    """``--square-only true``: say that the flag is an on/off switch that takes no value."""
    match = _SWITCH_VALUE.match(message.strip())
    if match is None:
        return message
    value = match.group(1)
    i = next((i for i, a in enumerate(argv) if a == value), 0)
    flag = argv[i - 1] if i > 0 and argv[i - 1].startswith("--") else "the flag before it"
    return f"{flag} is an on/off flag and takes no value: give {flag} alone to turn it on (got {value!r})"


def _fail(message: str, code: int) -> int:
    text = " ".join(str(message).split())
    text = re.sub(r"^(?:Value error|Assertion failed), ", "", text)  # pydantic's prefix, if a message carries it
    sys.stderr.write(f"Error: {text}\n")
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
        "Example: osc-design --channels 256 --kernel 7"
    ),
    epilog=EXIT_CODES,
)
