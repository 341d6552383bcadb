"""The demo's closing advice works as printed: its commands find the demo's own state."""

from __future__ import annotations

import shlex

from portability.cli._errors import EXIT_OK
from portability.db.engine import make_engine
from portability.db.migrate import upgrade
from workers.demo import next_steps


def test_every_portability_command_the_demo_suggests_runs_against_the_demo_state(
    cli, tmp_path, monkeypatch
):
    demo_dir = tmp_path / "demo"
    engine = make_engine(f"sqlite:///{demo_dir / 'portability.db'}")  # where the demo keeps it
    upgrade(engine)
    engine.dispose()
    monkeypatch.delenv("PORTABILITY_DATABASE_URL", raising=False)
    suggested = [
        shlex.split(line)
        for line in next_steps(demo_dir, 1)
        if "portability runs list" in line or "portability doctor" in line
    ]

    results = []
    for words in suggested:
        env = dict(word.split("=", 1) for word in words if "=" in word)
        args = words[next(i for i, w in enumerate(words) if w.endswith("portability")) + 1 :]
        results.append((args, cli(*args, env=env).exit_code))

    assert results == [(["runs", "list"], EXIT_OK), (["doctor"], EXIT_OK)]
