"""Every error the framework raises, in one place.

    EtlError
    ├── ConfigError            a setting has a bad value (names the variable)
    ├── RegistryError
    │   ├── DuplicateNameError a query type or extract method registered twice
    │   └── UnknownNameError   a name that is not registered (lists the known ones)
    ├── QueryError             a query argument is missing or malformed (names the field)
    ├── FlowFileError          a flow file (run_queue.py) cannot be read, or one of its flows is invalid
    ├── SourceError            the source refused us; retrying cannot fix it (401, 404, no such member)
    │   └── ArchiveMiss        a replay met a request the source archive holds no answer to
    ├── SourceUnavailable      the source is down or rate-limited for now; the activity retries
    ├── StackError             the embedded stack cannot start (a port taken, a binary missing)
    └── DeployError            a Worker Deployment operation cannot be done (no such version, refused)

    TemporalUnreachable        (a SystemExit) Temporal does not answer, or refuses our TLS: a command
                               cannot go on, and ends with that one line and status 1

`TemporalUnreachable` is a `SystemExit`, as `sys.exit("message")` is: a command's broad `except
Exception` (kept for bad input and refusals) must not turn "the server is away" into another
message, status or traceback. `etl.runtime.exit.run_command` prints it as one line.

Errors carry the offending values as attributes. Activities turn `QueryError`,
`SourceError` and `RegistryError` into non-retryable `ApplicationError`s whose
`type` is the class name, so the Temporal UI shows the same stable name.
"""

from __future__ import annotations

from typing import Iterable


class EtlError(Exception):
    """Base of every error raised by this project."""

    #: Whether retrying the operation could ever help.
    retryable: bool = False


def stand_in(value: object) -> str:
    """What a value is, when nothing it says of itself can be trusted: its type, and its size
    for an integer. Never raises."""
    try:
        if isinstance(value, int):
            return f"<{type(value).__name__} of {int.bit_length(value):,} bits>"
        return f"<{type(value).__name__}>"
    except Exception:  # noqa: BLE001 - a metaclass that refuses its own name
        return "<object>"


def shown(value: object, limit: int = 64) -> str:
    """A bad value as an error message quotes it: its repr, cut to `limit` characters, with its
    length when cut (a 100,000-character value must not fill a terminal or a log line)."""
    if isinstance(value, str) and len(value) > limit:
        return f"{str.__repr__(value[:limit])}... ({len(value):,} characters)"
    try:
        text = repr(value)
    except Exception:  # noqa: BLE001 - a hostile __repr__, an integer past Python's 4,300 digits, too deep
        return stand_in(value)
    return text if len(text) <= limit + 2 else f"{text[:limit]}... ({len(text):,} characters)"


class ConfigError(EtlError):
    """A setting has a value the project cannot use."""

    def __init__(self, variable: str, value: object, expected: str):
        self.variable = variable
        self.value = value
        self.expected = expected
        super().__init__(f"{variable}={shown(value)} is not valid: expected {expected}")


class RegistryError(EtlError):
    """A registry lookup or registration failed."""


class DuplicateNameError(RegistryError):
    """The same name was registered twice."""

    def __init__(self, kind: str, name: str, first: str, second: str):
        self.kind = kind
        self.name = name
        self.first = first
        self.second = second
        super().__init__(
            f"{kind} {name!r} is registered twice: in {first} and in {second}; rename one of them"
        )


class UnknownNameError(RegistryError):
    """A name that no source registered."""

    def __init__(self, kind: str, name: str, known: Iterable[str], note: str = ""):
        self.kind = kind
        self.name = name
        self.known = sorted(known)
        listed = ", ".join(self.known) or "(none registered)"
        super().__init__(f"unknown {kind} {name!r}; the known ones are: {listed}{note}")


class QueryError(EtlError):
    """A query argument is missing or malformed."""

    def __init__(self, query_type: str, field: str | None, message: str):
        self.query_type = query_type
        self.field = field
        where = f"{query_type}.{field}" if field else query_type
        super().__init__(f"{where}: {message}")


class FlowFileError(EtlError):
    """A flow file cannot be read, or flows of it are not valid: one error names the file, the
    flow's position (and strategy) and the key; `problems` holds each when there are several."""

    def __init__(self, path, message: str, index: int | None = None, *, strategy: str | None = None,
                 problems: list[FlowFileError] | None = None):
        self.path = str(path)
        self.index = index
        self.strategy = strategy
        self.problems = problems or []
        where = f"{self.path}, flow {index + 1}" if index is not None else self.path
        super().__init__(f"{where}{f' ({strategy})' if strategy else ''}: {message}")


class SourceError(EtlError):
    """The source refused a request in a way retrying cannot fix (bad credentials, no such thing)."""

    def __init__(self, message: str, *, status: int | None = None):
        self.status = status
        super().__init__(message)


class ArchiveMiss(SourceError):
    """A replay asked for an answer the source archive does not hold; asking again cannot help."""

    def __init__(self, message: str, *, request: str = ""):
        self.request = request
        super().__init__(message)


class SourceUnavailable(EtlError):
    """The source cannot answer now (5xx, rate limit far from reset, timeouts); retrying later can help."""

    retryable = True

    def __init__(self, message: str, *, status: int | None = None, retry_after_s: float | None = None):
        self.status = status
        self.retry_after_s = retry_after_s
        super().__init__(message)


class StackError(EtlError):
    """The embedded stack could not be started or reached."""


class DeployError(EtlError):
    """A Worker Deployment operation (make current, ramp, drain) cannot be done; says what to do."""


class TemporalUnreachable(SystemExit):
    """Temporal cannot be reached at the configured address, went away mid-command, or refused the
    TLS handshake. Its message says where and what to do (start it, or which setting to fix); its
    exit status is 1."""

    def __init__(self, message: str, *, address: str = "", setting: str | None = None):
        self.message = message
        self.address = address
        self.setting = setting
        # As `sys.exit(text)`: even uncaught, Python prints the text and ends with status 1.
        super().__init__(f"error: {message}")

    def __str__(self) -> str:
        return self.message
