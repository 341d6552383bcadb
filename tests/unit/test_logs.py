"""portability.logs: JSON lines carrying the bound ids, text on a terminal."""

from __future__ import annotations

import io
import logging
import threading

import orjson
import pytest

from portability import logs


class Buffer(io.StringIO):
    def configure(self, fmt: str) -> None:
        logs.configure(fmt, stream=self)


@pytest.fixture
def captured():
    """Logging configured as a process edge does, onto a buffer; the root restored after."""
    root = logging.getLogger()
    saved = (list(root.handlers), root.level)
    stream = Buffer()
    yield stream
    root.handlers[:] = saved[0]
    root.setLevel(saved[1])


def test_a_json_line_carries_the_ids_bound_around_it(captured):
    captured.configure("json")
    with logs.bound(run_id=7, app_id=3), logs.bound(category="posts"):
        logging.getLogger("portability.export").info("delivered %d records", 12)
    line = orjson.loads(captured.getvalue().splitlines()[-1])
    assert {k: line[k] for k in ("level", "logger", "message", "run_id", "app_id", "category")} == {
        "level": "info",
        "logger": "portability.export",
        "message": "delivered 12 records",
        "run_id": 7,
        "app_id": 3,
        "category": "posts",
    }


def test_ids_do_not_leak_out_of_their_context_or_into_other_threads(captured):
    captured.configure("json")
    with logs.bound(run_id=7):
        thread = threading.Thread(target=lambda: logging.getLogger("x").info("other"))
        thread.start()
        thread.join()
    logging.getLogger("x").info("after")
    lines = [orjson.loads(line) for line in captured.getvalue().splitlines()]
    assert [("run_id" in line) for line in lines] == [False, False]


def test_text_lines_show_the_ids_in_brackets(captured):
    captured.configure("text")
    with logs.bound(run_id=7, category="posts"):
        logging.getLogger("portability.export").warning("slow")
    assert (
        captured.getvalue().rstrip().endswith("portability.export: slow [run_id=7 category=posts]")
    )


def test_celerys_task_succeeded_line_is_silenced_in_favour_of_ours(captured):
    captured.configure("json")
    logging.getLogger("celery.app.trace").info("Task x succeeded in 1.7s: 'failed'")
    assert captured.getvalue() == ""


def test_an_unknown_format_is_refused():
    with pytest.raises(ValueError, match="json, text or auto"):
        logs.configure("xml")
