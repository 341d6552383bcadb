"""docker-compose.yml is checked as far as this machine allows (no Docker engine here): it
parses, wires every process to the same settings, and runs only commands that exist."""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent


def compose() -> dict:
    return yaml.safe_load((ROOT / "docker-compose.yml").read_text())


def test_the_stack_has_the_services_an_operator_runs():
    assert set(compose()["services"]) == {
        "postgres",
        "redis",
        "seaweedfs",
        "migrate",
        "worker",
        "events-worker",
        "beat",
    }


def test_every_process_of_ours_gets_the_same_database_broker_and_key():
    services = compose()["services"]
    envs = [
        services[name]["environment"] for name in ("migrate", "worker", "events-worker", "beat")
    ]
    for key in (
        "PORTABILITY_DATABASE_URL",
        "PORTABILITY_BROKER_URL",
        "PORTABILITY_ENCRYPTION_KEYS",
        "PORTABILITY_PSEUDONYM_KEY",
        "PORTABILITY_ALLOW_HTTP_ENDPOINTS",
        "PORTABILITY_ALLOW_PRIVATE_ENDPOINTS",
    ):
        assert len({env[key] for env in envs}) == 1, key


def test_workers_and_beat_start_after_the_migration_has_completed():
    services = compose()["services"]
    for name in ("worker", "events-worker", "beat"):
        assert services[name]["depends_on"]["migrate"] == {
            "condition": "service_completed_successfully"
        }


def test_the_commands_our_services_run_are_installed():
    for name in ("migrate", "worker", "events-worker", "beat"):
        executable = compose()["services"][name]["command"][0]
        assert (BIN / executable).exists() or shutil.which(executable), executable


def test_webhook_deliveries_have_a_worker_of_their_own_and_exports_do_not_share_it():
    from workers.events import EVENTS_QUEUE

    services = compose()["services"]
    events, exports = services["events-worker"]["command"], services["worker"]["command"]
    assert events[events.index("-Q") + 1] == EVENTS_QUEUE
    assert "-Q" not in exports  # the default queue only: exports never wait behind webhooks


def test_the_image_installs_every_package_of_the_layout():
    dockerfile = (ROOT / "Dockerfile").read_text()
    for package in ("portability", "workers", "schedules"):
        assert f"COPY {package} ./{package}" in dockerfile
