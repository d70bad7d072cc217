"""The GitHub flows, and what they share: the walk over a repository's items, and the record shape.

Both flows walk `/issues?state=all&since=...&sort=updated&direction=asc` (GitHub's `since` is
on `updated_at`, any act updates an item, and the list holds pull requests too) by key, not by
page number: an item updated during the walk moves to the end of the list, and paging by
number would then skip the item at the next page boundary. See `etl.kit.keyset`.

Every record is one act by one person; `employee_id` is the actor's login (`ghost` when GitHub
has lost the account) and `timezone` is None: GitHub does not know where people are.
"""

from __future__ import annotations

from typing import Any, Callable, Iterator

from etl.core.extract import Page
from etl.kit import SourceClient, batched, keyset_walk
from etl.kit.events import Events, mapped
from sources.github.client import PER_PAGE
from sources.github.query import GitHubQuery, github_time

CHUNK = 10
"""Items per page of records: each costs a few requests."""


def walk(gh: SourceClient, query: GitHubQuery, cursor: str | None, pulls: bool,
         records: Callable[[dict], list[dict]]) -> Iterator[Page]:
    """Pages of the records of every issue (or pull request) updated since `since`, `CHUNK` items
    at a time, each with the cursor that resumes after its last item."""
    def fetch(since: str, page: int) -> tuple[list, bool]:
        answer = gh.get(f"{query.path}/issues", {"state": "all", "since": since, "sort": "updated",
                                                 "direction": "asc", "per_page": PER_PAGE, "page": page})
        return answer.json(), "next" in answer.links

    items = keyset_walk(fetch, cursor, github_time(query.since), source="GitHub")
    for chunk in batched(items, CHUNK):
        ours = [item for item, _ in chunk if ("pull_request" in item) == pulls]
        yield Page(mapped(ours, records), cursor=chunk[-1][1])


def login(user: dict | None) -> str:
    """The login of a GitHub user object; a deleted account comes back as null or as `ghost`."""
    return (user or {}).get("login") or "ghost"


EVENTS = Events("github")


def record(query: GitHubQuery, item: dict, event_type: str, relation_type: str, suffix: str, actor: dict | None,
           at: str, relation_properties: dict | None = None, metrics: dict | None = None, **extra) -> dict[str, Any]:
    """A raw event record for an act on `item` (see `etl.kit.events`); `event_id` is
    `gh-{owner}/{repo}-{suffix}`, from GitHub's own numbers and ids, so re-extracting gives the same ids."""
    labels = [label.get("name") for label in item.get("labels") or [] if isinstance(label, dict)]
    return EVENTS.event(f"gh-{query.slug}-{suffix}", event_type=event_type, parent=f"{query.slug}#{item['number']}",
                        relation=relation_type, actor=login(actor), at=at, relation_properties=relation_properties,
                        metrics=metrics, properties={
                            "repository": query.slug, "number": item["number"], "title": item.get("title"),
                            "state": item.get("state"), "labels": labels, "author": login(item.get("user")),
                            "web_link": item.get("html_url"), **extra})


def body_length(thing: dict) -> int:
    return len(thing.get("body") or "")
