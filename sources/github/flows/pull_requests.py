"""`github-pull_requests`: pull requests opened, reviewed, merged and commented on, in [since, until).

The pull requests come from the same walk as issues (`flows/__init__.py`; `/pulls` has no
`since`). For each: the pull request itself (draft, base branch, who merged it), its reviews,
its review (diff) comments and its conversation comments (which GitHub keeps as issue
comments). Each act is kept only if its own time is in the window; pending (unsubmitted)
reviews are not acts yet. The events and their ids: README.md.
"""

from __future__ import annotations

from typing import Iterator

from etl.core.extract import Page, extract_method
from etl.core.settings import Settings
from etl.kit import SourceClient
from sources.github.client import PER_PAGE, github
from sources.github.flows import body_length, record, walk
from sources.github.query import GitHubQuery, github_time


@extract_method("github-pull_requests")
def extract_pull_requests(query: GitHubQuery, cursor: str | None, settings: Settings) -> Iterator[Page]:
    with github(settings) as gh:
        yield from walk(gh, query, cursor, True, lambda item: pull_records(gh, query, item["number"]))


def pull_records(gh: SourceClient, query: GitHubQuery, n: int) -> list[dict]:
    base, since, out = f"{query.path}/pulls/{n}", github_time(query.since), []
    pull = gh.json(base)
    extra = {"draft": pull.get("draft"), "base": (pull.get("base") or {}).get("ref")}

    def act(relation_type: str, suffix: str, actor: dict | None, at: str | None, **fields) -> None:
        if query.contains(at):
            out.append(record(query, pull, "pull_requests", relation_type, f"p{n}-{suffix}", actor, at,
                              **fields, **extra))

    act("pull_request_opened", "opened", pull.get("user"), pull["created_at"],
        metrics={"body_length": body_length(pull)})
    for r in gh.all(f"{base}/reviews", {"per_page": PER_PAGE}):
        if r.get("state") != "PENDING":
            act("pull_request_reviewed", f"r{r['id']}", r.get("user"), r.get("submitted_at"),
                relation_properties={"state": r.get("state"), "web_link": r.get("html_url")},
                metrics={"body_length": body_length(r)})
    for c in gh.all(f"{base}/comments", {"since": since, "per_page": PER_PAGE}):
        act("pull_request_review_comment", f"rc{c['id']}", c.get("user"), c["created_at"],
            relation_properties={"path": c.get("path"), "review_id": c.get("pull_request_review_id"),
                                 "web_link": c.get("html_url")}, metrics={"body_length": body_length(c)})
    for c in gh.all(f"{query.path}/issues/{n}/comments", {"since": since, "per_page": PER_PAGE}):
        act("pull_request_comment", f"c{c['id']}", c.get("user"), c["created_at"],
            relation_properties={"web_link": c.get("html_url")}, metrics={"body_length": body_length(c)})
    act("pull_request_merged", "merged", pull.get("merged_by"), pull.get("merged_at"),
        relation_properties={"merge_commit_sha": pull.get("merge_commit_sha")},
        metrics={k: pull.get(k) for k in ("commits", "additions", "deletions", "changed_files")})
    return out
