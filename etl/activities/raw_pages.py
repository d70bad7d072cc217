"""Raw records as ETLFlow stages them: a page of records as one text, and the same records back.

A page is encoded in one of two shapes, named by its first byte:

    P  the page's records pickled in one call (protocol 5), exactly as the source gave them; the
       common case. Only exact instances of the built-in types and the `datetime` module's
       types may be in it (`_ExactPickler` refuses anything else), and reading it back names no
       other class (`_ExactUnpickler`): a staged page can build data, never call code.
    L  one JSON line a record (`encode_line`): the page held something else (a dict subclass read
       through its own methods, a Decimal, an object of a source's own class)

Either way the transform reads the records it would have read in memory, so ETLFlow loads and
rejects what StreamingETLFlow does with the same records. A pickled page keeps every value as it
was: NaN, integers past 64 bits, keys that are not text and lone surrogates reach the transform,
which rejects them with its own reasons. Lines, record by record: orjson where it is exact, the
standard library where it is not. orjson refuses lone surrogates, integers past 64 bits and keys
that are not text (the line then comes from the exact encoder); it writes NaN and the infinities as
`null` (a record holding one is also left to the exact encoder, which refuses it); and it reads an
integer past 64 bits as a float. So a line the exact encoder wrote starts with a space (still valid
JSON for any reader) and is read back by the standard library; any other line is read by orjson,
and by the standard library if orjson refuses it.

Pages staged by the version before pickling start with `A` (the page as one JSON array, written
only when that was exact): they are still read, for flows in flight across an upgrade.
"""

from __future__ import annotations

import io
import json
import pickle
from collections.abc import Callable
from datetime import date, datetime, time, timedelta, timezone
from typing import Any

import orjson

from etl.core.models import all_finite  # the transform's own check: one walk, type by type

_OPTIONS = orjson.OPT_PASSTHROUGH_DATETIME | orjson.OPT_PASSTHROUGH_DATACLASS
EXACT_MARK = " "
PICKLED = b"P"
LINES = b"L"
ARRAY = b"A"  # written by earlier versions only
PROTOCOL = 5
_TIME_TYPES = (datetime, date, time, timedelta, timezone)
_ALLOWED = frozenset(_TIME_TYPES)
_BY_NAME = {("datetime", kind.__name__): kind for kind in _TIME_TYPES}


class _ExactPickler(pickle.Pickler):
    """Pickles exact built-in values (the pickler handles those without asking) and the
    `datetime` module's values; refuses anything else, subclasses of built-ins included."""

    def reducer_override(self, obj: Any) -> Any:
        kind = obj if type(obj) is type else type(obj)  # a time type itself is written by name
        if kind in _ALLOWED:
            return NotImplemented  # the type's own, standard reduction
        raise pickle.PicklingError(f"a value of type {type(obj).__name__} is not staged pickled")


class _ExactUnpickler(pickle.Unpickler):
    """Builds what `_ExactPickler` writes and nothing else: no class but the time types."""

    def find_class(self, module: str, name: str) -> Any:
        kind = _BY_NAME.get((module, name))
        if kind is None:
            raise pickle.UnpicklingError(f"a staged page names {module}.{name}; only the datetime "
                                         "module's types may be staged")
        return kind

    def persistent_load(self, pid: Any) -> Any:
        raise pickle.UnpicklingError("a staged page holds a persistent reference")


def encode_pickled(records: list[Any]) -> bytes | None:
    """The page as a `P` text, or None when a value in it is not one `_ExactPickler` writes (the
    caller then encodes it record by record, as `lines_page`)."""
    out = io.BytesIO()
    out.write(PICKLED)
    try:
        _ExactPickler(out, PROTOCOL).dump(records)
    except Exception:  # noqa: BLE001 - refused, too deep, or a hostile value: the lines judge it
        return None
    return out.getvalue()


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


def lines_page(lines: list[str]) -> bytes:
    """Lines made by `encode_line` as an `L` text."""
    return LINES + "\n".join(lines).encode()


def decode_page(text: bytes | memoryview) -> list[Any]:
    """The records of a page `encode_pickled` or `lines_page` (or an earlier version) made, in order."""
    view = memoryview(text)
    kind, body = bytes(view[:1]), view[1:]
    if kind == PICKLED:
        records = _ExactUnpickler(io.BytesIO(body)).load()
        if type(records) is not list:
            raise pickle.UnpicklingError(f"a staged page holds a {type(records).__name__}, not a list of records")
        return records
    if kind == LINES:
        if not body:
            return []
        return [decode_line(line) for line in bytes(body).decode().split("\n")]
    if kind == ARRAY:
        return orjson.loads(body)
    raise ValueError(f"a staged page starts with {kind!r}; expected {PICKLED!r}, {LINES!r} or {ARRAY!r}")
