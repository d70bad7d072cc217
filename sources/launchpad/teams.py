"""Expanding a Launchpad team into its members' names, for launching one flow per member.

`team.members` lists the members; some Launchpad versions (and `members_details`) hand back
membership records instead, whose person is `membership.member` (a membership record has no
`name` of its own). Both are handled. Anonymous login unless LP_CREDENTIALS_FILE names an
OAuth credentials file (needed for private teams). Runs in the launcher, never in a workflow.
"""

from __future__ import annotations

from etl.core.errors import SourceError
from etl.core.settings import Settings


def _name(entry) -> str:
    person = getattr(entry, "member", None) or entry  # a membership record points at its person
    return person.name


def team_members(service_root: str, team: str, settings: Settings) -> list[str]:
    """The sorted Launchpad names of `team`'s members at `service_root` (production, staging or a URL)."""
    import httplib2
    from launchpadlib.launchpad import Launchpad
    from lazr.restfulclient.errors import HTTPError

    try:
        if settings.lp_credentials_file:
            lp = Launchpad.login_with(settings.lp_app_id, service_root, settings.lp_cache_dir,
                                      credentials_file=settings.lp_credentials_file, version=settings.lp_api_version)
        else:
            lp = Launchpad.login_anonymously(settings.lp_app_id, service_root, settings.lp_cache_dir,
                                             version=settings.lp_api_version)
        try:
            entry = lp.people[team]
        except KeyError:
            raise SourceError(f"Launchpad at {service_root} has no person or team named {team!r}; "
                              "check the spelling (the name in the team's URL, not its display name)",
                              status=404) from None
        if not getattr(entry, "is_team", False):
            raise SourceError(f"{team!r} is a person, not a team; give a team name, or launch that "
                              "person's flows with --arg member=...")
        return sorted({_name(m) for m in entry.members})
    except HTTPError as exc:
        raise SourceError(f"Launchpad at {service_root} refused to list team {team!r}: HTTP {exc.response.status}",
                          status=exc.response.status) from None
    except (OSError, httplib2.HttpLib2Error) as exc:
        raise SourceError(f"cannot reach Launchpad at {service_root} to list team {team!r}: {exc}") from None


def team_flow_specs(members: list[str], strategies: list[str], date_from: str, date_to: str,
                    service_root: str | None = None) -> list:
    """One flow per member x strategy over [date_from, date_to), in the `launchpad` query's terms."""
    from etl.launch.flow_file import FlowSpec

    extra = {"service_root": service_root} if service_root else {}
    return [FlowSpec(strategy, {"member": member, "data_date_start": date_from, "data_date_end": date_to, **extra})
            for member in members for strategy in strategies]
