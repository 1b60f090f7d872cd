"""What :func:`osc_design.backends.verify` reports: one :class:`Check` per measured quantity (no framework)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from ..spec import Pair

__all__ = ["Check", "CrossCheck", "VerifyReport"]


@dataclass(frozen=True)
class Check:
    """One measured quantity: closed form against the framework's own counter."""

    backend: str
    quantity: str
    convention: str
    expected: Any
    measured: Any
    ok: bool

    def to_row(self) -> dict[str, Any]:
        """``{"backend", "quantity", "convention", "closed_form", "measured", "ok"}``."""
        return {
            "backend": self.backend,
            "quantity": self.quantity,
            "convention": self.convention,
            "closed_form": self.expected,
            "measured": self.measured,
            "ok": self.ok,
        }


@dataclass(frozen=True)
class CrossCheck:
    """Outputs of the PyTorch and JAX modules of one spec, loaded with the same weights, on the same input."""

    max_abs_diff: float
    shape: tuple[int, ...]
    rtol: float
    atol: float
    ok: bool


@dataclass(frozen=True)
class VerifyReport:
    """What :func:`verify` measured.

    Attributes
    ----------
    family, target:
        The spec's family and target (``Target.describe()``).
    input_size, batch:
        Where the counts were measured.
    checks:
        One :class:`Check` per backend and quantity.
    skipped:
        Backend name -> why it was not checked (framework missing; only with ``backend="all"``).
    """

    family: str
    target: str
    input_size: Pair
    batch: int
    checks: tuple[Check, ...]
    skipped: dict[str, str] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        """True when at least one check ran and every check agrees."""
        return bool(self.checks) and all(c.ok for c in self.checks)

    @property
    def failures(self) -> tuple[Check, ...]:
        """The checks that disagree."""
        return tuple(c for c in self.checks if not c.ok)

    def to_rows(self) -> list[dict[str, Any]]:
        """One dict per check (see :meth:`Check.to_row`), for a table."""
        return [c.to_row() for c in self.checks]

    def __str__(self) -> str:
        head = (f"{self.family} for {self.target} at {self.input_size[0]}x{self.input_size[1]}, batch {self.batch}: "
                f"{'ok' if self.ok else 'MISMATCH'}")
        rows = [(c.backend, c.quantity, str(c.expected), str(c.measured), "ok" if c.ok else "MISMATCH")
                for c in self.checks]
        rows += [(name, "skipped", reason, "", "") for name, reason in self.skipped.items()]
        widths = [max(len(r[i]) for r in rows) if rows else 0 for i in range(5)]
        lines = [head] + ["  " + "  ".join(v.ljust(w) for v, w in zip(r, widths, strict=True)).rstrip() for r in rows]
        return "\n".join(lines)
