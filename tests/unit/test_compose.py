"""docker-compose.yml and the Dockerfile, checked as far as this machine allows (no Docker
engine here): the file parses, every long-running service has a health check, no secret has
a default, every process of ours gets the same settings, and the commands our services and
their health checks run exist in this project's environment and accept their arguments."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent
OURS = ("migrate", "api", "worker", "events-worker", "user-exports-worker", "beat")
LONG_RUNNING = ("postgres", "redis", "seaweedfs", "api", "worker", "beat", "flower")
#: ``${NAME:-default}`` / ``${NAME-default}``: a variable with a fallback value.
DEFAULTED = re.compile(r"\$\{(?P<name>[A-Z0-9_]+):?-(?P<default>[^}]*)\}")
SECRET_NAME = re.compile(r"PASSWORD|SECRET|KEY|TOKEN", re.IGNORECASE)


def text() -> str:
    return (ROOT / "docker-compose.yml").read_text()


def compose() -> dict:
    return yaml.safe_load(text())


def test_the_stack_has_the_services_an_operator_runs():
    assert set(compose()["services"]) == {
        "postgres",
        "redis",
        "seaweedfs",
        "migrate",
        "api",
        "worker",
        "events-worker",
        "user-exports-worker",
        "beat",
        "flower",
    }


@pytest.mark.parametrize("name", LONG_RUNNING)
def test_every_long_running_service_has_a_health_check(name):
    check = compose()["services"][name].get("healthcheck", {})
    assert check.get("test") and check["test"][0] in {"CMD", "CMD-SHELL"}, name


def test_no_secret_has_a_default_value():
    defaulted = {m["name"]: m["default"] for m in DEFAULTED.finditer(text())}
    assert {name for name in defaulted if SECRET_NAME.search(name)} == set()


def test_every_secret_the_stack_needs_stops_it_when_missing():
    required = set(re.findall(r"\$\{([A-Z0-9_]+):\?", text()))
    assert required >= {
        "POSTGRES_PASSWORD",
        "REDIS_PASSWORD",
        "SEAWEEDFS_ACCESS_KEY",
        "SEAWEEDFS_SECRET_KEY",
        "FLOWER_PASSWORD",
        "PORTABILITY_ENCRYPTION_KEYS",
        "PORTABILITY_PSEUDONYM_KEY",
    }


def test_redis_requires_a_password_and_every_client_gives_it():
    services = compose()["services"]
    assert "--requirepass" in " ".join(services["redis"]["command"])
    urls = [services[name]["environment"]["PORTABILITY_BROKER_URL"] for name in OURS]
    urls.append(services["flower"]["environment"]["CELERY_BROKER_URL"])
    assert all(url.startswith("redis://:${REDIS_PASSWORD:?") for url in urls), urls


def test_seaweedfs_checks_signatures_against_a_configured_identity():
    import json

    service = compose()["services"]["seaweedfs"]
    config = compose()["configs"]["seaweedfs-s3"]["content"]
    identities = json.loads(config)["identities"]
    assert "-s3.config=/etc/seaweedfs/s3.json" in service["command"]
    assert service["configs"][0] == {"source": "seaweedfs-s3", "target": "/etc/seaweedfs/s3.json"}
    assert [i["credentials"][0]["secretKey"] for i in identities] == [
        "${SEAWEEDFS_SECRET_KEY:?set SEAWEEDFS_SECRET_KEY}"
    ]


def test_every_image_is_pinned_to_a_version():
    images = [s["image"] for s in compose()["services"].values() if "build" not in s]
    assert images and all(
        ":" in image and not image.endswith(":latest") and re.search(r":\d", image)
        for image in images
    ), images


def test_every_process_of_ours_gets_the_same_database_broker_and_key():
    services = compose()["services"]
    envs = [services[name]["environment"] for name in OURS]
    for key in (
        "PORTABILITY_DATABASE_URL",
        "PORTABILITY_BROKER_URL",
        "PORTABILITY_ENCRYPTION_KEYS",
        "PORTABILITY_PSEUDONYM_KEY",
        "PORTABILITY_MANIFEST_SIGNING_KEYS",
        "PORTABILITY_ALLOW_HTTP_ENDPOINTS",
        "PORTABILITY_ALLOW_PRIVATE_ENDPOINTS",
    ):
        assert len({env[key] for env in envs}) == 1, key


def test_our_services_start_after_the_migration_has_completed():
    services = compose()["services"]
    for name in ("api", "worker", "events-worker", "beat"):
        assert services[name]["depends_on"]["migrate"] == {
            "condition": "service_completed_successfully"
        }


def test_the_commands_our_services_run_are_installed():
    for name in OURS:
        executable = compose()["services"][name]["command"][0]
        assert (BIN / executable).exists() or shutil.which(executable), executable


def test_worker_metrics_come_from_a_multiprocess_folder_on_their_port():
    worker = compose()["services"]["worker"]
    folder = worker["environment"]["PROMETHEUS_MULTIPROC_DIR"]
    assert folder in worker["tmpfs"]
    assert worker["environment"]["PORTABILITY_WORKER_METRICS_PORT"] in worker["expose"]


def _run(argv: list[str]) -> subprocess.CompletedProcess[str]:
    executable = BIN / argv[0]
    assert executable.exists(), argv[0]
    env = {k: v for k, v in os.environ.items() if not k.startswith("PORTABILITY_")}
    return subprocess.run(
        [str(executable), *argv[1:]], env=env, capture_output=True, text=True, timeout=60
    )


@pytest.mark.parametrize("name", ["migrate", "worker", "beat"])
def test_our_service_commands_accept_their_arguments(name):
    # --help after the arguments: each command parses them, then prints its help and exits.
    command = compose()["services"][name]["command"]
    result = _run([*command, "--help"])
    assert result.returncode == 0, result.stderr[-2000:]


@pytest.mark.parametrize("name", ["worker", "beat"])
def test_health_checks_of_ours_run_the_installed_command(name, tmp_path):
    argv = compose()["services"][name]["healthcheck"]["test"][1:]
    env = {k: v for k, v in os.environ.items() if not k.startswith("PORTABILITY_")}
    env["PORTABILITY_DATA_DIR"] = str(tmp_path)
    result = subprocess.run(
        [str(BIN / argv[0]), *argv[1:]], env=env, capture_output=True, text=True, timeout=60
    )
    # No heartbeat in an empty data folder: the check runs and says so (exit 1).
    assert (result.returncode, result.stdout.split(":")[0]) == (1, f"{argv[2]} stale")


def test_webhook_deliveries_have_a_worker_of_their_own_and_exports_do_not_share_it():
    from workers.events import EVENTS_QUEUE

    services = compose()["services"]
    events, exports = services["events-worker"]["command"], services["worker"]["command"]
    assert events[events.index("-Q") + 1] == EVENTS_QUEUE
    assert "-Q" not in exports  # the default queue only: exports never wait behind webhooks


def test_user_exports_have_a_worker_of_their_own_on_their_queue():
    from workers.user_exports import USER_EXPORTS_QUEUE

    command = compose()["services"]["user-exports-worker"]["command"]
    assert command[command.index("-Q") + 1] == USER_EXPORTS_QUEUE


def test_the_export_bucket_is_configured_for_every_process_of_ours():
    services = compose()["services"]
    for key in ("PORTABILITY_USER_EXPORT_BUCKET", "PORTABILITY_USER_EXPORT_SECRET_ACCESS_KEY"):
        values = {services[name]["environment"][key] for name in OURS}
        assert len(values) == 1 and "" not in values, key


def test_the_image_installs_every_package_of_the_layout():
    dockerfile = (ROOT / "Dockerfile").read_text()
    for package in ("portability", "workers", "schedules"):
        assert f"COPY {package} ./{package}" in dockerfile
    assert dockerfile.count("-c constraints.txt") == 2
    assert "USER portability" in dockerfile


def test_the_constraints_pin_every_runtime_dependency():
    pins = {
        line.split("==")[0].lower().replace("_", "-")
        for line in (ROOT / "constraints.txt").read_text().splitlines()
        if "==" in line
    }
    import tomllib

    deps = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"]
    names = {re.split(r"[\[<>=!~ ]", dep, maxsplit=1)[0].lower() for dep in deps}
    assert names - pins == set()
