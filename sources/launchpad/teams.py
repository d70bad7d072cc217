"""Expanding a Launchpad team into its members' names: the `launchpad` group expander, which the
launcher runs (`LaunchpadQuery.expand_group`), never a workflow. It logs in as the flows do. A
membership record (some Launchpad versions, `members_details`) has no `name`: its person is `member`.
"""

from __future__ import annotations

from typing import Any

from etl.core.errors import SourceError
from etl.core.extract import group_expander
from etl.core.settings import Settings
from sources.launchpad.client import Client, person_named, retrying
from sources.launchpad.query import LaunchpadQuery


def _name(entry) -> str:
    person = getattr(entry, "member", None) or entry  # a membership record points at its person
    return person.name


@group_expander("launchpad")
def team_members(team: str, settings: Settings, args: dict[str, Any] | None = None) -> list[str]:
    """The sorted Launchpad names of `team`'s members, at the service root `args` names (or LP_WEB_ROOT)."""
    # Any valid window will do: only the service root, API version and application name are used.
    query = LaunchpadQuery.from_dict({"data_date_start": "2000-01-01", "data_date_end": "2000-01-02",
                                      **(args or {}), "member": team})
    client = Client(query, settings)
    with client as lp:
        entry = person_named(lp, client.base, team)
        if not getattr(entry, "is_team", False):
            raise SourceError(f"{team!r} is a person, not a team; give a team name, or launch that "
                              "person's flows with --arg member=...")
        return retrying(lambda: sorted({_name(m) for m in entry.members}), f"the members of {team!r}")
