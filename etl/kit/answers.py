"""Reading an API's answers the one way every source does: how long it asks us to wait,
whether a refusal is for now or for good, and messages with no secret in them.

Pure functions of headers and statuses, so any client library can use them (the kit's
`SourceClient`, and launchpadlib's errors in the Launchpad source).
"""

from __future__ import annotations

import email.utils
import logging
import re
import time
from typing import Iterable, Mapping

from etl.core.errors import SourceError

TRANSIENT = frozenset({408, 409, 425, 429, 500, 502, 503, 504})
"""Statuses a later retry can fix (any other 5xx too)."""
SECONDARY_WAIT = 60.0
"""The wait for a rate limit that names no time (GitHub's advice for its secondary limits)."""
_SECRET_PARAMS = re.compile(
    r"(?i)([?&](?:access_token|api_key|apikey|key|token|secret|password|signature|sig)=)[^&#\s]*")


def transient(status: int) -> bool:
    """Whether an HTTP status is worth retrying later."""
    return status >= 500 or status in TRANSIENT


def retry_after(value: str | None, now: float | None = None) -> float | None:
    """Seconds from a `Retry-After` value: a number of seconds or an HTTP date; None if absent or unreadable."""
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        moment = email.utils.parsedate_to_datetime(value).timestamp()
    except (TypeError, ValueError, IndexError):
        return None
    return max(0.0, moment - (time.time() if now is None else now))


def reset_in(headers: Mapping[str, str], now: float | None = None) -> float | None:
    """Seconds until a spent quota resets, when the answer says the quota is spent
    (`X-RateLimit-Remaining: 0` or `RateLimit-Remaining: 0`), else None. `X-RateLimit-Reset` is
    an epoch time (GitHub, Twitter); `RateLimit-Reset` (the IETF draft) is a number of seconds."""
    now = time.time() if now is None else now
    for prefix in ("X-RateLimit-", "RateLimit-"):
        if (headers.get(prefix + "Remaining") or "").strip() != "0":
            continue
        try:
            reset = float(headers.get(prefix + "Reset") or "")
        except ValueError:
            return SECONDARY_WAIT
        seconds = reset - now if reset > 1e9 else reset  # an epoch time, or seconds from now
        return max(1.0, seconds + 0.5)  # half a second for the clocks to disagree
    return None


def rate_limit_wait(status: int, headers: Mapping[str, str], message: str = "",
                    now: float | None = None) -> float | None:
    """Seconds to wait before asking again, when the answer is a rate limit (429, or a 403 that
    says so as GitHub's do); None when it is not one."""
    if status not in (403, 429):
        return None
    after = retry_after(headers.get("Retry-After"), now)
    if after is not None:
        return after
    reset = reset_in(headers, now)
    if reset is not None:
        return reset
    if status == 429 or "rate limit" in message.lower():
        return SECONDARY_WAIT
    return None


def redact(text: str, secrets: Iterable[str | None] = ()) -> str:
    """`text` with every secret, whatever its length (and any `token=`, `key=`... query parameter),
    replaced by `***`; the longest first, so a secret inside another is not left half shown."""
    for secret in sorted((s for s in secrets if s), key=len, reverse=True):
        text = text.replace(secret, "***")
    return _SECRET_PARAMS.sub(r"\1***", text)


SHORT_SECRET = 8
"""A secret shorter than this is masked too, but every other occurrence of its characters with it."""
_warned: set[tuple[str, int]] = set()


def warn_short_secrets(source: str, secrets: Iterable[str | None], log: logging.Logger) -> list[str]:
    """Warn (once per source and length, per process) about each secret shorter than `SHORT_SECRET`:
    it is masked in every message, and so is everything that happens to contain it. The warnings."""
    said = []
    for secret in secrets:
        if secret and len(secret) < SHORT_SECRET and (source, len(secret)) not in _warned:
            _warned.add((source, len(secret)))
            said.append(f"{source}'s credential is only {len(secret)} character{'s' * (len(secret) != 1)} long: it is "
                        f"masked in every message, and so is any text that contains it; use the API's real token")
            log.warning(said[-1])
    return said


DEFAULT_HINTS = {
    400: "the request is malformed; check the query's arguments",
    401: "the credentials were refused or are missing; check the source's token setting",
    403: "the credentials do not allow this; give the token read access",
    404: "there is no such thing (or it is private); check the query's arguments",
}


def refusal(source: str, status: int, what: str, message: str = "", hints: Mapping[int, str] | None = None,
            secrets: Iterable[str | None] = ()) -> SourceError:
    """The non-retryable `SourceError` for a refused request, naming the status, the request
    (`what`, e.g. `GET https://...`, with secrets removed) and what to fix."""
    hint = {**DEFAULT_HINTS, **(hints or {})}.get(status, "retrying cannot fix this")
    said = f" {message.strip()[:200]}" if message and message.strip() else ""
    text = f"{source} refused {what} ({status}{said}): {hint}"
    return SourceError(redact(text, secrets), status=status)
