"""`portability consume`: the reference consumer, run from the developer's side of the bucket.

It needs only the developer's bucket and keys -- none of our settings, no database of ours.
Progress goes to stderr (silent with ``--json``); the report of each pass goes to stdout. A
pass that stopped a stream on a gap or a refused object exits with the integrity exit code
after the report; ``--watch`` reports such problems and keeps polling. With ``--verify-key``
or ``--verify-keys`` only manifests signed by one of the keys are applied.
"""

from __future__ import annotations

import sys
import threading
import time
from enum import StrEnum
from pathlib import Path

import orjson
import typer

from portability.cli._context import STATE
from portability.cli._logging import configure_logging
from portability.consumer import (
    DEFAULT_LIMITS,
    JOURNAL_MODES,
    Consumer,
    ConsumeReport,
    ConsumerLimits,
    JsonlStore,
    Progress,
    SqliteStore,
    open_bucket,
)
from portability.consumer._limits import MiB
from portability.errors import DestinationTransientError, IntegrityError, ValidationError
from portability.signing import VerifyKey, parse_verify_keys

__all__ = ["register"]

#: Seconds between two progress lines within one long manifest.
PROGRESS_EVERY = 2.0


class StoreFormat(StrEnum):
    SQLITE = "sqlite"
    JSONL = "jsonl"


def register(root: typer.Typer) -> None:
    root.command("consume")(consume)


def consume(
    bucket: str = typer.Option(..., "--bucket", help="The bucket our exports are delivered to."),
    endpoint_url: str | None = typer.Option(
        None, "--endpoint-url", help="S3-compatible endpoint; AWS S3 when omitted."
    ),
    prefix: str = typer.Option("", "--prefix", help="The destination's prefix inside the bucket."),
    access_key_id: str = typer.Option(
        ..., "--access-key-id", envvar="AWS_ACCESS_KEY_ID", show_envvar=True
    ),
    secret_access_key: str = typer.Option(
        ...,
        "--secret-access-key",
        envvar="AWS_SECRET_ACCESS_KEY",
        show_envvar=True,
        help="Prefer the environment variable: a command line is visible to other users.",
    ),
    region: str = typer.Option("us-east-1", "--region"),
    addressing_style: str = typer.Option("path", "--addressing-style", help="path|virtual|auto"),
    store: Path = typer.Option(
        Path("consumer.db"),
        "--store",
        help="SQLite file: the positions and current records (the consumer's memory).",
    ),
    store_format: StoreFormat = typer.Option(
        StoreFormat.SQLITE,
        "--format",
        case_sensitive=False,
        help="sqlite: one table per category; jsonl: also a snapshot per user and category.",
    ),
    journal: str = typer.Option(
        "delete",
        "--journal",
        help="SQLite journal: delete (fastest for large deliveries) or wal (readers never wait).",
    ),
    out: Path | None = typer.Option(
        None, "--out", help="Folder for --format jsonl snapshots: {out}/{category}/{user}.jsonl."
    ),
    watch: bool = typer.Option(False, "--watch", help="Keep polling for new manifests."),
    interval: float = typer.Option(30.0, "--interval", min=0.1, help="Seconds between polls."),
    json_output: bool = typer.Option(False, "--json", help="One JSON report per pass on stdout."),
    verify_key_files: list[Path] | None = typer.Option(
        None,
        "--verify-key",
        help="File of manifest public keys (KEY_ID:BASE64 lines, or the JSON of GET "
        "/v1/manifest-keys); repeatable. Unsigned or forged manifests are then refused.",
    ),
    verify_keys_text: str | None = typer.Option(
        None, "--verify-keys", help="Manifest public keys as text: KEY_ID:BASE64,..."
    ),
    max_manifest_mib: int = typer.Option(
        DEFAULT_LIMITS.max_manifest_bytes // MiB, "--max-manifest-mib", min=1
    ),
    max_part_mib: int = typer.Option(
        DEFAULT_LIMITS.max_part_bytes // MiB, "--max-part-mib", min=1, help="Stored size."
    ),
    max_part_inflated_mib: int = typer.Option(
        DEFAULT_LIMITS.max_part_inflated_bytes // MiB, "--max-part-inflated-mib", min=1
    ),
    max_inflation_ratio: int = typer.Option(
        DEFAULT_LIMITS.max_inflation_ratio, "--max-inflation-ratio", min=1
    ),
    max_line_mib: int = typer.Option(DEFAULT_LIMITS.max_line_bytes // MiB, "--max-line-mib", min=1),
) -> None:
    """Verify and apply every new manifest in your bucket into a local store, exactly once."""
    verify_keys = _verify_keys(verify_key_files or [], verify_keys_text)
    limits = ConsumerLimits(
        max_line_bytes=max_line_mib * MiB,
        max_part_bytes=max_part_mib * MiB,
        max_part_inflated_bytes=max_part_inflated_mib * MiB,
        max_inflation_ratio=max_inflation_ratio,
        max_manifest_bytes=max_manifest_mib * MiB,
    )
    if store_format is StoreFormat.JSONL and out is None:
        raise ValidationError("--format jsonl needs --out DIR for the snapshots")
    if journal not in JOURNAL_MODES:
        raise ValidationError(f"--journal {journal!r} must be one of {', '.join(JOURNAL_MODES)}")
    destination = open_bucket(
        bucket,
        access_key_id=access_key_id,
        secret_access_key=secret_access_key,
        endpoint_url=endpoint_url,
        region=region,
        addressing_style=addressing_style,
    )
    local = (
        JsonlStore(store, out, journal_mode=journal)
        if store_format is StoreFormat.JSONL and out is not None
        else SqliteStore(store, journal_mode=journal)
    )
    progress = None if json_output else _ProgressPrinter()
    consumer = Consumer(
        destination,
        local,
        prefix=prefix,
        on_progress=progress,
        limits=limits,
        verify_keys=verify_keys,
    )
    try:
        if watch:
            configure_logging(debug=STATE.debug, long_running=True)
            consumer.watch(
                interval,
                stop=threading.Event(),
                on_report=lambda report: _print_report(report, json_output),
                on_transient=_print_transient,
            )
            return
        report = consumer.run_once()
        _print_report(report, json_output)
    finally:
        local.close()
    if not report.ok:
        first = report.problems[0]
        raise IntegrityError(f"{len(report.problems)} stream(s) stopped; first: {first.message}")


def _verify_keys(files: list[Path], text: str | None) -> list[VerifyKey] | None:
    """The public keys to verify manifests with, or ``None`` (no verification) when none given."""
    if not files and text is None:
        return None
    keys: list[VerifyKey] = []
    for path in files:
        try:
            content = path.read_text()
        except (OSError, UnicodeDecodeError) as exc:
            raise ValidationError(f"--verify-key {path}: cannot be read ({exc})") from None
        try:
            keys.extend(parse_verify_keys(content))
        except ValidationError as exc:
            raise ValidationError(f"--verify-key {path}: {exc}") from None
    if text is not None:
        try:
            keys.extend(parse_verify_keys(text))
        except ValidationError as exc:
            raise ValidationError(f"--verify-keys: {exc}") from None
    return keys


class _ProgressPrinter:
    """Prints when a manifest is done, and every few seconds inside a long one."""

    def __init__(self) -> None:
        self._last = 0.0

    def __call__(self, progress: Progress) -> None:
        now = time.monotonic()
        done = progress.parts_done == progress.parts_total
        if not done and now - self._last < PROGRESS_EVERY:
            return
        self._last = now
        rate = progress.records_done / progress.seconds if progress.seconds > 0 else 0.0
        state = "applied" if done else "applying"
        print(
            f"{state} {progress.stream} #{progress.sequence}: part {progress.parts_done}/"
            f"{progress.parts_total}, {progress.records_done:,}/{progress.records_total:,} "
            f"records, {rate:,.0f} records/s",
            file=sys.stderr,
        )


def _print_report(report: ConsumeReport, json_output: bool) -> None:
    if json_output:
        sys.stdout.write(orjson.dumps(report.to_dict()).decode() + "\n")
        sys.stdout.flush()
        return
    data = report.to_dict()
    print(
        f"applied {data['manifests_applied']} manifest(s), {data['records']:,} records "
        f"({data['upserts']:,} upserts, {data['deletes']:,} deletes) from {data['streams']} "
        f"stream(s) in {data['seconds']:.1f} s; {data['manifests_already_applied']} already "
        f"applied, {data['manifests_superseded']} superseded by a replay"
    )
    if report.ignored_objects:
        print(
            f"ignored {report.ignored_objects} object(s) that no manifest lists "
            f"(leftovers of interrupted deliveries), e.g. {report.ignored_sample[0]}"
        )
    for problem in report.problems:
        print(f"{problem.kind}: {problem.message}", file=sys.stderr)
    sys.stdout.flush()


def _print_transient(exc: DestinationTransientError) -> None:
    print(f"bucket unavailable, will retry at the next poll: {exc}", file=sys.stderr)
