"""`github-issues`: issues opened, closed and commented on in a repository, in [since, until).

Per issue (see the walk in `flows/__init__.py`): its comments (`since` again) when it has any,
and its events when it is or was closed. Each act is kept only if its own time is in the
window: a comment written before `since` and edited after is still listed by GitHub.
The events and their ids: README.md.
"""

from __future__ import annotations

from typing import Iterator

from etl.core.extract import Page, extract_method
from etl.core.settings import Settings
from etl.kit import SourceClient
from sources.github.client import PER_PAGE, github
from sources.github.flows import body_length, record, walk
from sources.github.query import GitHubQuery, github_time


@extract_method("github-issues")
def extract_issues(query: GitHubQuery, cursor: str | None, settings: Settings) -> Iterator[Page]:
    with github(settings) as gh:
        yield from walk(gh, query, cursor, False, lambda issue: issue_records(gh, query, issue))


def issue_records(gh: SourceClient, query: GitHubQuery, issue: dict) -> list[dict]:
    n, out = issue["number"], []

    def act(relation_type: str, suffix: str, actor: dict | None, at: str, **fields) -> None:
        if query.contains(at):
            out.append(record(query, issue, "issues", relation_type, f"i{n}-{suffix}", actor, at, **fields))

    act("issue_opened", "opened", issue.get("user"), issue["created_at"],
        metrics={"body_length": body_length(issue), "comments": issue.get("comments", 0)})
    if issue.get("comments"):
        for c in gh.all(f"{query.path}/issues/{n}/comments", {"since": github_time(query.since), "per_page": PER_PAGE}):
            act("issue_comment", f"c{c['id']}", c.get("user"), c["created_at"],
                relation_properties={"web_link": c.get("html_url")}, metrics={"body_length": body_length(c)})
    # Only an issue that is or was closed has close events; a reopened one has closed_at null
    # but state_reason "reopened", and an issue that never closed needs no request.
    if issue.get("closed_at") or issue.get("state") == "closed" or issue.get("state_reason") == "reopened":
        for e in gh.all(f"{query.path}/issues/{n}/events", {"per_page": PER_PAGE}):
            if e.get("event") == "closed":
                act("issue_closed", f"closed-{e['id']}", e.get("actor"), e["created_at"],
                    relation_properties={"state_reason": e.get("state_reason"), "commit_id": e.get("commit_id")})
    return out
