"""Real server processes for the attacks: `reactive dev` (DevServer) and the ASGI app under
uvicorn (LiveServer), serving a copy of tests/projects/uploads, or the seed app (`seed_server`:
Clerk sign-in from a LocalIssuer, signed Clerk webhooks)."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.adversarial.attacks import SeedServer
from tests.browser.dev_server import DevServer
from tests.live_server import LiveServer
from tests.oidc_issuer import LocalIssuer
from tests.seed_helpers import ROOT, new_webhook_secret

UPLOADS = Path(__file__).resolve().parent.parent / "projects" / "uploads"

#: Settings the attacks assume, whatever the environment running the tests says: no admin key
#: (the dev server is as open as it gets) and no configured public URL.
CLEAN_ENV = {"REACTIVE_ADMIN_KEY": "", "REACTIVE_URL": ""}


@pytest.fixture
def project(tmp_path: Path) -> Path:
    target = tmp_path / "uploads"
    shutil.copytree(UPLOADS, target, ignore=shutil.ignore_patterns("__pycache__"))
    return target


@pytest.fixture
def deploy_dir(tmp_path: Path) -> Path:
    return tmp_path / "deploys"


@pytest.fixture
def dev_server(project: Path, tmp_path: Path, deploy_dir: Path) -> Iterator[DevServer]:
    """`reactive dev` without an admin key, as a developer runs it."""
    env = {**CLEAN_ENV, "REACTIVE_DEPLOY_DIR": str(deploy_dir)}
    with DevServer(project, f"sqlite:///{tmp_path}/dev.db", env=env) as server:
        yield server


@pytest.fixture
def blob_dir(tmp_path: Path) -> Path:
    return tmp_path / "blobs"


@pytest.fixture
def storage_server(store_url: str, project: Path, blob_dir: Path) -> Iterator[LiveServer]:
    """A production server (uvicorn) on `store_url`, its file bytes in `blob_dir`."""
    with LiveServer(project, store_url, env=storage_env(blob_dir), dev=False) as server:
        yield server


def storage_env(blob_dir: Path, **extra: str) -> dict[str, str]:
    return {**CLEAN_ENV, "REACTIVE_STORAGE_DIR": str(blob_dir), **extra}


@pytest.fixture
def seed_server(store_url: str, blob_dir: Path, issuer: LocalIssuer) -> Iterator[SeedServer]:
    """The seed app (the repository's schema.py and functions/) served in production mode on
    `store_url`, trusting `issuer` as Clerk and signing webhooks with a fresh secret."""
    secret = new_webhook_secret()
    clerk = {"CLERK_JWT_ISSUER_DOMAIN": issuer.url, "CLERK_WEBHOOK_SECRET": secret}
    with LiveServer(ROOT, store_url, env=storage_env(blob_dir, **clerk), dev=False) as server:
        yield SeedServer(server.url, issuer, secret)


@pytest.fixture
def still_serving(server: LiveServer) -> Iterator[None]:
    """After the test, the module's `server` still answers /health."""
    yield
    assert httpx.get(f"{server.url}/health", timeout=5).status_code == 200
