"""A real S3-compatible server for tests: moto's server mode in a subprocess on loopback.

with S3Server() as s3:
    s3.endpoint_url                 # http://127.0.0.1:<port>
    bucket = s3.create_bucket()     # a fresh bucket name
    s3.env(bucket)                  # the environment that points reactive at it
"""

from __future__ import annotations

import os
import secrets
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import boto3
import httpx

from tests.live_server import free_port

#: moto accepts any credentials; boto3 still needs some (and a region) to sign requests.
CREDENTIALS = {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_DEFAULT_REGION": "us-east-1",
}


class S3Server:
    def __init__(self) -> None:
        self.port = free_port()
        self.process: subprocess.Popen[bytes] | None = None
        self.log_path = Path(os.environ.get("TMPDIR", "/tmp")) / f"reactive-moto-{self.port}.log"

    @property
    def endpoint_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, timeout: float = 30.0) -> None:
        command = [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(self.port)]
        with self.log_path.open("ab") as log:
            self.process = subprocess.Popen(
                command, env={**os.environ, **CREDENTIALS}, stdout=log, stderr=log
            )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"moto server exited early:\n{self.log()}")
            try:
                httpx.get(f"{self.endpoint_url}/moto-api/", timeout=1.0)
                return
            except httpx.HTTPError:
                time.sleep(0.05)
        raise RuntimeError(f"moto server did not start in {timeout}s:\n{self.log()}")

    def stop(self) -> None:
        if self.process is None:
            return
        self.process.terminate()
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        self.process = None

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def client(self) -> Any:
        """A boto3 client of this server, to look at the bucket from outside reactive."""
        return boto3.session.Session(
            aws_access_key_id=CREDENTIALS["AWS_ACCESS_KEY_ID"],
            aws_secret_access_key=CREDENTIALS["AWS_SECRET_ACCESS_KEY"],
            region_name=CREDENTIALS["AWS_DEFAULT_REGION"],
        ).client("s3", endpoint_url=self.endpoint_url)

    def create_bucket(self) -> str:
        name = f"files-{secrets.token_hex(6)}"
        client = self.client()
        try:
            client.create_bucket(Bucket=name)
        finally:
            client.close()
        return name

    def object_names(self, bucket: str) -> list[str]:
        client = self.client()
        try:
            listed = client.list_objects_v2(Bucket=bucket)
        finally:
            client.close()
        return sorted(item["Key"] for item in listed.get("Contents", []))

    def env(self, bucket: str, **extra: str) -> dict[str, str]:
        """The environment of a reactive server keeping its files in `bucket`."""
        return {
            **CREDENTIALS,
            "REACTIVE_STORAGE_S3_BUCKET": bucket,
            "REACTIVE_STORAGE_S3_ENDPOINT_URL": self.endpoint_url,
            **extra,
        }

    def __enter__(self) -> S3Server:
        self.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self.stop()
