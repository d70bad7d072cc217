"""`github-pull_requests`: pull requests opened, reviewed, merged and commented on, in [since, until).

`/pulls` has no `since`, so it is listed by `updated_at`, newest first, and the listing
stops at the first pull request not updated since `since` (any act updates it). For each:
its reviews, its review (diff) comments and its conversation comments (which GitHub keeps
as issue comments), and for a merge in the window the pull request itself, because only
the single-item answer says who merged it. Each act is kept only if its own time is in
the window; pending (unsubmitted) reviews are not acts yet.

| act | relation_type | event_id | employee_id |
|---|---|---|---|
| opened | `pull_request_opened` | `gh-{owner}/{repo}-p{number}-opened` | the author |
| reviewed | `pull_request_reviewed` | `gh-{owner}/{repo}-p{number}-r{review id}` | the reviewer |
| merged | `pull_request_merged` | `gh-{owner}/{repo}-p{number}-merged` | who merged it |
| comment | `pull_request_comment` | `gh-{owner}/{repo}-p{number}-c{comment id}` | the commenter |
| diff comment | `pull_request_review_comment` | `gh-{owner}/{repo}-p{number}-rc{comment id}` | the commenter |

Conversation and diff comments have separate id sequences on GitHub, hence `c` and `rc`.
"""

from __future__ import annotations

from typing import Iterator
from urllib.parse import urlencode

from etl.core.extract import Page, extract_method
from etl.core.settings import Settings
from sources.github.client import PER_PAGE, GitHubClient
from sources.github.flows import CHUNK, body_length, record
from sources.github.query import GitHubQuery, github_time


@extract_method("github-pull_requests")
def extract_pull_requests(query: GitHubQuery, cursor: str | None, settings: Settings) -> Iterator[Page]:
    """One page of records per `CHUNK` pull requests; the cursor names the list page and position."""
    since = github_time(query.since)
    first = f"{query.path}/pulls?" + urlencode(
        {"state": "all", "sort": "updated", "direction": "desc", "per_page": PER_PAGE})
    with GitHubClient(settings) as gh:
        for items, after in gh.chunks(first, cursor, CHUNK):
            fresh = [pull for pull in items if query.touched(pull["updated_at"])]
            records = [r for pull in fresh for r in pull_records(gh, query, pull, since)]
            if len(fresh) < len(items):  # the rest of the list is older still
                yield Page(records, cursor=None)
                return
            yield Page(records, cursor=after)


def pull_records(gh: GitHubClient, query: GitHubQuery, pull: dict, since: str) -> list[dict]:
    n = pull["number"]
    base = f"{query.path}/pulls/{n}"
    extra = {"draft": pull.get("draft"), "base": (pull.get("base") or {}).get("ref")}

    def act(relation_type: str, suffix: str, actor: dict | None, at: str, **fields) -> dict:
        return record(query, pull, event_type="pull_requests", relation_type=relation_type,
                      suffix=f"p{n}-{suffix}", actor=actor, at=at, extra=extra, **fields)

    out = []
    if query.contains(pull["created_at"]):
        out.append(act("pull_request_opened", "opened", pull.get("user"), pull["created_at"],
                       metrics={"body_length": body_length(pull)}))
    for r in gh.all(f"{base}/reviews?" + urlencode({"per_page": PER_PAGE})):
        if r.get("state") != "PENDING" and query.contains(r.get("submitted_at")):
            out.append(act("pull_request_reviewed", f"r{r['id']}", r.get("user"), r["submitted_at"],
                           relation_properties={"state": r.get("state"), "web_link": r.get("html_url")},
                           metrics={"body_length": body_length(r)}))
    for c in gh.all(f"{base}/comments?" + urlencode({"since": since, "per_page": PER_PAGE})):
        if query.contains(c["created_at"]):
            out.append(act("pull_request_review_comment", f"rc{c['id']}", c.get("user"), c["created_at"],
                           relation_properties={"path": c.get("path"), "review_id": c.get("pull_request_review_id"),
                                                "web_link": c.get("html_url")},
                           metrics={"body_length": body_length(c)}))
    for c in gh.all(f"{query.path}/issues/{n}/comments?" + urlencode({"since": since, "per_page": PER_PAGE})):
        if query.contains(c["created_at"]):
            out.append(act("pull_request_comment", f"c{c['id']}", c.get("user"), c["created_at"],
                           relation_properties={"web_link": c.get("html_url")},
                           metrics={"body_length": body_length(c)}))
    if query.contains(pull.get("merged_at")):
        full, _ = gh.get(base)
        out.append(act("pull_request_merged", "merged", full.get("merged_by"), pull["merged_at"],
                       relation_properties={"merge_commit_sha": full.get("merge_commit_sha")},
                       metrics={"commits": full.get("commits"), "additions": full.get("additions"),
                                "deletions": full.get("deletions"), "changed_files": full.get("changed_files")}))
    return out
