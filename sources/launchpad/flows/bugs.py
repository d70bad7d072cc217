"""`launchpad-bugs`: the messages a member wrote and the changes they made on bugs.

`person.searchTasks` lists the tasks related to the member (reporter, assignee,
subscriber, commenter). It is asked for every status and duplicates too (its defaults
hide closed bugs and duplicates), modified since the range's start (`created_since`
would miss acts on older bugs), ordered by bug number so that pages stay stable while a
walk resumes. A bug with tasks on several projects is read once.
"""

from __future__ import annotations

from typing import Iterator

from etl.core.extract import Page, extract_method
from etl.core.settings import Settings
from sources.launchpad.client import Session, name_of, when
from sources.launchpad.flows import Item, Listing, walk
from sources.launchpad.query import LaunchpadQuery

#: Every bug task status in the WADL's vocabulary.
STATUSES = ["New", "Incomplete", "Opinion", "Invalid", "Won't Fix", "Expired", "Confirmed", "Triaged",
            "In Progress", "Fix Committed", "Fix Released", "Unknown"]


def _item(session: Session, task: dict) -> Item | None:
    bug = session.load(task["bug_link"], f"bug {task['bug_link']}")
    if bug is None:
        return None
    bug_id = bug.id
    props = {"title": bug.title, "status": task.get("status"), "importance": task.get("importance"),
             "tags": list(bug.tags or []), "web_link": bug.web_link, "target": task.get("bug_target_name")}
    counts = {"heat": bug.heat, "users_affected": bug.users_affected_count}

    def messages(entries: list[dict], start: int) -> list[dict]:
        out = []
        for k, m in enumerate(entries):
            moment = when(m.get("date_created"))
            if session.mine(m.get("owner_link")) and session.in_range(moment):
                out.append(session.record(
                    event_id=f"b-{bug_id}-m{start + k}", parent=bug_id, event_type="bugs",
                    relation_type="bug_message", actor=name_of(m["owner_link"]), moment=moment,
                    event_properties=props, relation_properties={"subject": m.get("subject")},
                    metrics={**counts, "message_length": len(m.get("content") or "")}))
        return out

    def activity(entries: list[dict], start: int) -> list[dict]:
        out = []
        for k, a in enumerate(entries):
            moment = when(a.get("datechanged"))
            if session.mine(a.get("person_link")) and session.in_range(moment):
                out.append(session.record(
                    event_id=f"b-{bug_id}-a{start + k}", parent=bug_id, event_type="bugs",
                    relation_type="bug_activity", actor=name_of(a["person_link"]), moment=moment,
                    event_properties=props,
                    relation_properties={"what_changed": a.get("whatchanged"), "old_value": a.get("oldvalue"),
                                         "new_value": a.get("newvalue")},
                    metrics=counts))
        return out

    return Item([], [(bug.messages_collection_link, messages), (bug.activity_collection_link, activity)])


@extract_method("launchpad-bugs")
def extract_bugs(query: LaunchpadQuery, cursor: str | None, settings: Settings) -> Iterator[Page]:
    """Messages and changes by `query.member` on bugs, in the query's range."""
    session = Session(query, settings)
    search = Listing(
        "person.searchTasks",
        lambda: session.member.searchTasks(status=STATUSES, omit_duplicates=False, modified_since=session.start,
                                           order_by=["id"]),
        key=lambda task: task["bug_link"],
        item=lambda task: _item(session, task))
    yield from walk(session, [search], cursor)
