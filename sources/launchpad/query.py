"""The `launchpad` query: whose contributions, over which days, from which Launchpad."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date

from launchpadlib import uris

from etl.core.errors import QueryError, shown
from etl.core.query import query_type
from etl.kit.window import WindowQuery

# Launchpad's own rule for person and team names.
NAME = re.compile(r"^[a-z0-9][a-z0-9+.-]*$")
VERSION = re.compile(r"^[A-Za-z0-9.]+$")


@query_type("launchpad")
@dataclass(frozen=True)
class LaunchpadQuery(WindowQuery):
    member: str
    """A Launchpad person's name (`alice`, not `Alice Arden`). Teams are expanded by the launcher."""
    data_date_start: date
    """First day of the range (UTC), inclusive."""
    data_date_end: date
    """Day after the range (UTC): exclusive."""
    service_root: str | None = None
    """`production`, `staging`, `qastaging` or a service root URL; default: the worker's LP_WEB_ROOT."""
    api_version: str | None = None
    """`devel` (the flows need it for questions) or `1.0`; default: the worker's LP_API_VERSION."""
    application_name: str | None = None
    """How the client introduces itself to Launchpad; default: the worker's LP_APP_ID."""

    summary_fields = ("member", "data_date_start", "data_date_end", "service_root")
    member_field = "member"
    window_fields = ("data_date_start", "data_date_end")

    def validate(self) -> None:
        if not NAME.match(self.member):
            raise QueryError(self.name, "member", f"{shown(self.member)} is not a Launchpad name: give the name "
                                                  "from the profile URL (launchpad.net/~NAME), in lower case")
        super().validate()
        root = self.service_root
        if root is not None and root not in uris.service_roots and not root.startswith(("http://", "https://")):
            known = ", ".join(sorted(uris.service_roots))
            raise QueryError(self.name, "service_root", f"{shown(root)} is neither a known Launchpad ({known}) "
                                                        "nor an http(s) URL")
        if self.api_version is not None and not VERSION.match(self.api_version):
            raise QueryError(self.name, "api_version", f"{shown(self.api_version)} is not a version such as devel or 1.0")
