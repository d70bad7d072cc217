"""The kit client, set up for GitHub's REST API: its headers, its token, what to fix when refused."""

from __future__ import annotations

from etl.core.settings import Settings
from etl.kit import Bearer, SourceClient
from sources.github.settings import GitHubSettings

PER_PAGE = 100
"""GitHub's largest page."""


def github(settings: Settings) -> SourceClient:
    """A client for one extract call: `with github(settings) as gh: gh.json(...)`."""
    gh = settings.source(GitHubSettings)
    need = "set GITHUB_TOKEN to a valid token" if gh.token else "this API needs a token: set GITHUB_TOKEN"
    return SourceClient(
        gh.api_url, auth=Bearer(gh.token) if gh.token else None, timeout=gh.timeout, name="GitHub",
        limits=gh.limits(),
        headers={"Accept": "application/vnd.github+json", "X-GitHub-Api-Version": "2022-11-28"},
        hints={401: need, 404: "check the query's owner and repo, and for a private repository that "
                                "GITHUB_TOKEN can read it",
               403: "give GITHUB_TOKEN read access to this repository's issues and pull requests"})
