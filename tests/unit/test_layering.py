"""Arrows point one way: the core never imports the scheduler or the workers, the CLI reaches
the workers only through their public names, and ``workers._publish`` stands alone."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def _imports(path: Path) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module)
    return names


def _offenders(folder: str, forbidden: tuple[str, ...], skip: str | None = None) -> list[str]:
    found = []
    for path in sorted((ROOT / folder).rglob("*.py")):
        relative = path.relative_to(ROOT).as_posix()
        if skip and relative.startswith(skip):
            continue
        found += [f"{relative}: {name}" for name in _imports(path) if name.startswith(forbidden)]
    return found


def test_the_core_imports_neither_the_scheduler_nor_the_workers():
    assert _offenders("portability", ("schedules", "workers"), skip="portability/cli/") == []


def test_the_cli_uses_only_the_workers_public_modules():
    assert _offenders("portability/cli", ("workers._", "workers.app")) == []


def test_publishing_does_not_import_the_celery_app_back():
    assert [n for n in _imports(ROOT / "workers/_publish.py") if n.startswith("workers")] == []
