"""What the package declares: every library its code imports is a dependency of its own."""

from __future__ import annotations

import ast
import re
import sys
import tomllib
from importlib.metadata import packages_distributions
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("bot", "handlers", "models")


def _imported_modules() -> set[str]:
    """Top-level names of every module the package's code imports (at any depth)."""
    found: set[str] = set()
    for package in PACKAGES:
        for path in (ROOT / package).rglob("*.py"):
            for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
                if isinstance(node, ast.Import):
                    found.update(alias.name.partition(".")[0] for alias in node.names)
                elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
                    found.add(node.module.partition(".")[0])
    return found


def _declared() -> set[str]:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    names = (re.match(r"[A-Za-z0-9_.-]+", spec) for spec in project["dependencies"])
    return {_canonical(name.group(0)) for name in names if name}


def _canonical(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def test_every_library_the_code_imports_is_declared() -> None:
    """yarl (the form parser), requests (Mailchimp's errors) and pydantic (settings) were
    imported but came only as other packages' dependencies: a release of aiohttp,
    mailchimp-marketing or pydantic-settings that dropped or pinned them differently would
    break the bot with nothing in pyproject.toml to say why."""
    distributions = packages_distributions()
    ours = set(PACKAGES)
    third_party = {
        module for module in _imported_modules()
        if module not in sys.stdlib_module_names and module not in ours
    }  # fmt: skip
    undeclared = {
        module: sorted(distributions.get(module, ["?"]))
        for module in third_party
        if not {_canonical(d) for d in distributions.get(module, [])} & _declared()
    }
    assert undeclared == {}, undeclared
