"""``portability health``: fresh heartbeat exits 0, stale or missing exits 1."""

from __future__ import annotations

import os
import time

import pytest
from typer.testing import CliRunner

from portability.cli import _root
from portability.health import Heartbeat


@pytest.fixture
def cli(tmp_path, monkeypatch):
    monkeypatch.setenv("PORTABILITY_DATA_DIR", str(tmp_path))
    _root._register()
    runner = CliRunner()
    return lambda *args: runner.invoke(_root.app, list(args))


def test_a_fresh_worker_heartbeat_is_alive(cli, tmp_path):
    Heartbeat(tmp_path / "health", "worker").touch()
    result = cli("health", "worker", "--max-age", "30")
    assert (result.exit_code, result.output.split(":")[0]) == (0, "worker alive")


def test_a_stale_scheduler_heartbeat_exits_1_saying_its_age(cli, tmp_path):
    heartbeat = Heartbeat(tmp_path / "health", "scheduler")
    heartbeat.touch()
    old = time.time() - 120
    os.utime(heartbeat.path, (old, old))
    result = cli("health", "scheduler", "--max-age", "60")
    assert result.exit_code == 1
    assert result.output.startswith("scheduler stale: last heartbeat 12")


def test_no_heartbeat_yet_is_not_alive(cli):
    result = cli("health", "worker")
    assert (result.exit_code, result.output.strip()) == (
        1,
        "worker stale: no heartbeat yet (max 60s)",
    )
