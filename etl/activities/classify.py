"""One classification of errors for every activity: what a retry can fix is retried (at the pace
the other side asked for), what it cannot fails the flow at once, as a non-retryable
`ApplicationError` whose `type` is the error's class name (the UI shows the same stable name).
"""

from __future__ import annotations

import functools
from datetime import timedelta
from typing import Any, Callable, TypeVar

from temporalio.exceptions import ApplicationError

from etl.core.errors import EtlError, SourceUnavailable
from etl.store.staging import StagedBatchMissing

F = TypeVar("F", bound=Callable[..., Any])


def non_retryable_errors(fn: F) -> F:
    """Turn the project's permanent errors into non-retryable ApplicationErrors with a stable type."""

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except SourceUnavailable as exc:
            # Retryable, but at the pace the source asked for (Retry-After, a rate-limit reset).
            delay = timedelta(seconds=exc.retry_after_s) if exc.retry_after_s else None
            raise ApplicationError(str(exc), type="SourceUnavailable", next_retry_delay=delay) from exc
        except (EtlError, StagedBatchMissing) as exc:
            if getattr(exc, "retryable", False):
                raise
            raise ApplicationError(str(exc), type=type(exc).__name__, non_retryable=True) from exc

    return wrapper  # type: ignore[return-value]
