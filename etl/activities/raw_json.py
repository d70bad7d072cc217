"""Raw records as ETLFlow stages them: a page of records as one JSON text, and the same records back.

A page is encoded in one of two shapes, named by its first byte:

    A  the page's records as one JSON array, written by orjson in a single call (about a tenth
       of what encoding the records one by one costs); the common case
    L  one JSON line a record (`encode_line`): the page held a record orjson cannot write exactly
       (see below), or a record that is not a plain dict (it is read through its own methods)

One call for the whole page is exact only when orjson is exact for every record in it, so a
page falls back to lines when orjson refuses any record or when a number in it is NaN or
infinite (orjson would write `null`). Lines, record by record: orjson where it is exact,
the standard library where it is not. orjson refuses lone surrogates, integers past 64 bits and
keys that are not text (the line then comes from the exact encoder); it writes NaN and the
infinities as `null` (a record holding one is also left to the exact encoder, which refuses it);
and it reads an integer past 64 bits as a float. So a line the exact encoder wrote starts with a
space (still valid JSON for any reader) and is read back by the standard library; any other
line is read by orjson, and by the standard library if orjson refuses it.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import orjson

from etl.core.models import all_finite  # the transform's own check: one walk, type by type

_OPTIONS = orjson.OPT_PASSTHROUGH_DATETIME | orjson.OPT_PASSTHROUGH_DATACLASS
EXACT_MARK = " "
ARRAY = b"A"
LINES = b"L"


def encode_line(record: Any, exact: Callable[[Any], str], default: Callable[[Any], Any]) -> str:
    """`record` as one JSON line. `exact` is the standard library's encoding (it raises for what
    cannot be stored); `default` turns dates and times into the text `exact` gives them."""
    try:
        out = orjson.dumps(record, default=default, option=_OPTIONS)
    except TypeError:  # orjson.JSONEncodeError: let the exact encoder write it, or refuse it
        return EXACT_MARK + exact(record)
    if b"null" in out and isinstance(record, (dict, list)) and not all_finite(record):
        return EXACT_MARK + exact(record)
    return out.decode()


def decode_line(line: str) -> Any:
    """The record `encode_line` (or an earlier, standard-library-only version) wrote."""
    if line.startswith(EXACT_MARK):
        return json.loads(line)
    try:
        return orjson.loads(line)
    except orjson.JSONDecodeError:  # a lone surrogate escape, NaN: what only the standard library reads
        return json.loads(line)


def encode_array(records: list[Any], default: Callable[[Any], Any]) -> bytes | None:
    """The page as an `A` text, or None when one orjson call would not be exact for every record
    (the caller then encodes it record by record, as `lines_page`)."""
    if not all(type(record) is dict for record in records):
        return None
    try:
        out = orjson.dumps(records, default=default, option=_OPTIONS)
    except TypeError:  # orjson.JSONEncodeError: some record needs the exact encoder, or is refused
        return None
    if b"null" in out and not all_finite(records):
        return None
    return ARRAY + out


def lines_page(lines: list[str]) -> bytes:
    """Lines made by `encode_line` as an `L` text."""
    return LINES + "\n".join(lines).encode()


def decode_page(text: bytes | memoryview) -> list[Any]:
    """The records of a page `encode_array` or `lines_page` made, in order."""
    view = memoryview(text)
    kind, body = bytes(view[:1]), view[1:]
    if kind == ARRAY:
        return orjson.loads(body)
    if kind == LINES:
        if not body:
            return []
        return [decode_line(line) for line in bytes(body).decode().split("\n")]
    raise ValueError(f"a staged page starts with {kind!r}; expected {ARRAY!r} or {LINES!r}")
