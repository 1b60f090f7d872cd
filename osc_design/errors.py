"""Exception hierarchy of osc-design: one root, each concrete error also a builtin."""

from __future__ import annotations

import reprlib
from typing import Any

__all__ = [
    "OscDesignError",
    "SpecError",
    "SchemaError",
    "OptionError",
    "InfeasibleDesignError",
    "BackendUnavailableError",
    "UnknownBackendError",
    "OutputError",
    "check_type",
]


class OscDesignError(Exception):
    """Root of every error raised on purpose by osc-design."""


class SpecError(OscDesignError, ValueError):
    """An invalid parameter, target, op or layer spec (the message names field and value)."""


class OptionError(SpecError):
    """An option that breaks a rule of the call it was given to; ``option`` names the argument and ``rule``
    the broken rule, so a front end can word it in its own terms (the CLI names its flags)."""

    def __init__(self, message: str, option: str, rule: str) -> None:
        super().__init__(message)
        self.option = option
        self.rule = rule

    def __reduce__(self) -> tuple[type, tuple[str, str, str]]:
        return type(self), (str(self), self.option, self.rule)


class SchemaError(SpecError):
    """A layer-spec document that is not valid JSON, or violates the schema or its version."""


class InfeasibleDesignError(OscDesignError):
    """No design satisfies the requested constraints (the message says why)."""


class BackendUnavailableError(OscDesignError, ImportError):
    """A framework backend was requested whose framework is not installed."""


class UnknownBackendError(OscDesignError, ValueError):
    """A backend name that osc-design does not know."""


class OutputError(OscDesignError, OSError):
    """A file that cannot be written: a directory, a missing directory, no permission (names the path)."""


_SHORT = reprlib.Repr()
_SHORT.maxstring = _SHORT.maxother = 60


def check_type(value: Any, kind: type | tuple[type, ...], name: str, expected: str | None = None) -> None:
    """Raise :class:`SpecError` naming argument ``name`` and showing ``value`` unless it is a ``kind``.

    >>> check_type({"a": 1}, int, "batch", "an integer")
    Traceback (most recent call last):
    ...
    osc_design.errors.SpecError: `batch` (={'a': 1}) must be an integer, got dict
    """
    if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
        if expected is None:
            names = [k.__name__ for k in (kind if isinstance(kind, tuple) else (kind,))]
            expected = "a " + " or a ".join(names)
        raise SpecError(f"`{name}` (={_SHORT.repr(value)}) must be {expected}, got {type(value).__name__}")


def first_line(e: BaseException) -> str:
    """The first line of an exception's message, for a one-line error (``"no message"`` when it has none).

    >>> first_line(ValueError(" bad shape\\n(more detail)"))
    'bad shape'
    >>> first_line(KeyError())
    'no message'
    """
    text = str(e).strip()
    return text.splitlines()[0] if text else "no message"
