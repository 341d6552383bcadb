"""``make demo``: the whole system end to end on embedded defaults, in about a minute.

Seeds a small platform (SQLite unless ``PORTABILITY_DATABASE_URL`` is set), starts a local
S3-compatible server (SeaweedFS, or moto) unless ``PORTABILITY_DEMO_S3_ENDPOINT_URL`` names
one, registers an approved app, an EEA user's ongoing grant for two categories and a
destination, runs a transfer through a real Celery worker process, changes some records, runs
again, and consumes the bucket like a developer would -- then shows that the second run
carried only the changes and that the developer's copy matches the platform.
"""

from __future__ import annotations

import os
import secrets
import shutil
import subprocess
import sys
import time
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import Any

from cryptography.fernet import Fernet
from pydantic import SecretStr
from sqlalchemy import text

from portability.categories import Category
from portability.crypto import CredentialBox
from portability.db.engine import make_engine, make_session_factory
from portability.db.migrate import upgrade
from portability.db.models import RunStatus
from portability.devtools.local_s3 import LocalS3, start_local_s3
from portability.devtools.sample import register_sample_transfer
from portability.platform.mutate import MutationReport, mutate
from portability.platform.seed import seed
from portability.pseudonyms import Pseudonymizer
from portability.registry import add_user
from portability.runs import RunView, create_run, get_run
from portability.settings import Settings
from portability.signing import VerifyKey, load_signers
from portability.streams import request_replay
from workers.app import EXPORT_TASK
from workers.app import create_app as create_celery_app

CATEGORIES = [Category.PROFILE, Category.POSTS]
USERS, RECORDS_PER_USER = 20, 500


def say(message: str = "", *, end: str = "\n") -> None:
    print(message, end=end, flush=True)


def step(number: int, message: str) -> None:
    say(f"\n[{number}/9] {message}")


def main() -> int:
    started = time.monotonic()
    base = Settings()
    demo_dir = (base.data_dir / "demo").resolve()
    if demo_dir.exists():
        shutil.rmtree(demo_dir)
    demo_dir.mkdir(parents=True)
    keys = (
        b",".join(base.resolved_encryption_keys()).decode()
        if base.encryption_keys or base.encryption_key
        else Fernet.generate_key().decode()
    )
    pseudonym_key = (
        base.pseudonym_key.get_secret_value() if base.pseudonym_key else secrets.token_urlsafe(32)
    )
    # The demo's own SeaweedFS listens on http://127.0.0.1: allow that, and only that case.
    is_local_s3 = not os.environ.get("PORTABILITY_DEMO_S3_ENDPOINT_URL")
    settings = Settings(
        data_dir=demo_dir,
        encryption_keys=keys,
        pseudonym_key=pseudonym_key,
        allow_http_endpoints=is_local_s3 or base.allow_http_endpoints,
        allow_private_endpoints=is_local_s3 or base.allow_private_endpoints,
    )
    env = _worker_env(settings)
    say("portability demo — data portability, delivered effectively once")
    say(f"  database : {_safe_url(settings.resolved_database_url)}")
    say(f"  broker   : {_safe_url(settings.resolved_broker_url)}")

    step(1, "Migrating the database and seeding a small platform")
    engine = make_engine(settings)
    upgrade(engine)
    report = seed(engine, users=USERS, records_per_user=RECORDS_PER_USER, seed=2026)
    say(f"  {report.records:,} records for {len(report.user_ids)} users in {report.seconds:.2f}s")

    step(2, "Starting an S3-compatible endpoint")
    s3, bucket, stop_s3 = _destination_bucket(demo_dir)
    say(f"  {s3.kind} at {s3.endpoint_url}, bucket '{bucket}'")

    worker: subprocess.Popen[bytes] | None = None
    try:
        step(3, "Registering an approved app, an EEA user's ongoing grant and a destination")
        sessions = make_session_factory(engine)
        box = CredentialBox(settings.resolved_encryption_keys())
        user_id = report.user_ids[0]
        with sessions.begin() as session:
            _ensure_eea(session, user_id)
            sample = register_sample_transfer(
                session,
                box,
                user_id=user_id,
                categories=",".join(c.value for c in CATEGORIES),
                eligible_countries=settings.eligible_countries,
                bucket=bucket,
                endpoint_url=s3.endpoint_url,
                region=s3.region,
                access_key_id=s3.access_key_id,
                secret_access_key=s3.secret_access_key,
                prefix="portability",
                endpoint_policy=settings.endpoint_policy,
                app_name="Acme Photo Book",
                use_case="Prints a yearly photo book from the user's posts and profile.",
            )
            ids = (sample.app_id, sample.authorization_id, sample.destination_id)
        say(
            f"  app {ids[0]} approved · user {user_id} · grant {ids[1]} for "
            f"{', '.join(c.value for c in CATEGORIES)} · destination {ids[2]}"
        )

        step(4, "Starting a Celery worker process")
        worker = _start_worker(env, demo_dir)
        celery = create_celery_app(settings)

        def transfer(label: str) -> RunView:
            with sessions.begin() as session:
                run = create_run(
                    session,
                    app_id=None,
                    authorization_id=ids[1],
                    destination_id=ids[2],
                    categories=[c.value for c in CATEGORIES],
                )
                run_id = run.id
            celery.send_task(EXPORT_TASK, args=[run_id])
            return _wait_for(run_id, sessions, label)

        step(5, "First transfer: everything the grant covers")
        first = transfer("run")

        step(6, "Changing some records on the platform (updates and a delete)")
        changes = mutate(
            engine, user_id=user_id, updates=6, deletes=1, seed=7, categories=[Category.POSTS.value]
        )
        profile = mutate(
            engine,
            user_id=user_id,
            updates=1,
            deletes=0,
            seed=8,
            categories=[Category.PROFILE.value],
        )
        changes.updated.update(profile.updated)
        say(f"  {_describe_mutation(changes)}")

        step(7, "Second transfer: only what changed since each stream's position")
        second = transfer("run")

        step(8, "Support asks for a replay of the posts stream (a developer lost their copy)")
        with sessions.begin() as session:
            request_replay(
                session, app_id=None, authorization_id=ids[1], category=Category.POSTS.value
            )
        third = transfer("run")
        posts = third.per_category.get(Category.POSTS.value, {})
        say(
            f"  posts replayed in full ({posts.get('replay_reason')}): "
            f"{posts.get('records', 0):,} records, the current state; other streams had "
            "nothing new"
        )

        step(9, "Consuming the bucket as the developer would")
        pseudonyms = Pseudonymizer(settings.resolved_pseudonym_key(), ids[0], user_id)
        published = [signer.public_key() for signer in load_signers(settings)]
        matches = _consume_and_compare(s3, bucket, demo_dir, engine, user_id, pseudonyms, published)

        step(10, "The user downloads their own data (no app, no grant)")
        download_ready = _download_your_data(settings, s3, user_id)
    finally:
        if worker is not None:
            _stop_worker(worker)
        stop_s3()

    _summary(first, second, changes, matches, time.monotonic() - started, s3, bucket, demo_dir)
    succeeded = first.status == second.status == third.status == RunStatus.SUCCEEDED
    return 0 if matches and succeeded and download_ready else 1


def _download_your_data(settings: Settings, s3: LocalS3, user_id: str) -> bool:
    """A user export into its own bucket on the demo's S3, run in this process (a worker on
    the ``portability.user_exports`` queue runs it in production)."""
    from portability.db.base import utcnow
    from portability.runtime import Runtime
    from portability.user_exports import download_links, lifecycle, open_export_bucket
    from portability.user_exports.run import run_user_export

    exports = settings.model_copy(
        update={
            "user_export_endpoint_url": s3.endpoint_url,
            "user_export_bucket": s3.create_bucket("portability-user-exports"),
            "user_export_region": s3.region,
            "user_export_access_key_id": SecretStr(s3.access_key_id),
            "user_export_secret_access_key": SecretStr(s3.secret_access_key),
        }
    )
    runtime = Runtime.from_settings(exports)
    try:
        with runtime.sessions.begin() as session:
            export_id = lifecycle.request_export(
                session, exports, user_id=user_id, categories="all", now=utcnow()
            ).id
        outcome = run_user_export(runtime, export_id)
        with runtime.sessions() as session:
            row = lifecycle.get_export(session, export_id, user_id=user_id)
            if outcome.status != "ready":
                say(f"  export {export_id} is {row.status}: {row.error}")
                return False
            [link, *_] = download_links(open_export_bucket(exports), row, exports, now=utcnow())
            say(
                f"  export {export_id}: {row.records:,} records in {row.volumes} ZIP volume(s), "
                f"{row.size_bytes:,} bytes, with a README and a SHA-256 manifest"
            )
            say(f"  download link (valid until {link.expires_at:%Y-%m-%d %H:%M} UTC):")
            say(f"    {link.url[:100]}...")
        return True
    finally:
        runtime.engine.dispose()


def _worker_env(settings: Settings) -> dict[str, str]:
    env = dict(os.environ)
    env["PORTABILITY_DATA_DIR"] = str(settings.data_dir)
    env["PORTABILITY_ENCRYPTION_KEYS"] = b",".join(settings.resolved_encryption_keys()).decode()
    env["PORTABILITY_PSEUDONYM_KEY"] = settings.resolved_pseudonym_key().decode()
    env["PORTABILITY_ALLOW_HTTP_ENDPOINTS"] = str(settings.allow_http_endpoints).lower()
    env["PORTABILITY_ALLOW_PRIVATE_ENDPOINTS"] = str(settings.allow_private_endpoints).lower()
    return env


def _destination_bucket(demo_dir: Path) -> tuple[LocalS3, str, Callable[[], None]]:
    endpoint = os.environ.get("PORTABILITY_DEMO_S3_ENDPOINT_URL")
    if endpoint:
        s3 = LocalS3(
            "configured",
            endpoint,
            os.environ["PORTABILITY_DEMO_S3_ACCESS_KEY_ID"],
            os.environ["PORTABILITY_DEMO_S3_SECRET_ACCESS_KEY"],
            os.environ.get("PORTABILITY_DEMO_S3_REGION", "us-east-1"),
        )
        bucket = os.environ.get("PORTABILITY_DEMO_S3_BUCKET") or s3.create_bucket()
        return s3, bucket, lambda: None
    s3 = start_local_s3(demo_dir / "s3")
    return s3, s3.create_bucket("portability-demo"), s3.stop


def _ensure_eea(session: Any, user_id: str) -> None:
    from portability.db.models import PlatformUser

    user = session.get(PlatformUser, user_id)
    if user is None:
        add_user(session, user_id=user_id, country="DE")
    else:
        user.country = "DE"


def _start_worker(env: dict[str, str], demo_dir: Path) -> subprocess.Popen[bytes]:
    log_path = demo_dir / "worker.log"
    log = log_path.open("ab")
    worker = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "celery",
            "-A",
            "workers",
            "worker",
            "--pool=solo",
            "--loglevel=INFO",
            "--without-gossip",
            "--without-mingle",
            "--hostname=demo@%h",
        ],
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    deadline = time.monotonic() + 60
    while "ready." not in log_path.read_text(errors="replace"):
        if worker.poll() is not None or time.monotonic() > deadline:
            raise RuntimeError(f"the worker did not start; see {log_path}")
        time.sleep(0.1)
    say(f"  worker pid {worker.pid} is ready (log: {log_path})")
    return worker


def _stop_worker(worker: subprocess.Popen[bytes]) -> None:
    worker.terminate()
    try:
        worker.wait(timeout=20)
    except subprocess.TimeoutExpired:
        worker.kill()


def _wait_for(run_id: int, sessions: Any, label: str, timeout: float = 300) -> RunView:
    deadline = time.monotonic() + timeout
    last = ""
    while True:
        with sessions() as session:
            view = get_run(session, run_id, app_id=None)
        done = sum(r["records"] for r in view.per_category.values())
        line = f"  {label} {run_id}: {view.status.value:<9} {done:>7,} records"
        if line != last:
            say(line)
            last = line
        if view.status.is_final:
            if view.status != RunStatus.SUCCEEDED:
                say(f"  !! {view.failure_reason}: {view.last_error}")
            return view
        if time.monotonic() > deadline:
            raise TimeoutError(f"run {run_id} did not finish in {timeout:.0f}s")
        time.sleep(0.2)


def _describe_mutation(changes: MutationReport) -> str:
    parts = [
        f"{category}: {len(changes.updated.get(category, []))} updated, "
        f"{len(changes.deleted.get(category, []))} deleted"
        for category in CATEGORIES
    ]
    return " · ".join(parts)


def _consume_and_compare(
    s3: LocalS3,
    bucket: str,
    demo_dir: Path,
    engine: Any,
    user_id: str,
    pseudonyms: Pseudonymizer,
    verify_keys: list[VerifyKey],
) -> bool:
    """Apply the bucket into a local SQLite store with the reference consumer, then compare
    it with the platform's current state as the app must see it (user ids replaced by the
    app's pseudonyms), record by record."""
    import orjson

    from portability.consumer import SqliteStore, consume, open_bucket
    from portability.sources.sql import STATE_TABLES

    destination = open_bucket(
        bucket,
        access_key_id=s3.access_key_id,
        secret_access_key=s3.secret_access_key,
        endpoint_url=s3.endpoint_url,
        region=s3.region,
    )
    store_path = demo_dir / "consumer.db"
    with SqliteStore(str(store_path)) as store:
        # Verify mode: only manifests signed by the published keys are applied.
        report = consume(destination, store, prefix="portability", verify_keys=verify_keys)
        again = consume(destination, store, prefix="portability", verify_keys=verify_keys)
        matches = report.ok and again.records == 0
        for category in CATEGORIES:
            held = store.records(category.value, pseudonyms.owner_pseudonym)
            local = {rid: data for rid, _at, data in held}
            rewrite = partial(pseudonyms.rewrite, category.value)
            with engine.connect() as conn:
                table = STATE_TABLES[category]
                lines = conn.execute(
                    text(f"SELECT line FROM {table} WHERE user_id = :u"),
                    {"u": user_id},
                ).scalars()
                records = [orjson.loads(rewrite(line.encode() + b"\n")) for line in lines]
            platform = {r["id"]: r["data"] for r in records}
            same = local == platform
            matches = matches and same
            say(
                f"  {category.value:<16} {len(local):>6} records locally, {len(platform):>6} on "
                f"the platform: {'identical' if same else 'DIFFERENT'}"
            )
    say(
        f"  applied {report.records:,} records from the manifests "
        f"({len(report.applied)} manifests; {report.ignored_objects} unlisted objects ignored); "
        f"a second pass applied {again.records}"
    )
    say(f"  the user is {pseudonyms.owner_pseudonym} to this app: no platform user id left us")
    say(
        f"  every manifest's Ed25519 signature verified against {len(verify_keys)} published key(s)"
    )
    say(f"  local store: {store_path}")
    return matches


def _summary(
    first: RunView,
    second: RunView,
    changes: Any,
    matches: bool,
    seconds: float,
    s3: LocalS3,
    bucket: str,
    demo_dir: Path,
) -> None:
    say("\n" + "=" * 78)
    say(f"{'run':>5} {'status':<10} {'category':<16} {'records':>9} {'bytes':>11}  manifest")
    for view in (first, second):
        for category, result in sorted(view.per_category.items()):
            say(
                f"{view.id:>5} {view.status.value:<10} {category:<16} {result['records']:>9,} "
                f"{result['bytes']:>11,}  {result['manifest_key'] or '(nothing new)'}"
            )
    say("=" * 78)
    expected = _expected_changes(changes)
    carried = {c: r["records"] for c, r in second.per_category.items()}
    only_changes = all(carried.get(c, 0) == n for c, n in expected.items())
    say(
        f"second run carried {sum(carried.values())} records for {sum(expected.values())} "
        f"changes: {'only the changes ✔' if only_changes else 'MISMATCH ✘'}"
    )
    say(f"developer's local copy matches the platform: {'yes ✔' if matches else 'NO ✘'}")
    say(f"done in {seconds:.1f}s\n")
    say("Next steps:")
    for line in next_steps(demo_dir, second.id):
        say(line)


def next_steps(demo_dir: Path, run_id: int) -> list[str]:
    """The advice printed at the end: each command points at the demo's own state (its data
    dir holds the database and the broker queue), so it works as printed."""
    cli = f"PORTABILITY_DATA_DIR={demo_dir} .venv/bin/portability"
    return [
        "  make test                              # the suite, on real PostgreSQL, Redis and S3",
        f"  ls {demo_dir}",
        "                                         # demo database, broker queue, worker log",
        f"  {cli} runs list",
        "                                         # what ran, newest first",
        f"  {cli} runs show {run_id}",
        "                                         # one run: categories, positions, manifests",
        f"  {cli} doctor",
        "                                         # is everything in place?",
        "  .venv/bin/portability consume --help   # apply deliveries to your own store",
        "  README.md                              # bucket layout, record schemas, operations",
    ]


def _expected_changes(changes: MutationReport) -> dict[str, int]:
    return {
        category.value: len(changes.updated.get(category, []))
        + len(changes.deleted.get(category, []))
        for category in CATEGORIES
    }


def _safe_url(url: str) -> str:
    from sqlalchemy.engine import make_url

    return make_url(url).render_as_string(hide_password=True)


if __name__ == "__main__":
    sys.exit(main())
