"""pyproject.toml declares every third-party package the production code imports, and nothing else.

The imports are read from the source (``ast``: every ``import`` and ``from ... import``, inside
functions too, and ``importlib.util.find_spec("name")``); each top-level module is mapped to the
distribution that installs it (``importlib.metadata.packages_distributions``; for a namespace
package such as ``google``, the distribution that holds the imported submodule's file).
"""

from __future__ import annotations

import ast
import importlib.metadata
import importlib.util
import sys
import tomllib
from pathlib import Path

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

ROOT = Path(__file__).resolve().parent.parent
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())
PRODUCTION = tuple(
    name.rstrip("*") for name in PYPROJECT["tool"]["setuptools"]["packages"]["find"]["include"] if name.endswith("*")
)


def imported_modules() -> dict[str, set[str]]:
    """Every absolute module the production packages import (dotted), to the files importing it."""
    found: dict[str, set[str]] = {}
    for package in PRODUCTION:
        for path in sorted((ROOT / package).rglob("*.py")):
            for node in ast.walk(ast.parse(path.read_text(), str(path))):
                if isinstance(node, ast.Import):
                    names = [alias.name for alias in node.names]
                elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                    names = [node.module]
                elif (
                    isinstance(node, ast.Call)
                    and isinstance(node.func, ast.Attribute)
                    and node.func.attr == "find_spec"
                    and node.args
                    and isinstance(node.args[0], ast.Constant)
                    and isinstance(node.args[0].value, str)
                ):
                    names = [node.args[0].value]
                else:
                    continue
                for name in names:
                    found.setdefault(name, set()).add(str(path.relative_to(ROOT)))
    return found


def third_party(modules: dict[str, set[str]]) -> dict[str, set[str]]:
    return {
        name: files
        for name, files in modules.items()
        if (top := name.split(".")[0]) not in sys.stdlib_module_names and top not in PRODUCTION and top != "__future__"
    }


def distribution_of(module: str) -> str:
    """The (canonical) name of the distribution that installs ``module``."""
    candidates = importlib.metadata.packages_distributions().get(module.split(".")[0], [])
    assert candidates, f"{module}: no installed distribution provides it"
    if len(set(candidates)) == 1:
        return canonicalize_name(candidates[0])
    spec = importlib.util.find_spec(module)  # a namespace package: whose files hold this module?
    assert spec is not None and spec.origin is not None, module
    origin = Path(spec.origin).resolve()
    for name in dict.fromkeys(candidates):
        files = importlib.metadata.distribution(name).files or []
        if any(Path(f.locate()).resolve() == origin for f in files):
            return canonicalize_name(name)
    raise AssertionError(f"{module}: none of {candidates} installed {origin}")


def declared() -> dict[str, Requirement]:
    requirements = [Requirement(line) for line in PYPROJECT["project"]["dependencies"]]
    return {canonicalize_name(r.name): r for r in requirements}


def test_every_imported_package_is_declared() -> None:
    needed: dict[str, set[str]] = {}
    for module, files in third_party(imported_modules()).items():
        needed.setdefault(distribution_of(module), set()).update(files)
    missing = {dist: sorted(files) for dist, files in needed.items() if dist not in declared()}
    assert not missing, f"imported by production code but not in pyproject.toml's dependencies: {missing}"


def test_every_declared_dependency_is_imported_by_production_code() -> None:
    """A package kept only for a benchmark or a differential test belongs in an extra."""
    imported = {distribution_of(module) for module in third_party(imported_modules())}
    unused = sorted(set(declared()) - imported)
    assert not unused, f"declared in dependencies but never imported by {PRODUCTION}: {unused} (move to an extra)"


def test_every_dependency_has_bounds_the_installed_version_meets() -> None:
    for name, requirement in declared().items():
        operators = {spec.operator for spec in requirement.specifier}
        assert ">=" in operators and "<" in operators, f"{requirement}: needs a lower and an upper bound"
        if requirement.marker is None or requirement.marker.evaluate():
            installed = importlib.metadata.version(name)
            assert requirement.specifier.contains(installed), f"{requirement}: installed {name} is {installed}"
