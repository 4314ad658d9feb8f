"""Imports point down the layers of docs/architecture.md; this reads every import of the runtime
packages (``ast``: module level and inside functions) and names each one that points elsewhere.

    cli                                   the herald command: where web, workers and devservices meet
    hub | workers                         the two kinds of process
    rooms | campaigns | push              the domains (campaigns build on push: a campaign sends pushes)
    store                                 SQL
    config                                settings, clock, logs, error codes, request bodies
    devservices                           embedded PostgreSQL and Redis for development and tests
"""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

#: package → the first-party packages it may import (besides itself).
ALLOWED: dict[str, set[str]] = {
    "cli": {"hub", "workers", "devservices", "rooms", "campaigns", "push", "store", "config"},
    "hub": {"rooms", "campaigns", "push", "store", "config"},
    "workers": {"rooms", "campaigns", "push", "store", "config"},
    "rooms": {"store", "config"},
    "campaigns": {"push", "store", "config"},
    "push": {"config"},
    "store": {"config"},
    "config": set(),
    "devservices": {"config"},
}


def imports_of(path: Path) -> list[tuple[int, str]]:
    found = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.append((node.lineno, node.module))
    return found


def test_every_runtime_package_is_in_the_table() -> None:
    packages = {p.name for p in ROOT.iterdir() if (p / "__init__.py").exists() and p.name not in ("tests", "bench")}
    assert packages == set(ALLOWED)


def test_imports_point_down_the_layers() -> None:
    wrong = []
    for package, allowed in ALLOWED.items():
        for path in sorted((ROOT / package).rglob("*.py")):
            for line, module in imports_of(path):
                top = module.split(".")[0]
                if top in ALLOWED and top != package and top not in allowed:
                    wrong.append(f"{path.relative_to(ROOT)}:{line} imports {module}")
    assert wrong == []


def test_the_check_sees_a_wrong_import(tmp_path: Path) -> None:
    module = tmp_path / "m.py"
    module.write_text("def f():\n    from hub.errors import HubError\n")
    assert imports_of(module) == [(2, "hub.errors")]
