"""The `github` query: one repository and a time window [since, until)."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime, timezone

from etl.core.errors import QueryError, shown
from etl.core.query import query_type
from etl.kit.window import WindowQuery

# GitHub's own rules: an owner is letters, digits and single inner hyphens (at most 39);
# a repository name is letters, digits, '.', '-' and '_'. Checking them here also keeps
# a '/' or '?' out of the URL paths the flows build.
_OWNER = re.compile(r"^[A-Za-z0-9](?:[A-Za-z0-9]|-(?=[A-Za-z0-9])){0,38}$")
_REPO = re.compile(r"^[A-Za-z0-9._-]{1,100}$")


def github_time(moment: datetime) -> str:
    """The form GitHub's `since` parameter takes: UTC, whole seconds, `Z`."""
    return moment.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


@query_type("github")
@dataclass(frozen=True)
class GitHubQuery(WindowQuery):
    owner: str
    """The user or organisation that owns the repository, e.g. `python`."""
    repo: str
    """The repository name, e.g. `cpython`."""
    since: datetime
    """Start of the window (inclusive); a date means midnight UTC."""
    until: datetime
    """End of the window (exclusive)."""

    summary_fields = ("owner", "repo", "since", "until")
    window_fields = ("since", "until")

    def validate(self) -> None:
        if "/" in self.owner:
            raise QueryError(self.name, "owner", f"{shown(self.owner)} contains '/'; give the owner and the "
                                                 "repository separately, e.g. owner=python repo=cpython")
        if not _OWNER.match(self.owner):
            raise QueryError(self.name, "owner", f"{shown(self.owner)} is not a GitHub user or organisation name "
                                                 "(letters, digits and single hyphens, at most 39)")
        if not _REPO.match(self.repo) or self.repo in (".", ".."):
            raise QueryError(self.name, "repo", f"{shown(self.repo)} is not a GitHub repository name "
                                                "(letters, digits, '.', '-' and '_')")
        super().validate()

    @property
    def slug(self) -> str:
        """`owner/repo` in lower case: GitHub names are case-insensitive, event ids must not be."""
        return f"{self.owner}/{self.repo}".lower()

    @property
    def path(self) -> str:
        """The repository's API path."""
        return f"/repos/{self.owner}/{self.repo}"
