"""The tests' layout: no test module or conftest imports another; what they share is in tests/support
(and the fake providers in tests/fakes).

Every ``import`` and ``from ... import`` of every Python file under tests/ (read with ``ast``, inside
functions too, relative imports resolved) that names a module of the ``tests`` package must name one
of ``tests.support`` or ``tests.fakes``; so must every entry of a ``pytest_plugins`` list.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

TESTS = Path(__file__).resolve().parent
ROOT = TESTS.parent
SHARED = ("tests.support", "tests.fakes")


def python_files() -> list[Path]:
    return sorted(p for p in TESTS.rglob("*.py") if "node_modules" not in p.relative_to(TESTS).parts)


def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def imports(path: Path, source: str | None = None) -> Iterator[tuple[int, str]]:
    """(line, absolute module name) of every import in ``path`` (or in ``source`` as if it were that
    file), and of every ``pytest_plugins`` entry."""
    package = module_name(path) if path.name == "__init__.py" else module_name(path).rpartition(".")[0]
    text = path.read_text() if source is None else source
    for node in ast.walk(ast.parse(text, str(path))):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield node.lineno, alias.name
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                module = ".".join([*base, *([node.module] if node.module else [])])
            else:
                module = node.module or ""
            if node.module is None or module == "tests":  # ``from tests import helpers``: tests.helpers
                for alias in node.names:
                    yield node.lineno, f"{module}.{alias.name}"
            else:
                yield node.lineno, module
        elif isinstance(node, ast.Assign) and any(
            isinstance(t, ast.Name) and t.id == "pytest_plugins" for t in node.targets
        ):
            for element in ast.walk(node.value):
                if isinstance(element, ast.Constant) and isinstance(element.value, str):
                    yield node.lineno, element.value


def is_shared(module: str) -> bool:
    return any(module == shared or module.startswith(shared + ".") for shared in SHARED)


def violations(path: Path) -> list[str]:
    found = []
    for line, module in imports(path):
        if (module == "tests" or module.startswith("tests.")) and not is_shared(module):
            found.append(f"{path.relative_to(ROOT)}:{line} imports {module}")
    return sorted(set(found))


def test_no_test_module_or_conftest_imports_another() -> None:
    files = python_files()
    assert TESTS / "conftest.py" in files and len(files) > 50, files
    found = [v for path in files for v in violations(path)]
    assert not found, "import shared test code from tests.support (or tests.fakes):\n" + "\n".join(found)


def test_the_check_sees_each_kind_of_import() -> None:
    """The rule above would catch each way of importing another test module."""
    probe = TESTS / "hub" / "test_probe.py"  # never written: only its name places the relative imports
    sources = {
        "from tests.hub.test_rooms import Rest": "tests.hub.test_rooms",
        "import tests.conftest": "tests.conftest",
        "from tests import helpers": "tests.helpers",
        "from . import test_rooms": "tests.hub.test_rooms",
        "from .conftest import world": "tests.hub.conftest",
        "from ..workers.test_notify import notify": "tests.workers.test_notify",
        "def f():\n    from tests.faults.chat import Chatter": "tests.faults.chat",
        'pytest_plugins = ["tests.hub.test_multinode"]': "tests.hub.test_multinode",
    }
    for source, module in sources.items():
        named = {m for _, m in imports(probe, source)}
        assert module in named, (source, named)
        assert not all(is_shared(m) for m in named if m.startswith("tests")), source
    allowed = "from tests.support.rest import Rest\nfrom tests.fakes.apns import FakeAPNs\nfrom tests import support\n"
    assert all(is_shared(m) for _, m in imports(probe, allowed))
