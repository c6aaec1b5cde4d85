"""Deployments every node shares: a deploy keeps its bundle in the database and records itself
in the `_deployments` system table; each node follows that table and serves the newest one.

The row is committed only after the new schema was applied (data checked, indexes backfilled),
so a node that sees it can switch at once; until then every node serves the code it has.
"""

from __future__ import annotations

import hashlib
import io
import secrets
import time
import zipfile
from dataclasses import dataclass
from pathlib import Path

from reactive.database import Database
from reactive.errors import ValidationError
from reactive.reads import ReadToken
from reactive.transaction import Transaction
from reactive.types import Value

__all__ = [
    "DEPLOYMENTS_TABLE",
    "BadDeployment",
    "Deployment",
    "bundle_project",
    "fetch_bundle",
    "newest_deployment",
    "record_deployment",
    "unpack_bundle",
]

DEPLOYMENTS_TABLE = "_deployments"
_BUNDLE_KEY = "deploy_bundle:"


class BadDeployment(ValidationError):
    """A bundle that cannot be deployed; says why."""

    short_msg = "BadDeployment"


@dataclass(frozen=True, slots=True)
class Deployment:
    version: int
    bundle_sha256: str
    functions: int
    deployed_at_ms: float


def bundle_project(root: Path) -> bytes:
    """A ZIP of what a server needs to run the project: schema.py, functions/, _generated/."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        if (root / "schema.py").is_file():
            archive.write(root / "schema.py", "schema.py")
        for folder in ("functions", "_generated"):
            for path in sorted((root / folder).rglob("*")) if (root / folder).is_dir() else []:
                if path.is_file() and "__pycache__" not in path.parts and path.suffix != ".pyc":
                    archive.write(path, path.relative_to(root).as_posix())
    return buffer.getvalue()


def unpack_bundle(bundle: bytes, base: Path) -> Path:
    """Extract a deployment bundle (a ZIP of schema.py and functions/) into a fresh directory
    under `base`; refuse unsafe or empty bundles."""
    try:
        archive = zipfile.ZipFile(io.BytesIO(bundle))
    except zipfile.BadZipFile:
        raise BadDeployment("The deployment is not a ZIP file") from None
    names = archive.namelist()
    for name in names:
        if name.startswith("/") or ".." in Path(name).parts:
            raise BadDeployment(f"Unsafe path in deployment: {name}")
    if not any(n.startswith("functions/") for n in names) and "schema.py" not in names:
        raise BadDeployment("The deployment has no schema.py or functions/")
    target = base / f"{time.strftime('%Y%m%d-%H%M%S')}-{secrets.token_hex(3)}"
    target.mkdir(parents=True)
    archive.extractall(target)
    return target


async def record_deployment(db: Database, bundle: bytes, functions: int) -> Deployment:
    """Keep `bundle` in the database and commit its `_deployments` row, numbered one past the
    newest (two concurrent deploys conflict, and the loser is re-run: numbers never repeat)."""
    sha = hashlib.sha256(bundle).hexdigest()
    await db.persistence.setdefault_meta(_BUNDLE_KEY + sha, bundle)

    async def record(tx: Transaction) -> Deployment:
        newest = await _newest(tx)
        deployment = Deployment(
            version=1 if newest is None else newest.version + 1,
            bundle_sha256=sha,
            functions=functions,
            deployed_at_ms=time.time() * 1000,
        )
        row: dict[str, Value] = {
            "version": float(deployment.version),
            "bundleSha256": sha,
            "functions": float(functions),
            "deployedAt": deployment.deployed_at_ms,
        }
        await tx.insert(DEPLOYMENTS_TABLE, row, system=True)
        return deployment

    return (await db.run_mutation(record)).value


async def newest_deployment(db: Database) -> tuple[Deployment | None, ReadToken]:
    """The newest deployment at the latest snapshot, and the read token to watch for the next."""
    result = await db.run_query(_newest)
    return result.value, result.token


async def fetch_bundle(db: Database, deployment: Deployment) -> bytes:
    bundle = await db.persistence.get_meta(_BUNDLE_KEY + deployment.bundle_sha256)
    if bundle is None:
        raise BadDeployment(
            f"The bundle of deployment {deployment.version} is missing from the database; "
            "deploy again",
        )
    return bundle


async def _newest(tx: Transaction) -> Deployment | None:
    rows = await tx.query(DEPLOYMENTS_TABLE).order("desc").take(1)
    if not rows:
        return None
    row = rows[0]
    return Deployment(
        version=int(row["version"]),
        bundle_sha256=str(row["bundleSha256"]),
        functions=int(row["functions"]),
        deployed_at_ms=float(row["deployedAt"]),
    )
