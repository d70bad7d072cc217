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
from etl.kit.walk import Item
from sources.launchpad.client import Session
from sources.launchpad.query import LaunchpadQuery

#: Every bug task status in the WADL's vocabulary.
STATUSES = ["New", "Incomplete", "Opinion", "Invalid", "Won't Fix", "Expired", "Confirmed", "Triaged",
            "In Progress", "Fix Committed", "Fix Released", "Unknown"]


def _item(session: Session, task: dict) -> Item | None:
    bug = session.load(task["bug_link"], f"bug {task['bug_link']}")
    if bug is None:
        return None
    n = bug.id
    props = {"title": bug.title, "status": task.get("status"), "importance": task.get("importance"),
             "tags": list(bug.tags or []), "web_link": bug.web_link, "target": task.get("bug_target_name")}
    counts = {"heat": bug.heat, "users_affected": bug.users_affected_count}
    message = lambda m, index: session.act(  # noqa: E731
        m.get("owner_link"), m.get("date_created"), f"b-{n}-m{index}", parent=n, relation="bug_message",
        properties=props, relation_properties={"subject": m.get("subject")},
        metrics={**counts, "message_length": len(m.get("content") or "")})
    activity = lambda a, index: session.act(  # noqa: E731
        a.get("person_link"), a.get("datechanged"), f"b-{n}-a{index}", parent=n, relation="bug_activity",
        properties=props, metrics=counts, relation_properties={
            "what_changed": a.get("whatchanged"), "old_value": a.get("oldvalue"), "new_value": a.get("newvalue")})
    return Item([], [(session.relative(bug.messages_collection_link), message),
                     (session.relative(bug.activity_collection_link), activity)])


@extract_method("launchpad-bugs")
def extract_bugs(query: LaunchpadQuery, cursor: str | None, settings: Settings) -> Iterator[Page]:
    """Messages and changes by `query.member` on bugs, in the query's range."""
    session = Session(query, settings, "bugs")
    search = session.listing(
        "person.searchTasks",
        lambda: session.member.searchTasks(status=STATUSES, omit_duplicates=False, modified_since=query.window[0],
                                           order_by=["id"]),
        key=lambda task: task["bug_link"], item=lambda task: _item(session, task))
    yield from session.walk([search], cursor)
