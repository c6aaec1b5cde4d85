"""The layer ladder of ARCHITECTURE.md holds: import-linter's contracts in pyproject.toml pass
on the package, and fail when a lower layer imports a higher one."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).parent.parent


def _lint_imports(package_parent: Path) -> subprocess.CompletedProcess[str]:
    """Run import-linter with the project's contracts against `reactive` under
    `package_parent`."""
    env = {**os.environ, "PYTHONPATH": str(package_parent)}
    return subprocess.run(
        [
            sys.executable,
            "-c",
            "import sys; from importlinter.cli import lint_imports_command;"
            " sys.exit(lint_imports_command())",
            "--config",
            str(ROOT / "pyproject.toml"),
            "--no-cache",
        ],
        capture_output=True,
        text=True,
        cwd=package_parent,
        env=env,
    )


def test_the_package_keeps_its_layers():
    result = _lint_imports(ROOT)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "0 broken" in result.stdout


def _lint_with_import_added(tmp_path: Path, module: str, line: str) -> str:
    """import-linter's report on a copy of the package where `module` gains `line`."""
    shutil.copytree(
        ROOT / "reactive", tmp_path / "reactive", ignore=shutil.ignore_patterns("__pycache__")
    )
    source = tmp_path / "reactive" / f"{module}.py"
    source.write_text(source.read_text() + f"\n{line}  # noqa\n")
    result = _lint_imports(tmp_path)
    assert result.returncode != 0
    return result.stdout


def test_a_lower_layer_importing_a_higher_one_breaks_the_contract(tmp_path):
    report = _lint_with_import_added(tmp_path, "values", "from reactive import application")
    assert "reactive.values -> reactive.application" in report


def test_the_client_may_not_reach_into_the_server(tmp_path):
    report = _lint_with_import_added(tmp_path, "client", "import reactive.database")
    assert "reactive.client -> reactive.database" in report


def test_every_module_has_a_place_on_the_ladder_and_in_the_architecture_doc():
    import tomllib

    config = tomllib.loads((ROOT / "pyproject.toml").read_text())
    contract = config["tool"]["importlinter"]["contracts"][0]
    placed = {name.strip() for layer in contract["layers"] for name in layer.split(":")}
    package = ROOT / "reactive"
    top_level = {
        path.stem if path.is_file() else path.name
        for path in package.iterdir()
        if (path.suffix == ".py" and path.stem != "__init__")
        or (path.is_dir() and (path / "__init__.py").exists())
    }
    assert top_level - placed == set(), "modules missing from [tool.importlinter] layers"
    doc = (ROOT / "ARCHITECTURE.md").read_text()
    missing = {name for name in top_level if f"`{name}`" not in doc and f"`{name}/`" not in doc}
    assert missing == set(), "modules missing from ARCHITECTURE.md's layer table"
