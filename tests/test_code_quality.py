"""Lint, format and type checks are part of the suite, so CI fails on them like on a bug."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


@pytest.mark.parametrize(
    "command",
    [
        ["ruff", "check", "."],
        ["ruff", "format", "--check", "."],
        ["mypy"],
    ],
    ids=["ruff-check", "ruff-format", "mypy"],
)
def test_code_is_clean(command: list[str]) -> None:
    run = subprocess.run(
        [sys.executable, "-m", *command], cwd=ROOT, capture_output=True, text=True, check=False
    )
    assert run.returncode == 0, run.stdout + run.stderr


UI_MODULES = {"typer", "tqdm", "click"}
STREAMS = {"stdin", "stdout", "stderr"}


def _ui_uses(tree: ast.AST) -> list[str]:
    """Imports of a UI library, calls of print, uses of sys.std*: what only `cli/` may do."""
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [a.name for a in node.names if a.name.split(".")[0] in UI_MODULES]
        elif isinstance(node, ast.ImportFrom) and (node.module or "").split(".")[0] in UI_MODULES:
            found.append(str(node.module))
        elif isinstance(node, ast.Call) and getattr(node.func, "id", None) == "print":
            found.append(f"print() at line {node.lineno}")
        elif (
            isinstance(node, ast.Attribute)
            and node.attr in STREAMS
            and getattr(node.value, "id", None) == "sys"
        ):
            found.append(f"sys.{node.attr} at line {node.lineno}")
    return found


def test_only_the_cli_prints_or_touches_the_terminal() -> None:
    library = list((ROOT / "fetcher").glob("*.py"))
    assert len(library) > 30
    uses = {p.name: _ui_uses(ast.parse(p.read_text())) for p in library}
    assert {name: found for name, found in uses.items() if found} == {}
    cli = ast.parse((ROOT / "fetcher" / "cli" / "progress.py").read_text())
    assert _ui_uses(cli), "the check finds what it looks for"
