"""The Launchpad source's settings (`LP_*`), read by every worker that runs its flows."""

from __future__ import annotations

from dataclasses import dataclass

from etl.core.source_settings import SourceSettings, max_concurrent, rate_limit, setting, source_settings


@source_settings(prefix="LP_")
@dataclass(frozen=True)
class LaunchpadSettings(SourceSettings):
    app_id: str = setting("temporal-etl-fleet", kind="name", help="how the client introduces itself")
    web_root: str = setting("production", help="production, staging, or a service root URL")
    api_version: str = setting("devel", kind="name", help="devel (the flows need it for questions) or 1.0")
    credentials_file: str | None = setting(None, help="OAuth credentials for private data; never a query argument")
    cache_dir: str | None = setting(None, help="launchpadlib's cache (default under ETL_STATE_DIR)")
    timeout: float = setting(60.0, maximum=3600, help="seconds for one HTTP exchange with Launchpad")
    rate_limit: str | None = rate_limit(None, help="requests per credential (anonymous counts as one) for the "
                                                   "whole fleet, e.g. 600/min; Launchpad publishes none")
    max_concurrent: int = max_concurrent(0, help="requests in flight at once across the fleet (0: no bound)")
