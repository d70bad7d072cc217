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
from sources.launchpad.client import Session, name_of, when
from sources.launchpad.flows import Item, Listing, walk
from sources.launchpad.query import LaunchpadQuery

STATUSES = ["Open", "Needs information", "Answered", "Solved", "Expired", "Invalid"]


def _item(session: Session, q: dict) -> Item:
    qid = q["id"]
    props = {"title": q.get("title"), "status": q.get("status"), "web_link": q.get("web_link"),
             "target": (q.get("target_link") or "").rstrip("/").rsplit("/", 1)[-1] or None}

    def event(suffix: str, relation: str, moment, actor_link: str, relation_properties: dict, metrics: dict):
        return session.record(event_id=f"q-{qid}-{suffix}", parent=qid, event_type="questions",
                              relation_type=relation, actor=name_of(actor_link), moment=moment,
                              event_properties=props, relation_properties=relation_properties, metrics=metrics)

    records = []
    created = when(q.get("date_created"))
    if session.mine(q.get("owner_link")) and session.in_range(created):
        records.append(event("c", "question_created", created, q["owner_link"], {},
                             {"message_length": len(q.get("description") or "")}))

    def messages(entries: list[dict], start: int) -> list[dict]:
        out = []
        for m in entries:
            moment = when(m.get("date_created"))
            if not (session.mine(m.get("owner_link")) and session.in_range(moment)):
                continue
            index, action, status = m["index"], m.get("action"), m.get("new_status")
            rel = {"subject": m.get("subject"), "action": action, "new_status": status}
            metrics = {"message_length": len(m.get("content") or "")}
            out.append(event(f"m{index}", "question_message", moment, m["owner_link"], rel, metrics))
            if action == "Answer":
                out.append(event(f"a{index}", "question_answered", moment, m["owner_link"], rel, metrics))
            if status == "Solved" and action != "Comment":
                out.append(event(f"s{index}", "question_solved", moment, m["owner_link"], rel, metrics))
        return out

    return Item(records, [(q["messages_collection_link"], messages)])


@extract_method("launchpad-questions")
def extract_questions(query: LaunchpadQuery, cursor: str | None, settings: Settings) -> Iterator[Page]:
    """Questions created, messages, answers and solutions by `query.member`."""
    session = Session(query, settings)
    if "searchQuestions" not in session.member.lp_operations:
        raise QueryError(query.name, "api_version", f"{session.base} has no person.searchQuestions; "
                                                    "questions need api_version devel")
    search = Listing(
        "person.searchQuestions",
        lambda: session.member.searchQuestions(status=STATUSES, sort="oldest first"),
        key=lambda q: q["self_link"],
        item=lambda q: _item(session, q))
    yield from walk(session, [search], cursor)
