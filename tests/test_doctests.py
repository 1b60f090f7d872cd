"""The examples in every module's docstrings run and print what they say.

The modules are found by walking the package on disk (nothing is listed by hand, so a new module is covered
the day it is added). A module is skipped only when importing it fails because one of the optional
frameworks of pyproject's extras is missing (:func:`missing_optional_framework`); any other import error fails.
"""

from __future__ import annotations

import doctest
import importlib
import pkgutil
import re
from pathlib import Path

import pytest

import osc_design

# Import names of the packages in pyproject's optional extras `torch`, `jax` and `plot`.
OPTIONAL_FRAMEWORKS = frozenset({"torch", "jax", "jaxlib", "flax", "matplotlib"})


def package_modules(path: list[str], prefix: str) -> list[str]:
    """Dotted names of the package at ``path`` and of every module below it, found on disk without importing.

    ``__main__`` modules are left out: importing one runs the program.
    """
    names = [prefix.rstrip(".")]
    for info in pkgutil.iter_modules(path, prefix):
        if info.name.rpartition(".")[2] == "__main__":
            continue
        if info.ispkg:
            names += package_modules([str(Path(path[0]) / info.name.rpartition(".")[2])], info.name + ".")
        else:
            names.append(info.name)
    return names


def missing_optional_framework(error: ImportError) -> str | None:
    """The optional framework whose absence raised ``error``; ``None`` for any other import error."""
    if not isinstance(error, ModuleNotFoundError) or not error.name:
        return None
    top = error.name.partition(".")[0]
    return top if top in OPTIONAL_FRAMEWORKS else None


def import_or_skip(name: str):
    try:
        return importlib.import_module(name)
    except ImportError as error:
        framework = missing_optional_framework(error)
        if framework is None:
            raise
        pytest.skip(f"{name} needs {framework}, which is not installed")


MODULES = package_modules(list(osc_design.__path__), "osc_design.")


@pytest.mark.parametrize("name", MODULES)
def test_docstring_examples(name):
    result = doctest.testmod(import_or_skip(name), optionflags=doctest.ELLIPSIS)
    assert result.failed == 0


def test_every_module_file_is_collected():
    root = Path(osc_design.__file__).parent
    on_disk = {
        ".".join(("osc_design", *p.relative_to(root).with_suffix("").parts)).removesuffix(".__init__")
        for p in root.rglob("*.py")
        if p.name != "__main__.py"
    }
    assert set(MODULES) == on_disk
    assert {"osc_design.backends.export", "osc_design.latency", "osc_design.latency.model"} <= on_disk


@pytest.mark.parametrize(
    ("error", "skipped_for"),
    [
        (ModuleNotFoundError("No module named 'torch'", name="torch"), "torch"),
        (ModuleNotFoundError("No module named 'flax.nnx'", name="flax.nnx"), "flax"),
        (ModuleNotFoundError("No module named 'matplotlib'", name="matplotlib"), "matplotlib"),
        (ModuleNotFoundError("No module named 'numpy'", name="numpy"), None),  # a core dependency: fail
        (ModuleNotFoundError("No module named 'osc_design.gone'", name="osc_design.gone"), None),  # our own bug
        (ImportError("cannot import name 'nnx' from 'flax'", name="flax"), None),  # installed but broken
        (ModuleNotFoundError("no name given"), None),
    ],
)
def test_only_a_missing_optional_framework_skips(error, skipped_for):
    assert missing_optional_framework(error) == skipped_for


def test_optional_frameworks_are_the_extras_of_pyproject():
    tomllib = pytest.importorskip("tomllib")  # Python >= 3.11
    with open(Path(__file__).parents[1] / "pyproject.toml", "rb") as f:
        extras = tomllib.load(f)["project"]["optional-dependencies"]
    requirements = [req for extra in ("torch", "jax", "plot") for req in extras[extra]]
    names = {re.split(r"[<>=!~\[; ]", req, maxsplit=1)[0] for req in requirements}
    assert names == OPTIONAL_FRAMEWORKS
