"""Turning a Temporal failure chain into the one line a person needs: the innermost cause.

A failed flow reaches a launcher as WorkflowFailureError -> ActivityError -> ApplicationError
(or ChildWorkflowError -> ... inside a fan-out); the message that says what to fix is the last.
Pure and deterministic, so workflows may use it too.
"""

from __future__ import annotations


def root_message(exc: BaseException) -> str:
    """The innermost cause's message, prefixed by its type name when it has one."""
    cause: BaseException = exc
    while getattr(cause, "cause", None) is not None:
        cause = cause.cause  # type: ignore[attr-defined]
    if cause is exc and exc.__cause__ is not None:
        cause = exc.__cause__
    kind = getattr(cause, "type", None)
    message = str(cause) or type(cause).__name__
    return f"{kind}: {message}" if kind and not message.startswith(f"{kind}:") else message
