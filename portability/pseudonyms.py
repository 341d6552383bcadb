"""Per-app user pseudonyms: the only user ids that leave the system.

An app knows each user under ``pseudonym(key, app_id, user_id)``: ``p_`` and 26 lower-case
base32 characters (128 bits) of HMAC-SHA256 over (app, platform user id), keyed with the
``PORTABILITY_PSEUDONYM_KEY`` secret. It is stable for one app across runs, grants and
destinations, and unrelated between apps, so two apps cannot link one person by id. Lower-case
base32 keeps it safe as a folder name on case-insensitive file systems, and holding no ``0``,
``1``, ``8`` or ``9`` it never contains an id like ``u000001`` by chance. Changing the key
changes every pseudonym: every app would see all its users as new people. Keep it for ever.

``Pseudonymizer.rewrite`` puts pseudonyms into a pre-rendered block of JSON Lines records (a
``ChangeBatch.body``) without parsing a record. The rules, which the unit tests hold equal to a
parse-and-replace reference:

1. The category's user fields name users, whoever they are, and their string values become
   those users' pseudonyms: ``peer_user_id`` and ``sender_id`` of a direct message, the
   ``target`` of a ``follow`` activity.
2. Every other JSON string value (never a key, never part of a longer string) that equals the
   owner's platform id becomes the owner's pseudonym, wherever it is: a profile's record id and
   ``user_id``, and any field that holds exactly that id. The values of ``op``, ``kind`` and
   ``privacy`` are left alone: they are the format's own words, and a user may be called
   ``like``.

Free text that merely contains an id (``"hi u000001"``) is left as it is.

How, fast (``bench/pseudonyms.py``): the user fields are found by scanning for a literal (a
``re.split`` on a message's ``peer_user_id``/``sender_id`` pair, ``bytes.find`` of
``"kind":"follow"``) and replaced from a cache (a stream names few distinct users); then one
``bytes.replace`` of the owner's quoted id. Both rely on how ``records.change_line`` writes a
line: compact orjson, data keys in the published order (``store.write_changes`` enforces it).
A block where a check finds otherwise is parsed and rewritten line by line instead: slower,
never wrong. The checks: every message upsert has its pair, a follow's next field is its
``target``, user fields hold plain user ids (no JSON escape), and the owner's id is neither a
key, nor after an escaped quote, nor one of the format's words.
"""

from __future__ import annotations

import hashlib
import hmac
import re
from typing import Any

import orjson

from portability.categories import Category
from portability.errors import ValidationError
from portability.platform.shapes import ACTIVITY_KINDS, PRIVACY_LEVELS
from portability.records import Op

__all__ = ["PSEUDONYM_PATTERN", "Pseudonymizer", "pseudonym"]

#: What every pseudonym matches (also a valid record id and object key segment).
PSEUDONYM_PATTERN = r"^p_[a-z2-7]{26}$"

_USER_ID = re.compile(r"^[A-Za-z0-9_-]{1,64}\Z")
_CONTEXT = b"portability-pseudonym-v1"
#: A user id's characters (possessive: faster). Any other value is left to the parsing path.
_PLAIN = rb"[A-Za-z0-9_-]*+"
_FOLLOW = b'"kind":"follow"'
_TARGET = re.compile(rb',"target":"(%s)"' % _PLAIN)
_NULL_TARGET = b',"target":null'
_PAIR = rb'"peer_user_id":"%s","sender_id":"%s"'
_MESSAGE = re.compile(_PAIR % (b"(" + _PLAIN + b")", b"(" + _PLAIN + b")"))
_MESSAGES = re.compile(b"(" + _PAIR % (_PLAIN, _PLAIN) + b")")
_SENDER = b'"sender_id":"'
#: Keys whose values the owner rule never rewrites: the record format's enumerations.
_WORD_KEYS = frozenset({"op", "kind", "privacy"})
_FORMAT_WORDS = frozenset({*(op.value for op in Op), *ACTIVITY_KINDS, *PRIVACY_LEVELS})
_CACHE_LIMIT = 100_000
#: HMAC's inner and outer pads (RFC 2104) as ``bytes.translate`` tables.
_IPAD = bytes(byte ^ 0x36 for byte in range(256))
_OPAD = bytes(byte ^ 0x5C for byte in range(256))
#: Lower-case RFC 4648 base32 of every 10-bit value: two characters per look-up (the
#: standard library's ``base64.b32encode`` is pure Python, and costs more than the HMAC).
_BASE32_PAIRS = tuple(
    a + b for a in "abcdefghijklmnopqrstuvwxyz234567" for b in "abcdefghijklmnopqrstuvwxyz234567"
)


class _IrregularBlockError(Exception):
    """A block the fast path cannot rewrite exactly: parse it instead."""


def pseudonym(key: bytes, app_id: int, user_id: str) -> str:
    """The pseudonym under which app ``app_id`` knows platform user ``user_id``.

    ``"p_" + base32(HMAC-SHA256(key, "portability-pseudonym-v1" 0x00 app_id 0x00 user_id)[:16])``
    in lower case without padding, where ``app_id`` is written in decimal and ``user_id`` in
    UTF-8. Deterministic: the same three inputs give the same value in every process.
    """
    message = b"%s\x00%d\x00%s" % (_CONTEXT, app_id, user_id.encode())
    return _encode(hmac.digest(key, message, "sha256"))


def _encode(digest: bytes) -> str:
    """``"p_"`` and lower-case base32 of the first 16 bytes of ``digest``, without padding."""
    bits = int.from_bytes(digest[:16], "big") << 2  # 26 characters of 5 bits
    pairs = _BASE32_PAIRS
    return "p_" + "".join(
        [
            pairs[bits >> 120], pairs[bits >> 110 & 1023], pairs[bits >> 100 & 1023],
            pairs[bits >> 90 & 1023], pairs[bits >> 80 & 1023], pairs[bits >> 70 & 1023],
            pairs[bits >> 60 & 1023], pairs[bits >> 50 & 1023], pairs[bits >> 40 & 1023],
            pairs[bits >> 30 & 1023], pairs[bits >> 20 & 1023], pairs[bits >> 10 & 1023],
            pairs[bits & 1023],
        ]
    )  # fmt: skip


class Pseudonymizer:
    """Rewrites the user references of one user's records for one app (see the module doc).

    One per (app, user), shareable by the category threads of a run: its cache only ever holds
    values that are the same whoever computes them. ``owner_pseudonym`` is what folder names
    and manifests carry.
    """

    __slots__ = ("_cache", "_inner", "_outer", "_owner", "_quoted", "_replaced", "app_id")

    def __init__(self, key: bytes, app_id: int, owner_user_id: str) -> None:
        if not _USER_ID.match(owner_user_id):
            raise ValidationError(
                f"user id {owner_user_id!r} must be 1-64 characters of letters, digits, '_' or '-'"
            )
        # HMAC (RFC 2104) with the key's two pads hashed once, and the inner hash already fed
        # the context and app: each user then costs two SHA-256 blocks, a quarter of
        # ``hmac.digest``'s time. ``pseudonym`` is the reference; the tests hold them equal.
        block = (hashlib.sha256(key).digest() if len(key) > 64 else key).ljust(64, b"\0")
        self._inner = hashlib.sha256(block.translate(_IPAD) + b"%s\x00%d\x00" % (_CONTEXT, app_id))
        self._outer = hashlib.sha256(block.translate(_OPAD))
        self.app_id = app_id
        self._owner = owner_user_id
        self._cache: dict[bytes, bytes] = {}
        self._quoted = b'"%s"' % owner_user_id.encode()
        self._replaced = b'"%s"' % self.pseudonym_of(owner_user_id).encode()

    @property
    def owner_pseudonym(self) -> str:
        return self._replaced[1:-1].decode("ascii")

    def pseudonym_of(self, user_id: str) -> str:
        """``pseudonym(key, app_id, user_id)``."""
        inner = self._inner.copy()
        inner.update(user_id.encode())
        outer = self._outer.copy()
        outer.update(inner.digest())
        return _encode(outer.digest())

    def rewrite(
        self, category: Category | str, body: bytes, *, upserts: int | None = None
    ) -> bytes:
        """``body`` (complete JSON Lines records of ``category``) with pseudonyms in place of
        platform user ids: the same lines, each still one valid JSON record.

        ``upserts``, the number of upserts in ``body`` (``ChangeBatch.records - deletes``),
        saves a scan of a direct-messages block when the caller knows it.
        """
        category = Category(category)
        try:
            out = self._rewrite_fields(category, body, upserts)
        except _IrregularBlockError:
            return self._rewrite_parsed(category, body)
        quoted = self._quoted
        if quoted not in out:
            return out
        if (
            self._owner in _FORMAT_WORDS
            or quoted + b":" in out
            or b"\\" + quoted in out
            # a nested "op"/"kind"/"privacy" naming the owner: the parsed rules decide
            or any(b'"%s":%s' % (key.encode(), quoted) in out for key in _WORD_KEYS)
        ):
            return self._rewrite_parsed(category, body)
        return out.replace(quoted, self._replaced)

    def _rewrite_fields(self, category: Category, body: bytes, upserts: int | None) -> bytes:
        if category is Category.DIRECT_MESSAGES:
            return self._rewrite_messages(body, upserts)
        if category is Category.ACTIVITY:
            return self._rewrite_follows(body)
        return body

    def _rewrite_messages(self, body: bytes, upserts: int | None) -> bytes:
        # re.split, not re.sub: no Python call per record, only a dict look-up.
        parts = _MESSAGES.split(body)
        pairs = parts[1::2]
        if len(pairs) != (body.count(_SENDER) if upserts is None else upserts):
            # An upsert whose sender_id does not follow its peer_user_id, or a value with an
            # escape: every message has both fields.
            raise _IrregularBlockError
        get = self._cache.get
        parts[1::2] = [get(pair) or self._message_pair(pair) for pair in pairs]
        return b"".join(parts)

    def _message_pair(self, pair: bytes) -> bytes:
        match = _MESSAGE.fullmatch(pair)
        assert match is not None  # the block was split on the same pattern
        peer, sender = self._user(match[1]), self._user(match[2])
        return self._remember(pair, b'"peer_user_id":"%s","sender_id":"%s"' % (peer, sender))

    def _rewrite_follows(self, body: bytes) -> bytes:
        # bytes.find skips to the few follows about twice as fast as a regex scan would.
        # Whatever follows a "kind":"follow" must be its target: anything else is parsed.
        pieces: list[bytes] = []
        start = 0
        found = body.find(_FOLLOW)
        while found != -1:
            at = found + len(_FOLLOW)
            match = _TARGET.match(body, at)
            if match is not None:
                field = match[0]
                pieces += (
                    body[start:at],
                    self._cache.get(field)
                    or self._remember(field, b',"target":"%s"' % self._user(match[1])),
                )
                start = match.end()
            elif not body.startswith(_NULL_TARGET, at):
                raise _IrregularBlockError  # target not next, or not a plain user id
            found = body.find(_FOLLOW, at)
        if not pieces:
            return body
        pieces.append(body[start:])
        return b"".join(pieces)

    def _user(self, raw: bytes) -> bytes:
        """The pseudonym of the user id ``raw`` (letters, digits, '_' and '-' only)."""
        return self.pseudonym_of(raw.decode()).encode()

    def _remember(self, found: bytes, out: bytes) -> bytes:
        if len(self._cache) >= _CACHE_LIMIT:
            self._cache.clear()
        self._cache[found] = out
        return out

    def _rewrite_parsed(self, category: Category, body: bytes) -> bytes:
        """The rules applied to parsed records: exact whatever the layout, and slow."""
        lines = body.split(b"\n")
        for index, line in enumerate(lines):
            if line:
                record = orjson.loads(line)
                data = record.get("data")
                if isinstance(data, dict):
                    self._replace_user_fields(category, data)
                lines[index] = orjson.dumps(self._replace_owner(record, None))
        return b"\n".join(lines)

    def _replace_user_fields(self, category: Category, data: dict[str, Any]) -> None:
        fields: tuple[str, ...] = ()
        if category is Category.DIRECT_MESSAGES:
            fields = ("peer_user_id", "sender_id")
        elif category is Category.ACTIVITY and data.get("kind") == "follow":
            fields = ("target",)
        for name in fields:
            value = data.get(name)
            if isinstance(value, str):
                data[name] = self.pseudonym_of(value)

    def _replace_owner(self, value: Any, key: str | None) -> Any:
        if isinstance(value, str):
            if value == self._owner and key not in _WORD_KEYS:
                return self.owner_pseudonym
            return value
        if isinstance(value, dict):
            return {k: self._replace_owner(v, k) for k, v in value.items()}
        if isinstance(value, list):
            return [self._replace_owner(v, None) for v in value]
        return value
