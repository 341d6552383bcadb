"""Turning the snapshot read's JSON Lines into the files of an archive.

JSON format: the lines exactly as the platform store holds them (one record per line). Text
format: one HTML page per file, one section per record, that a person opens in a browser.
"""

from __future__ import annotations

from dataclasses import dataclass
from html import escape
from typing import Any

import orjson

from portability.categories import Category

__all__ = ["Rendering", "rendering_for"]

_STYLE = (
    "body{font:1rem/1.5 system-ui,sans-serif;max-width:48rem;margin:auto;padding:1rem}"
    "section{border-top:1px solid #8886;padding:.5rem 0}"
    "dt{font-weight:600}dd{margin:0 0 .3rem 1rem}"
)


@dataclass(frozen=True)
class Rendering:
    """How one category's records become one file: its extension, what opens and closes
    the file, and how a block of JSON Lines is turned into the file's bytes."""

    extension: str
    is_text: bool

    def head(self, category: Category) -> bytes:
        if not self.is_text:
            return b""
        title = escape(category.value.replace("_", " ").capitalize())
        return (
            f'<!doctype html>\n<html lang="en"><head><meta charset="utf-8">'
            f"<title>{title}</title><style>{_STYLE}</style></head><body>\n<h1>{title}</h1>\n"
        ).encode()

    def foot(self) -> bytes:
        return b"</body></html>\n" if self.is_text else b""

    def body(self, block: bytes) -> bytes:
        if not self.is_text:
            return block
        out: list[str] = []
        for line in block.splitlines():
            record = orjson.loads(line)
            out.append(f"<section><h2>{escape(str(record['id']))}</h2><dl>")
            out.append(f"<dt>changed_at</dt><dd>{escape(str(record['changed_at']))}</dd>")
            _fields(out, record.get("data") or {}, "")
            out.append("</dl></section>\n")
        return "".join(out).encode()


def _fields(out: list[str], data: dict[str, Any], prefix: str) -> None:
    for name, value in data.items():
        if isinstance(value, dict) and value:
            _fields(out, value, f"{prefix}{name}.")
            continue
        if isinstance(value, list):
            shown = ", ".join(str(v) for v in value)
        elif value is None:
            shown = ""
        else:
            shown = str(value)
        out.append(f"<dt>{escape(prefix + name)}</dt><dd>{escape(shown)}</dd>")


def rendering_for(fmt: str) -> Rendering:
    return Rendering("html", True) if fmt == "text" else Rendering("jsonl", False)
