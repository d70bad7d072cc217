"""The GitHub source's settings (`GITHUB_*`), read by every worker that runs its flows."""

from __future__ import annotations

from dataclasses import dataclass

from etl.core.source_settings import SourceSettings, max_concurrent, rate_limit, secret, setting, source_settings


@source_settings(prefix="GITHUB_")
@dataclass(frozen=True)
class GitHubSettings(SourceSettings):
    token: str | None = secret(help="a token with read access; sent only to GITHUB_API_URL")
    api_url: str = setting("https://api.github.com", kind="url", help="the REST API's base URL")
    timeout: float = setting(30.0, minimum=0.1, maximum=600, help="seconds for one HTTP exchange")
    rate_limit: str | None = rate_limit("5000/h", help="GitHub's REST limit per token, shared by the whole fleet")
    max_concurrent: int = max_concurrent(100, help="GitHub's limit on concurrent requests per token, across the fleet")
