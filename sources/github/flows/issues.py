"""`github-issues`: issues opened, closed and commented on in a repository, in [since, until).

Lists `/issues?state=all&since=...&sort=updated&direction=asc` (GitHub's `since` is on
`updated_at`, and any act updates an issue, so nothing in the window is missed), skips
the pull requests that list also holds, then reads each issue's comments (`since` again)
and, when it has ever been closed, its events. Each act is kept only if its own time is
in the window: a comment written before `since` and edited after is still listed by GitHub.

| act | relation_type | event_id | employee_id |
|---|---|---|---|
| opened | `issue_opened` | `gh-{owner}/{repo}-i{number}-opened` | the author |
| closed | `issue_closed` | `gh-{owner}/{repo}-i{number}-closed-{issue event id}` | who closed it |
| comment | `issue_comment` | `gh-{owner}/{repo}-i{number}-c{comment id}` | the commenter |
"""

from __future__ import annotations

from typing import Iterator
from urllib.parse import urlencode

from etl.core.extract import Page, extract_method
from etl.core.settings import Settings
from sources.github.client import PER_PAGE, GitHubClient
from sources.github.flows import CHUNK, body_length, record
from sources.github.query import GitHubQuery, github_time


@extract_method("github-issues")
def extract_issues(query: GitHubQuery, cursor: str | None, settings: Settings) -> Iterator[Page]:
    """One page of records per `CHUNK` issues; the cursor names the list page and position."""
    since = github_time(query.since)
    first = f"{query.path}/issues?" + urlencode(
        {"state": "all", "since": since, "sort": "updated", "direction": "asc", "per_page": PER_PAGE})
    with GitHubClient(settings) as gh:
        for items, after in gh.chunks(first, cursor, CHUNK):
            records = [r for issue in items if "pull_request" not in issue
                       for r in issue_records(gh, query, issue, since)]
            yield Page(records, cursor=after)


def issue_records(gh: GitHubClient, query: GitHubQuery, issue: dict, since: str) -> list[dict]:
    n = issue["number"]
    out = []
    if query.contains(issue["created_at"]):
        out.append(record(query, issue, event_type="issues", relation_type="issue_opened",
                          suffix=f"i{n}-opened", actor=issue.get("user"), at=issue["created_at"],
                          metrics={"body_length": body_length(issue), "comments": issue.get("comments", 0)}))
    if issue.get("comments"):
        for c in gh.all(f"{query.path}/issues/{n}/comments?" + urlencode({"since": since, "per_page": PER_PAGE})):
            if query.contains(c["created_at"]):
                out.append(record(query, issue, event_type="issues", relation_type="issue_comment",
                                  suffix=f"i{n}-c{c['id']}", actor=c.get("user"), at=c["created_at"],
                                  relation_properties={"web_link": c.get("html_url")},
                                  metrics={"body_length": body_length(c)}))
    # Only an issue that is or was closed has close events; a reopened one has closed_at null
    # but state_reason "reopened", and an issue that never closed needs no request.
    if issue.get("closed_at") or issue.get("state") == "closed" or issue.get("state_reason") == "reopened":
        for e in gh.all(f"{query.path}/issues/{n}/events?" + urlencode({"per_page": PER_PAGE})):
            if e.get("event") == "closed" and query.contains(e["created_at"]):
                out.append(record(query, issue, event_type="issues", relation_type="issue_closed",
                                  suffix=f"i{n}-closed-{e['id']}", actor=e.get("actor"), at=e["created_at"],
                                  relation_properties={"state_reason": e.get("state_reason"),
                                                       "commit_id": e.get("commit_id")}))
    return out
