"""How ETLFlow stages a page of raw records between its extract and its transform: one text a
page, and the same records back, so ETLFlow loads and rejects exactly what StreamingETLFlow
does with the same records in memory.

A page is encoded in one of two shapes, named by its first byte:

    P  the records pickled in one call (protocol 5), exactly as the source gave them; the common
       case. Only exact instances of the built-in types and the `datetime` module's types may be
       in it (`_ExactPickler` refuses anything else), and reading it back names no other class
       (`_ExactUnpickler`): a staged page can build data, never call code.
    L  one JSON line a record: the page held something else (a dict subclass read through its
       own methods, a Decimal, an object of a source's own class).

A pickled page keeps every value as it was: NaN, integers past 64 bits, keys that are not text
and lone surrogates reach the transform, which rejects them with its own reasons. Lines: orjson
where it is exact, the standard library where it is not (lone surrogates, integers past 64
bits, NaN, keys that are not text): such a line starts with a space and is read back by the
standard library. A record no line can hold is left out of the page and returned with its
reason (the transform's, when the transform rejects it too, so both flows give the same one),
to become a reject.
"""

from __future__ import annotations

import io
import json
import pickle
from datetime import date, datetime, time, timedelta, timezone
from typing import Any

import orjson

from etl.core.models import JSON_FIELDS, all_finite, json_default, key_problem, transform

_OPTIONS = orjson.OPT_PASSTHROUGH_DATETIME | orjson.OPT_PASSTHROUGH_DATACLASS
EXACT_MARK = " "
PICKLED = b"P"
LINES = b"L"
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


def encode_page(records: list[Any]) -> tuple[bytes, int, list[tuple[Any, str]]]:
    """The page as staged, how many records it holds, and the records it cannot hold, each with
    its reason (they go to the rejects)."""
    out = io.BytesIO()
    out.write(PICKLED)
    try:
        _ExactPickler(out, PROTOCOL).dump(records)
        return out.getvalue(), len(records), []
    except Exception:  # noqa: BLE001 - refused, too deep, or a hostile value: the lines judge it
        pass
    lines: list[str] = []
    unstorable: list[tuple[Any, str]] = []
    for record in records:
        try:
            lines.append(encode_record(record))
        except Exception as exc:  # noqa: BLE001 - one record never fails the page
            # The transform's reason when it rejects the record too: the one StreamingETLFlow gives.
            rejected = transform([record])[1]
            reason = rejected[0][1] if rejected else f"record cannot be stored as JSON: {_why(exc)}"
            unstorable.append((record, reason))
    return LINES + "\n".join(lines).encode(), len(lines), unstorable


def encode_record(record: Any) -> str:
    """One raw record as a JSON line. A properties object with a key that is not text is refused
    here: JSON would make `1` and `"1"` one key before the transform sees it."""
    if type(record) is not dict:  # a subclass is read as the transform reads it (its own `get`)
        _check_keys(record)
    try:
        out = orjson.dumps(record, default=json_default, option=_OPTIONS)
    except TypeError:  # orjson.JSONEncodeError: let the exact encoder write it, or refuse it
        return EXACT_MARK + _exact_json(record)
    if b"null" in out and isinstance(record, (dict, list)) and not all_finite(record):
        return EXACT_MARK + _exact_json(record)
    return out.decode()


def decode_page(text: bytes | memoryview) -> list[Any]:
    """The records of a page `encode_page` made, in order."""
    view = memoryview(text)
    kind, body = bytes(view[:1]), view[1:]
    if kind == PICKLED:
        records = _ExactUnpickler(io.BytesIO(body)).load()
        if type(records) is not list:
            raise pickle.UnpicklingError(f"a staged page holds a {type(records).__name__}, not a list of records")
        return records
    if kind == LINES:
        return [_decode_line(line) for line in bytes(body).decode().split("\n")] if body else []
    raise ValueError(f"a staged page starts with {kind!r}; expected {PICKLED!r} or {LINES!r}")


def _decode_line(line: str) -> Any:
    if line.startswith(EXACT_MARK):
        return json.loads(line)
    try:
        return orjson.loads(line)
    except orjson.JSONDecodeError:  # a lone surrogate escape, NaN: what only the standard library reads
        return json.loads(line)


def _check_keys(record: Any) -> None:
    if isinstance(record, dict):
        for name in JSON_FIELDS:
            problem = key_problem(record.get(name), name)
            if problem:
                raise ValueError(problem)


def _exact_json(record: Any) -> str:
    # Only records orjson refused (or that hold NaN) come here, and orjson refuses every key that
    # is not text: so the key check runs for these alone, before the standard library would turn
    # such a key into text.
    _check_keys(record)
    return json.dumps(record, ensure_ascii=True, default=json_default, allow_nan=False)


def _why(exc: BaseException) -> str:
    try:
        return str(exc)[:300] or type(exc).__name__
    except Exception:  # noqa: BLE001 - a hostile __str__
        return type(exc).__name__
