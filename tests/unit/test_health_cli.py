"""``portability health``: fresh heartbeat exits 0, stale or missing exits 1."""

from __future__ import annotations

import os
import time

import pytest

from portability.health import Heartbeat


@pytest.fixture
def health(cli, tmp_path):
    """``portability health ...`` through the real entry point, on this test's data folder."""
    return lambda *args: cli("health", *args, env={"PORTABILITY_DATA_DIR": str(tmp_path)})


def test_a_fresh_worker_heartbeat_is_alive(health, tmp_path):
    Heartbeat(tmp_path / "health", "worker").touch()
    result = health("worker", "--max-age", "30")
    assert (result.exit_code, result.stdout.split(":")[0]) == (0, "worker alive")


def test_a_stale_scheduler_heartbeat_exits_1_saying_its_age(health, tmp_path):
    heartbeat = Heartbeat(tmp_path / "health", "scheduler")
    heartbeat.touch()
    old = time.time() - 120
    os.utime(heartbeat.path, (old, old))
    result = health("scheduler", "--max-age", "60")
    assert result.exit_code == 1
    assert result.stdout.startswith("scheduler stale: last heartbeat 12")


def test_no_heartbeat_yet_is_not_alive(health):
    result = health("worker")
    assert (result.exit_code, result.stdout.strip()) == (
        1,
        "worker stale: no heartbeat yet (max 60s)",
    )
