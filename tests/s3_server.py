"""A real S3-compatible server for tests: moto's server mode in a subprocess on loopback.

with S3Server() as s3:
    s3.endpoint_url                 # http://127.0.0.1:<port>
    bucket = s3.create_bucket()     # a fresh bucket name
    s3.env(bucket)                  # the environment that points reactive at it
"""

from __future__ import annotations

import os
import secrets
import sys
from typing import Any

import boto3
import httpx

from tests.live_server import ServerProcess

#: moto accepts any credentials; boto3 still needs some (and a region) to sign requests.
CREDENTIALS = {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_DEFAULT_REGION": "us-east-1",
}


class S3Server(ServerProcess):
    name = "moto server"
    log_prefix = "reactive-moto"

    @property
    def endpoint_url(self) -> str:
        return self.url

    def command(self) -> list[str]:
        return [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(self.port)]

    def environment(self) -> dict[str, str]:
        return {**os.environ, **CREDENTIALS}

    def is_ready(self) -> bool:
        httpx.get(f"{self.endpoint_url}/moto-api/", timeout=1.0)  # any answer will do
        return True

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
