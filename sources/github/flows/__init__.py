"""The GitHub flows, and the record shape they share.

Every record is one act by one person; `employee_id` is the actor's login (`ghost`
when GitHub has lost the account, as its web pages show it) and `timezone` is None:
GitHub does not know where people are, so the transform files them under UTC.
"""

from __future__ import annotations

from typing import Any

from sources.github.query import GitHubQuery

CHUNK = 10
"""Issues or pull requests per page of records: each costs a few requests, and a page must
finish well inside the streaming flow's 60 s heartbeat timeout."""


def login(user: dict | None) -> str:
    """The login of a GitHub user object; a deleted account comes back as null or as `ghost`."""
    return (user or {}).get("login") or "ghost"


def labels(item: dict) -> list[str]:
    return [label.get("name") for label in item.get("labels") or [] if isinstance(label, dict)]


def record(query: GitHubQuery, item: dict, *, event_type: str, relation_type: str, suffix: str,
           actor: dict | None, at: str, relation_properties: dict | None = None,
           metrics: dict | None = None, extra: dict | None = None) -> dict[str, Any]:
    """A raw event record for an act on `item` (an issue or a pull request).

    `event_id` is `gh-{owner}/{repo}-{suffix}`, with `suffix` built from GitHub's own
    numbers and ids, so re-extracting gives the same ids."""
    number = item["number"]
    return {
        "event_id": f"gh-{query.slug}-{suffix}",
        "source_kind_id": "github",
        "parent_item_id": f"{query.slug}#{number}",
        "event_type": event_type,
        "relation_type": relation_type,
        "employee_id": login(actor),
        "event_time_utc": at,
        "timezone": None,
        "event_properties": {
            "repository": query.slug,
            "number": number,
            "title": item.get("title"),
            "state": item.get("state"),
            "labels": labels(item),
            "author": login(item.get("user")),
            "web_link": item.get("html_url"),
            **(extra or {}),
        },
        "relation_properties": relation_properties or {},
        "metrics": metrics or {},
    }


def body_length(thing: dict) -> int:
    return len(thing.get("body") or "")
