"""The real `reactive dev` in a subprocess on loopback, for tests: the app plus the dev identity
provider and the taskboard page.

    with DevServer(project_dir, database_url) as server:
        ... server.url ...   # http://127.0.0.1:<port>; the issuer is server.url + "/_dev/auth"
"""

from __future__ import annotations

import sys

from tests.live_server import LiveServer

__all__ = ["DevServer"]


class DevServer(LiveServer):
    """`reactive dev` for the project, in a subprocess; its output goes to `log_path`."""

    def command(self) -> list[str]:
        return [
            sys.executable,
            "-m",
            "reactive.tools.cli",
            "dev",
            "--dir",
            str(self.project),
            "--db",
            self.database_url,
            "--port",
            str(self.port),
        ]
