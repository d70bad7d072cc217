"""`launchpad-questions`: questions a member asked, answered, solved or wrote in.

`person.searchQuestions` (devel only) without a `participation` filter returns every
question the member asked, answered, commented on or subscribed to; it is asked for
every status (its default hides Expired and Invalid), oldest first so that pages stay
stable while a walk resumes. Then each question's messages, every page; a message's
`index` counts from 1. Every message the member wrote is a `question_message`; one whose
action is Answer is also a `question_answered`, and one that moved the question to
Solved (any action but a comment on a solved question) also a `question_solved`.
"""

from __future__ import annotations

from typing import Iterator

from etl.core.errors import QueryError
from etl.core.extract import Page, extract_method
from etl.core.settings import Settings
from etl.kit.walk import Item
from sources.launchpad.client import Session
from sources.launchpad.query import LaunchpadQuery

STATUSES = ["Open", "Needs information", "Answered", "Solved", "Expired", "Invalid"]


def _item(session: Session, q: dict) -> Item:
    n = q["id"]
    props = {"title": q.get("title"), "status": q.get("status"), "web_link": q.get("web_link"),
             "target": (q.get("target_link") or "").rstrip("/").rsplit("/", 1)[-1] or None}
    act = lambda who, at, suffix, relation, rel, metrics: session.act(  # noqa: E731
        who, at, f"q-{n}-{suffix}", parent=n, relation=relation, properties=props, relation_properties=rel,
        metrics=metrics)
    created = act(q.get("owner_link"), q.get("date_created"), "c", "question_created", {},
                  {"message_length": len(q.get("description") or "")})

    def message(m: dict, _: int) -> list:
        who, at, index, action, status = m.get("owner_link"), m.get("date_created"), m["index"], m.get("action"), \
            m.get("new_status")
        rel = {"subject": m.get("subject"), "action": action, "new_status": status}
        metrics = {"message_length": len(m.get("content") or "")}
        return [act(who, at, f"m{index}", "question_message", rel, metrics),
                action == "Answer" and act(who, at, f"a{index}", "question_answered", rel, metrics),
                status == "Solved" and action != "Comment" and act(who, at, f"s{index}", "question_solved", rel, metrics)]

    return Item([created] if created else [], [(session.relative(q["messages_collection_link"]), message)])


@extract_method("launchpad-questions")
def extract_questions(query: LaunchpadQuery, cursor: str | None, settings: Settings) -> Iterator[Page]:
    """Questions created, messages, answers and solutions by `query.member`."""
    session = Session(query, settings, "questions")
    if "searchQuestions" not in session.member.lp_operations:
        session.close()
        raise QueryError(query.name, "api_version", f"{session.base} has no person.searchQuestions; "
                                                    "questions need api_version devel")
    search = session.listing("person.searchQuestions",
                             lambda: session.member.searchQuestions(status=STATUSES, sort="oldest first"),
                             key=lambda q: q["self_link"], item=lambda q: _item(session, q))
    yield from session.walk([search], cursor)
