"""Benchmark: consume an N-record export from a real S3 server into a fresh SQLite store.

A synthetic export in the published layout (``tests/fixtures/exports.py``: gzip JSON Lines
parts of ``--part-records`` records, manifests with sizes and SHA-256) is written to a local
S3-compatible server -- SeaweedFS by default, ``--s3 moto`` for moto's server -- and consumed,
over HTTP, by ``portability.consumer`` in a fresh child process, so ``peak_rss_mb`` is the
consumer's own peak. To show that memory does not grow with the export, the same is done first
at ``--small`` records. ``--verify`` signs the manifests and consumes in verify mode (the
signature is checked once per manifest). Prints, last, one JSON line:
records, seconds, records_per_s, peak_rss_mb, peak_rss_mb_small, small_records, and details.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from portability.consumer import JOURNAL_MODES, SqliteStore, consume, open_bucket  # noqa: E402
from portability.devtools.local_s3 import LocalS3, start_moto, start_seaweedfs  # noqa: E402
from portability.signing import (  # noqa: E402
    ManifestSigner,
    new_signing_key_text,
    parse_signing_keys,
    parse_verify_keys,
)
from tests.fixtures.exports import ExportWriter, changes  # noqa: E402

PREFIX = "bench"


def peak_rss_mb() -> float:
    """This process's own peak RSS: ``VmHWM`` belongs to the address space, so unlike
    ``ru_maxrss`` it does not carry the parent's peak across fork and exec."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def child(store_path: str) -> None:
    """Consume the bucket named in the environment; print seconds, records and peak RSS."""
    destination = open_bucket(
        os.environ["BENCH_BUCKET"],
        endpoint_url=os.environ["BENCH_ENDPOINT"],
        access_key_id=os.environ["BENCH_KEY_ID"],
        secret_access_key=os.environ["BENCH_SECRET"],
    )
    keys_text = os.environ.get("BENCH_VERIFY_KEYS")
    keys = parse_verify_keys(keys_text) if keys_text else None
    baseline_mb = peak_rss_mb()
    with SqliteStore(store_path, journal_mode=os.environ["BENCH_JOURNAL"]) as store:
        started, cpu_started = time.perf_counter(), time.process_time()
        report = consume(destination, store, prefix=PREFIX, verify_keys=keys)
        seconds, cpu_seconds = time.perf_counter() - started, time.process_time() - cpu_started
    if not report.ok:
        raise SystemExit(f"consume failed: {report.problems}")
    print(
        json.dumps(
            {
                "records": report.records,
                "manifests": len(report.applied),
                "seconds": seconds,
                "cpu_seconds": cpu_seconds,
                "peak_rss_mb": peak_rss_mb(),
                "baseline_rss_mb": baseline_mb,
                "store_mb": Path(store_path).stat().st_size / 2**20,
            }
        )
    )


def write_export(
    s3: LocalS3, records: int, users: int, part_records: int, signer: ManifestSigner | None
) -> tuple[str, dict[str, Any]]:
    """A fresh bucket holding ``records`` posts changes split over ``users`` streams."""
    bucket = s3.create_bucket()
    destination = s3.destination(bucket)
    started = time.perf_counter()
    parts = size = 0
    per_user = records // users
    for index in range(users):
        user_id = f"u{index:06d}"
        count = per_user + (records % users if index == 0 else 0)
        writer = ExportWriter(
            destination,
            prefix=PREFIX,
            user_id=user_id,
            category="posts",
            records_per_part=part_records,
            compresslevel=6,
            signer=signer,
        )
        delivered = writer.deliver(changes("posts", user_id, count), count=count)
        parts += len(delivered.manifest.parts)
        size += delivered.manifest.bytes
    return bucket, {
        "parts": parts,
        "compressed_mb": round(size / 2**20, 1),
        "write_seconds": round(time.perf_counter() - started, 1),
    }


def measure(s3: LocalS3, bucket: str, journal: str, verify_keys: str) -> dict[str, Any]:
    env = {
        **os.environ,
        "BENCH_VERIFY_KEYS": verify_keys,
        "BENCH_JOURNAL": journal,
        "BENCH_BUCKET": bucket,
        "BENCH_ENDPOINT": s3.endpoint_url,
        "BENCH_KEY_ID": s3.access_key_id,
        "BENCH_SECRET": s3.secret_access_key,
    }
    with tempfile.TemporaryDirectory(prefix="bench-consume-") as folder:
        out = subprocess.run(
            [sys.executable, __file__, "--child", str(Path(folder) / "consumer.db")],
            env=env,
            capture_output=True,
            text=True,
            check=False,
        )
    if out.returncode != 0:
        raise SystemExit(f"consumer child failed:\n{out.stderr[-3000:]}")
    return dict(json.loads(out.stdout.strip().splitlines()[-1]))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--records", type=int, default=1_000_000)
    parser.add_argument("--small", type=int, default=100_000, help="0 skips the small run")
    parser.add_argument("--users", type=int, default=1, help="streams the records are split over")
    parser.add_argument("--part-records", type=int, default=250_000)
    parser.add_argument("--s3", choices=["seaweedfs", "moto"], default="seaweedfs")
    parser.add_argument("--journal", choices=JOURNAL_MODES, default="delete")
    parser.add_argument("--verify", action="store_true", help="sign, and consume verifying")
    parser.add_argument("--child", metavar="STORE", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args.child)
        return
    signer = parse_signing_keys(new_signing_key_text())[0] if args.verify else None
    verify_keys = ""
    if signer is not None:
        public = signer.public_key().to_dict()
        verify_keys = f"{public['key_id']}:{public['public_key']}"

    with tempfile.TemporaryDirectory(prefix="bench-s3-") as folder:
        s3 = start_seaweedfs(Path(folder)) if args.s3 == "seaweedfs" else start_moto()
        try:
            small: dict[str, Any] = {}
            if args.small:
                bucket, _ = write_export(s3, args.small, args.users, args.part_records, signer)
                small = measure(s3, bucket, args.journal, verify_keys)
                print(f"small: {json.dumps(small)}", file=sys.stderr)
            bucket, written = write_export(s3, args.records, args.users, args.part_records, signer)
            print(f"written: {json.dumps(written)}", file=sys.stderr)
            big = measure(s3, bucket, args.journal, verify_keys)
        finally:
            s3.stop()
    print(
        json.dumps(
            {
                "records": big["records"],
                "seconds": round(big["seconds"], 2),
                "records_per_s": round(big["records"] / big["seconds"]),
                "records_per_cpu_s": round(big["records"] / big["cpu_seconds"]),
                "peak_rss_mb": round(big["peak_rss_mb"], 1),
                "peak_rss_mb_small": round(small.get("peak_rss_mb", 0.0), 1),
                "small_records": small.get("records", 0),
                "small_records_per_s": round(small["records"] / small["seconds"]) if small else 0,
                "baseline_rss_mb": round(big["baseline_rss_mb"], 1),
                "manifests": big["manifests"],
                "users": args.users,
                "store_mb": round(big["store_mb"], 1),
                "s3": s3.kind,
                "journal": args.journal,
                "verify": args.verify,
                **written,
            }
        )
    )


if __name__ == "__main__":
    main()
