"""What tests that drive Node need: node itself and installed npm packages.

./scripts/test installs them (scripts/setup-tests). Missing ones still skip a test locally,
saying so, but fail it under CI (env CI set), where they must run.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path
from typing import NoReturn

import pytest

__all__ = ["MIN_NODE_MAJOR", "find_node", "node_with_packages", "require_file", "unavailable"]

MIN_NODE_MAJOR = 20
REPO = Path(__file__).resolve().parent.parent


def unavailable(reason: str, what: str) -> NoReturn:
    if os.environ.get("CI"):
        pytest.fail(f"{reason} (CI is set, so {what} must run)", pytrace=False)
    pytest.skip(f"{reason} (run ./scripts/test: it installs the test tools, or says how)")


def find_node(what: str) -> str:
    """The `node` executable, at least MIN_NODE_MAJOR."""
    executable = shutil.which("node")
    if executable is None:
        unavailable("`node` is not on PATH", what)
    version = subprocess.run([executable, "--version"], capture_output=True, text=True).stdout
    if int(version.strip().lstrip("v").split(".")[0]) < MIN_NODE_MAJOR:
        unavailable(f"node {version.strip()} is older than {MIN_NODE_MAJOR}", what)
    return executable


def require_file(path: Path, fix: str, what: str) -> None:
    """`path` (an installed package's file, a browser) must exist; `fix` says how."""
    if not path.is_file():
        unavailable(f"{path} is missing: {fix}", what)


def node_with_packages(what: str, package_dir: Path, *packages: str) -> str:
    """The `node` executable, once `packages` are installed in `package_dir`'s node_modules
    (by `npm ci --prefix <package_dir>`)."""
    executable = find_node(what)
    fix = f"npm ci --prefix {package_dir.resolve().relative_to(REPO)}"
    for package in packages:
        require_file(package_dir / "node_modules" / package / "package.json", fix, what)
    return executable
