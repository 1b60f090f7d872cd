"""House rules that a reader checks by eye, checked here so they stay true.

- No function in ``osc_design/`` runs past one screen (60 lines) unless a comment starting with
  ``# long:`` on its ``def`` line or the line above says why.
- The pure-math core imports no framework: ``torch``, ``jax``, ``flax`` and ``onnx`` appear only in the
  backend modules (and the network modules that take a PyTorch model), and only there at module level.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parent.parent / "osc_design"
SOURCES = sorted(PACKAGE.rglob("*.py"))
MAX_LINES = 60


def _functions(tree: ast.AST):
    for node in ast.walk(tree):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            yield node


def _has_reason(lines: list[str], node: ast.FunctionDef | ast.AsyncFunctionDef) -> bool:
    first = min([node.lineno] + [d.lineno for d in node.decorator_list])
    around = lines[first - 2: node.lineno] if first >= 2 else lines[: node.lineno]
    return any("# long:" in line for line in around)


@pytest.mark.parametrize("path", SOURCES, ids=lambda p: str(p.relative_to(PACKAGE)))
def test_no_function_runs_past_one_screen(path):
    text = path.read_text()
    lines = text.splitlines()
    long = []
    for node in _functions(ast.parse(text)):
        length = (node.end_lineno or node.lineno) - node.lineno + 1
        if length > MAX_LINES and not _has_reason(lines, node):
            long.append(f"{node.name} (line {node.lineno}, {length} lines)")
    assert not long, f"functions over {MAX_LINES} lines without a '# long:' reason: {long}"


def test_the_checker_sees_a_long_function(tmp_path):
    body = "\n".join(f"    x{i} = {i}" for i in range(MAX_LINES + 1))
    tree = ast.parse(f"def f():\n{body}\n")
    (node,) = _functions(tree)
    assert node.end_lineno - node.lineno + 1 > MAX_LINES
    assert not _has_reason([], node)
    assert _has_reason(["", "# long: a table", "def f():"], ast.parse("\n\ndef f():\n    pass\n").body[0])
    assert not _has_reason(["# long: too far above", "", "def f():"], ast.parse("\n\ndef f():\n    pass\n").body[0])


FRAMEWORKS = ("torch", "jax", "flax", "onnx", "onnxruntime")
# modules allowed to import a framework at module level: the backends' own modules, and the network
# modules whose input is a PyTorch model
FRAMEWORK_MODULES = ("backends/", "networks/torch_models.py", "networks/convert.py", "networks/extract.py")


def _top_level_imports(tree: ast.Module) -> set[str]:
    names = set()
    for node in tree.body:
        if isinstance(node, ast.Import):
            names.update(a.name.split(".")[0] for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module.split(".")[0])
    return names


@pytest.mark.parametrize("path", SOURCES, ids=lambda p: str(p.relative_to(PACKAGE)))
def test_core_imports_no_framework_at_module_level(path):
    rel = str(path.relative_to(PACKAGE))
    if rel.startswith(FRAMEWORK_MODULES[0]) or rel in FRAMEWORK_MODULES[1:]:
        return
    found = _top_level_imports(ast.parse(path.read_text())) & set(FRAMEWORKS)
    assert not found, f"{rel} imports {sorted(found)} at module level"
