"""A real S3-compatible server (moto's server mode) on loopback, for tests.

    from s3_server import s3_server, s3  # noqa: F401  (pytest fixtures)

    def test_something(s3):                # env points boto3/CityStat at the server
        s3.client.put_object(Bucket=s3.bucket, Key="x", Body=b"...")

* ``s3_server`` (session scope): `ThreadedMotoServer` on 127.0.0.1 and a free port (one per
  pytest-xdist worker, so workers never collide).
* ``s3`` (function scope): a fresh bucket on it, and the environment variables CityStat reads
  (`CITYSTAT_S3_ENDPOINT`, `AWS_ACCESS_KEY_ID`, ...) set for this test only.
"""

from __future__ import annotations

import itertools
import os
from collections.abc import Iterator
from dataclasses import dataclass

import pytest

from devtools.appserver import free_port

_buckets = itertools.count(1)
CREDENTIALS = {"AWS_ACCESS_KEY_ID": "citystat-test", "AWS_SECRET_ACCESS_KEY": "citystat-test-secret",
               "AWS_REGION": "us-east-1"}


@dataclass
class S3Server:
    endpoint: str

    def env(self) -> dict[str, str]:
        """Environment for a process that should use this server."""
        return {"CITYSTAT_S3_ENDPOINT": self.endpoint, **CREDENTIALS}


@dataclass
class S3Bucket:
    server: S3Server
    bucket: str
    client: object

    def url(self, key: str = "") -> str:
        return f"s3://{self.bucket}/{key}"

    def env(self) -> dict[str, str]:
        return self.server.env()


@pytest.fixture(scope="session")
def s3_server() -> Iterator[S3Server]:
    from moto.server import ThreadedMotoServer

    port = free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    try:
        yield S3Server(f"http://127.0.0.1:{port}")
    finally:
        server.stop()


@pytest.fixture
def s3(s3_server: S3Server, monkeypatch) -> S3Bucket:
    import boto3

    for name, value in s3_server.env().items():
        monkeypatch.setenv(name, value)
    for name in ("AWS_SESSION_TOKEN", "AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_S3", "CITYSTAT_S3_URL_STYLE",
                 "AWS_PROFILE", "CITYSTAT_ROLLUPS"):
        monkeypatch.delenv(name, raising=False)
    client = boto3.client("s3", endpoint_url=s3_server.endpoint, region_name="us-east-1",
                          aws_access_key_id=CREDENTIALS["AWS_ACCESS_KEY_ID"],
                          aws_secret_access_key=CREDENTIALS["AWS_SECRET_ACCESS_KEY"])
    bucket = f"citystat-{os.getpid()}-{next(_buckets)}"
    client.create_bucket(Bucket=bucket)
    return S3Bucket(s3_server, bucket, client)
