"""Which backends the tests run: ``OSC_DESIGN_TEST_BACKENDS`` (comma-separated, e.g. ``torch,jax``), by default
every installed one. A requested backend that cannot import fails the run instead of being skipped, so a CI job
that asks for a framework never passes silently without it (scripts/test.sh requests torch, jax and onnxruntime)."""

from __future__ import annotations

import os

import pytest

from osc_design.backends import available_backends, get_backend
from osc_design.backends.export import SOURCE_TARGETS

ENV = "OSC_DESIGN_TEST_BACKENDS"


def requested_backends() -> list[str]:
    """The backends named by ``OSC_DESIGN_TEST_BACKENDS``, else those installed."""
    text = os.environ.get(ENV, "").strip()
    if not text:
        return available_backends()
    return [name.strip() for name in text.split(",") if name.strip()]


def requested_source_backends() -> list[str]:
    """The requested backends that ``export`` writes source code for (torch, jax; ONNX models are not source)."""
    return [name for name in requested_backends() if name in SOURCE_TARGETS]


def require(name: str) -> None:
    """Skip the calling test (or module) unless backend ``name`` is requested; a requested one must import."""
    if name not in requested_backends():
        pytest.skip(f"the {name!r} backend is not requested ({ENV}={os.environ.get(ENV, '')!r}; default: the "
                    "installed ones)", allow_module_level=True)
    get_backend(name)  # BackendUnavailableError: requested but not importable, a failure
