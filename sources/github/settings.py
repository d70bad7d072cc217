"""The GitHub source's settings (`GITHUB_*`), read by every worker that runs its flows."""

from __future__ import annotations

from dataclasses import dataclass

from etl.core.source_settings import SourceSettings, secret, setting, source_settings


@source_settings(prefix="GITHUB_")
@dataclass(frozen=True)
class GitHubSettings(SourceSettings):
    token: str | None = secret(help="a token with read access; sent only to GITHUB_API_URL")
    api_url: str = setting("https://api.github.com", kind="url", help="the REST API's base URL")
    timeout: float = setting(30.0, minimum=0.1, maximum=600, help="seconds for one HTTP exchange")
