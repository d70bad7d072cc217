"""One classification of errors for every activity: what a retry can fix is retried (at the pace
the other side asked for), what it cannot fails the flow at once, as a non-retryable
`ApplicationError` whose `type` is the error's class name (the UI shows the same stable name)
and whose message names the flow, the batch or chunk, and what to fix.

    the project's errors        `EtlError.retryable` decides; `SourceUnavailable` keeps its delay
    PostgreSQL (by SQLSTATE)    permanent: 22 data, 23 integrity (but 23505, the expected conflict
                                of concurrent DDL), 28 authorisation, 3D/3F no such database or
                                schema, 42 syntax and undefined objects, 0A, 54 program limits;
                                transient: connection loss (no code, 08), 40 serialisation and
                                deadlocks, 55P03 lock timeouts, 57 admin shutdown and cancels,
                                53 resources, and anything else
    HTTP (httpx)                permanent: an invalid URL or scheme, 4xx other than 408/425/429;
                                transient: transport errors, 408, 425, 429, 5xx
    anything else               transient, but only `UNKNOWN_ATTEMPTS` times: then permanent

Whatever the activity raises leaves as an `ApplicationError`: an exception asyncio cannot carry
(a `StopIteration` raised into a future leaves the activity hanging for good) never reaches it.
"""

from __future__ import annotations

import functools
import logging
from contextlib import nullcontext
from dataclasses import dataclass
from datetime import timedelta
from typing import Any, Callable, TypeVar

from temporalio import activity
from temporalio.exceptions import ApplicationError

from etl.core.errors import EtlError, SourceUnavailable, shown
from etl.store.staging import StagedBatchMissing

F = TypeVar("F", bound=Callable[..., Any])

#: Attempts after which an error nobody classified is taken as permanent (about two minutes of
#: backoff under the workflows' retry policy), rather than the policy's 50 over three quarters
#: of an hour.
UNKNOWN_ATTEMPTS = 8

_PERMANENT_SQLSTATE_CLASSES = {
    "22": "a value PostgreSQL cannot store (data exception): report it with the record, the transform should "
          "have rejected it",
    "23": "an integrity constraint refused a row: check that EVENTS_TABLE and its companions were created by "
          "this project",
    "28": "PostgreSQL refused the credentials: fix DB_USER/DB_PASSWORD or DATABASE_URL",
    "3D": "the database does not exist: fix DB_NAME or DATABASE_URL",
    "3F": "the schema does not exist: fix EVENTS_TABLE or the search_path",
    "42": "the statement does not fit this database (a syntax error, a missing table or column, no "
          "privilege): check EVENTS_TABLE, and that its tables were created by this version",
    "0A": "PostgreSQL does not support this statement: check the server version",
    "54": "a value passes a PostgreSQL limit (too long, too deep): report it with the record",
}
#: Within a permanent class, the codes a retry can get past.
_TRANSIENT_SQLSTATES = {"23505"}  # concurrent CREATE ... IF NOT EXISTS colliding in the catalog
_HTTP_TRANSIENT = {408, 425, 429}


@dataclass(frozen=True)
class Verdict:
    """What to do with one failure."""

    retryable: bool
    fix: str = ""
    """For a permanent failure: what the user should change."""
    delay_s: float | None = None
    """For a retryable one: the wait the other side asked for."""


def _pgcode(exc: BaseException) -> str | None:
    code = getattr(exc, "pgcode", None)
    return code if isinstance(code, str) else None


def classify(exc: BaseException, attempt: int = 1) -> Verdict:
    """Whether retrying could fix `exc` (on its `attempt`-th occurrence), and if not, what to fix."""
    if isinstance(exc, SourceUnavailable):
        return Verdict(True, delay_s=exc.retry_after_s or None)
    if isinstance(exc, EtlError):
        return Verdict(True) if exc.retryable else Verdict(False, "fix what the message names, then start the "
                                                                  "flow again")
    if isinstance(exc, StagedBatchMissing):
        return Verdict(False, "the batch's staged rows are gone; the flow re-extracts it")
    verdict = _classify_database(exc) or _classify_http(exc)
    if verdict is not None:
        return verdict
    if attempt >= UNKNOWN_ATTEMPTS:
        return Verdict(False, f"it failed the same way {attempt} attempts in a row, so a retry will not fix it; "
                              "fix the cause (see the message) and start the flow again")
    return Verdict(True)


def _classify_database(exc: BaseException) -> Verdict | None:
    try:
        import psycopg2
    except ImportError:  # pragma: no cover - psycopg2 is a dependency
        return None
    if not isinstance(exc, psycopg2.Error):
        return None
    code = _pgcode(exc)
    if code is None or code in _TRANSIENT_SQLSTATES:
        return Verdict(True)  # the connection went away before the server could answer
    fix = _PERMANENT_SQLSTATE_CLASSES.get(code[:2])
    if fix is None:
        return Verdict(True)  # 08, 40, 53, 55, 57, 58, XX: the server can get past them
    return Verdict(False, f"SQLSTATE {code}: {fix}")


def _classify_http(exc: BaseException) -> Verdict | None:
    try:
        import httpx
    except ImportError:  # pragma: no cover - httpx is a dependency
        return None
    if isinstance(exc, (httpx.InvalidURL, httpx.UnsupportedProtocol)):
        return Verdict(False, "the source's URL is not valid: check the query arguments (no spaces or control "
                              "characters) and the source's base URL setting")
    if isinstance(exc, httpx.HTTPStatusError):
        status = exc.response.status_code
        if status >= 500 or status in _HTTP_TRANSIENT:
            return Verdict(True)
        return Verdict(False, f"the source refused the request (HTTP {status}): check the query arguments and "
                              "the source's credentials")
    if isinstance(exc, httpx.TransportError):
        return Verdict(True)
    return None


def _where(args: tuple[Any, ...]) -> str:
    """The flow, and the batch or chunk, an activity was working on, from its one input."""
    try:
        info = activity.info()
        flow = f"flow {info.workflow_id} ({info.activity_type}, attempt {info.attempt})"
    except RuntimeError:  # called outside an activity (unit tests)
        flow = "outside a flow"
    inp = args[-1] if args else None
    parts = [flow]
    strategy = getattr(inp, "strategy", None)
    if isinstance(strategy, str):
        parts.append(f"strategy {strategy}")
    if isinstance(getattr(inp, "batch_key", None), str):
        parts.append(f"batch {inp.batch_key}")
    chunk = getattr(inp, "chunk", None)
    if chunk is not None and isinstance(getattr(chunk, "index", None), int):
        parts.append(f"chunk {chunk.index} (cursor {shown(chunk.cursor, 40)})")
    return ", ".join(parts)


def _message_of(exc: BaseException) -> str:
    try:
        text = str(exc).strip()
    except Exception:  # noqa: BLE001 - a hostile __str__ must not hide the failure
        text = ""
    return f"{type(exc).__name__}: {text[:1000]}" if text else type(exc).__name__


def to_application_error(exc: Exception, args: tuple[Any, ...] = ()) -> ApplicationError:
    """The `ApplicationError` Temporal records for `exc`: retryable or not, by `classify`."""
    try:
        attempt = activity.info().attempt
    except RuntimeError:
        attempt = 1
    verdict = classify(exc, attempt)
    kind = type(exc).__name__
    if verdict.retryable:
        delay = timedelta(seconds=verdict.delay_s) if verdict.delay_s else None
        return ApplicationError(_message_of(exc) if not isinstance(exc, EtlError) else str(exc), type=kind,
                                next_retry_delay=delay)
    return ApplicationError(f"{_where(args)}: {_message_of(exc)} -- {verdict.fix}", type=kind, non_retryable=True)


def classified_errors(fn: F) -> F:
    """Wrap an activity so that whatever it raises leaves classified, as an `ApplicationError`, and
    so that a cancellation reaches it only at its safe points (`heartbeat.stop_if_cancelled`)."""

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        try:
            # A cancellation waits for the activity's next safe point (`heartbeat.stop_if_cancelled`)
            # instead of striking the thread at a random instruction.
            with activity.shield_thread_cancel_exception() if activity.in_activity() else nullcontext():
                return fn(*args, **kwargs)
        except ApplicationError:
            raise
        except Exception as exc:
            if type(exc).__module__.startswith(("temporalio", "asyncio", "concurrent")):
                raise  # cancellation and the SDK's own signals
            failure = to_application_error(exc, args)
            # The traceback goes to the worker's log; the history keeps the message alone, since a
            # chain of causes with their stack traces (an HTTP client's, say) can pass the server's
            # failure size limit, and the UI then shows "Failure exceeds size limit" instead.
            logging.getLogger(fn.__module__).warning("%s failed: %s", fn.__name__, failure.message, exc_info=exc)
            raise failure from None

    return wrapper  # type: ignore[return-value]


#: The name the activities were written against.
non_retryable_errors = classified_errors
