"""`reactive check`: index and auth coverage of every registered function, by static analysis.
Loads the project, runs each handler through the interpreter and gathers the report.
Invariant: a column passes only when the analysis shows it does; what it cannot follow (dynamic
dispatch, ctx handed to code outside the project) is "unknown", and unknown fails.
"""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Iterator
from pathlib import Path

from reactive.functions import load_project
from reactive.tools.check.interpreter import Analyzer, check_function
from reactive.tools.check.report import CheckReport, Finding, FunctionCheck, Location, Verdict
from reactive.tools.check.source_index import PACKAGE, SourceIndex

__all__ = ["CheckReport", "Finding", "FunctionCheck", "Location", "Verdict", "run_check"]


def run_check(root: str | Path) -> CheckReport:
    """Load the project at `root` (as `reactive dev` does) and check each registered function."""
    root = Path(root).resolve()
    with _isolated_imports():
        project = load_project(root, package=PACKAGE)
    analyzer = Analyzer(SourceIndex.read(root))
    checks = tuple(check_function(analyzer, path, fn) for path, fn in project.registry)
    checked = [check for check in checks if check.auth is Verdict.YES]
    helpers = sorted({name for c in checked for finding in c.auth_findings for name in finding.via})
    return CheckReport(checks, tuple(helpers))


@contextlib.contextmanager
def _isolated_imports() -> Iterator[None]:
    """Undo what loading the project did to sys.path and sys.modules: the check only needs
    the handlers' code objects, and the caller's own imports must stay as they were."""
    path = list(sys.path)
    ours = {name: module for name, module in sys.modules.items() if _project_module(name)}
    try:
        yield
    finally:
        sys.path[:] = path
        for name in [name for name in sys.modules if _project_module(name)]:
            del sys.modules[name]
        sys.modules.update(ours)


def _project_module(name: str) -> bool:
    return name in (PACKAGE, "schema") or name.startswith(f"{PACKAGE}.")
