"""What tests that drive Node need: node itself and installed npm packages.

./scripts/test installs them (scripts/setup-tests). Missing ones still skip a test locally,
saying so, but fail it under CI (env CI set), where they must run.
"""

from __future__ import annotations

import os
import queue
import shutil
import subprocess
import tempfile
import threading
import time
from pathlib import Path
from typing import NoReturn, Self

import pytest

__all__ = [
    "MIN_NODE_MAJOR",
    "NodeScript",
    "find_node",
    "node_with_packages",
    "require_file",
    "unavailable",
]

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


class NodeScript:
    """A node script the test talks with while it runs: its stdout read line by line as it
    comes, answers written to its stdin, its stderr kept in a file, all before `deadline`."""

    def __init__(self, command: list[str], cwd: Path, timeout_s: float) -> None:
        self.deadline = time.monotonic() + timeout_s
        # A file, not a pipe: nobody reads stderr until the end, and a full pipe would block node.
        self.stderr = tempfile.TemporaryFile(mode="w+")  # noqa: SIM115 - closed in close()
        self.process = subprocess.Popen(
            command,
            cwd=cwd,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=self.stderr,
            text=True,
        )
        self.lines: queue.Queue[str | None] = queue.Queue()
        self.reader = threading.Thread(target=self._read_stdout, daemon=True)
        self.reader.start()

    def _read_stdout(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            self.lines.put(line.rstrip("\n"))
        self.lines.put(None)

    def next_line(self) -> str | None:
        """The next line the script prints; None if it ended, or is still silent at the
        deadline."""
        try:
            return self.lines.get(timeout=max(0.0, self.deadline - time.monotonic()))
        except queue.Empty:
            return None

    def answer(self, text: str) -> None:
        assert self.process.stdin is not None
        self.process.stdin.write(text + "\n")
        self.process.stdin.flush()

    def stderr_text(self) -> str:
        self.stderr.seek(0)
        return self.stderr.read()

    def close(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
        self.process.wait()
        self.reader.join(timeout=5)
        for stream in (self.process.stdin, self.process.stdout, self.stderr):
            if stream is not None:
                stream.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
