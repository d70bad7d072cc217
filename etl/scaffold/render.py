"""The files of a source, rendered from the templates in `templates/`.

`string.Template` (`${name}`), because the generated code is full of the `{}` that
`str.format` would need escaped, and `$` never occurs in it. The templates are kept alive by
tests/test_new.py, which renders a source, imports it, and runs its generated test.
"""

from __future__ import annotations

import string
from pathlib import Path

from etl.scaffold.layout import WINDOWS, Layout

TEMPLATES = Path(__file__).with_name("templates")

SAMPLE_MARKER = "# SAMPLE:"
"""In every generated .py file that holds sample code: while it is there, and the file is
otherwise as generated, `new.py` may rewrite the file."""
README_MARKER = "<!-- SAMPLE:"
"""In a generated README: while it is there, `new.py` may add sections for new flows."""

SAMPLE_SIZE = 3
"""How many records a sample flow yields: the sample fixture's items 1 to 3 are in the sample window."""


def _fill(template: str, **values: str) -> str:
    return string.Template((TEMPLATES / template).read_text(encoding="utf-8")).substitute(values)


def _names(layout: Layout) -> dict[str, str]:
    return {"source": layout.source, "prefix": layout.prefix, "settings_class": layout.settings_class,
            "fixture_class": layout.fixture_class, "query_class": layout.query_class, "key": layout.key,
            "package": layout.package}


def source_init(layout: Layout) -> str:
    return _fill("source_init.py.tmpl", source=layout.source)


def flows_init(layout: Layout) -> str:
    return _fill("flows_init.py.tmpl", source=layout.source)


def tests_init() -> str:
    return ""


def pyproject(layout: Layout) -> str:
    """A packaged source's pyproject.toml: its distribution, the entry point that makes it live."""
    return _fill("pyproject.toml.tmpl", source=layout.source, package=layout.package,
                 distribution=layout.distribution)


def settings(layout: Layout) -> str:
    return _fill("settings.py.tmpl", **_names(layout))


def client(layout: Layout) -> str:
    member = layout.kind == "person"
    return _fill("client.py.tmpl", **_names(layout),
                 client_imports="from etl.core.extract import group_expander\n" if member else "",
                 kit_imports="BodyCursor, " if member else "",
                 member_client=string.Template(_MEMBERS).substitute(source=layout.source) if member else "")


_MEMBERS = '''

@group_expander("${source}")
def team_members(team: str, settings: Settings, args: dict | None = None) -> list[str]:
    """A team's members, one flow each (the launchers' `--team`): the query's `expand_group` asks this."""
    with connect(settings) as api:
        return [m["name"] for m in api.all(f"/v1/teams/{team}/members", {}, BodyCursor(), items="data")]'''


def fixture_files(layout: Layout) -> dict[str, str]:
    """fixture/ file name -> content."""
    values = {**_names(layout), "key_default": _DEFAULTS[layout.kind][0], "other_key": _DEFAULTS[layout.kind][1]}
    return {"__init__.py": _fill("fixture_init.py.tmpl", **values),
            "server.py": _fill("fixture_server.py.tmpl", **values),
            "__main__.py": _fill("fixture_main.py.tmpl", **values)}


_DEFAULTS = {"person": ("ann", "bob"), "project": ("example", "other")}
_WINDOW = {  # type, imports, start default, end default, start doc, end doc
    "days": ("date", "date", "date(2024, 1, 1)", "date(2024, 2, 1)", "The first day read, inclusive (UTC).",
             "The day after the last one read, exclusive (UTC)."),
    "times": ("datetime", "datetime, timezone", "datetime(2024, 1, 1, tzinfo=timezone.utc)",
              "datetime(2024, 2, 1, tzinfo=timezone.utc)", "Start of the window, inclusive; a date means midnight UTC.",
              "End of the window, exclusive.")}


def query(layout: Layout) -> str:
    wtype, imports, start_default, end_default, start_doc, end_doc = _WINDOW[layout.window]
    start, end = WINDOWS[layout.window]
    member = layout.kind == "person"
    return _fill("query.py.tmpl", **_names(layout), window_type=wtype, window_imports=imports, start=start, end=end,
                 start_default=start_default, end_default=end_default, start_doc=start_doc, end_doc=end_doc,
                 key_default=_DEFAULTS[layout.kind][0],
                 what=f"one {'person' if member else layout.key}'s acts in a window of {layout.window}",
                 key_doc="The person whose acts are read." if member else f"The {layout.key} whose acts are read.",
                 member_doc=" `member_field` makes `member` the flow's `EtlMember` search attribute and part of its "
                            "workflow id; the launchers' `--team` runs one flow per member of a team, as "
                            "`team_members` in client.py lists them." if member else "",
                 member_line='\n    member_field = "member"' if member else "")


def flow(layout: Layout, flow: str, query_class: str | None = None) -> str:
    """flows/<flow>.py; `query_class` is the source's query class when it was renamed."""
    return _fill("flow.py.tmpl", **{**_names(layout), "query_class": query_class or layout.query_class},
                 flow=flow, strategy=layout.strategy(flow), function=layout.function(flow))


def sample_ids(strategy: str) -> list[str]:
    """The event ids a sample flow yields from the sample fixture data (the items in its window)."""
    return [f"{strategy}-sample-{n}" for n in range(1, SAMPLE_SIZE + 1)]


def readme_flow(layout: Layout, flow: str) -> str:
    return _fill("README_flow.md.tmpl", strategy=layout.strategy(flow))


def _query_table(layout: Layout) -> str:
    start, end = WINDOWS[layout.window]
    first, last = ("the first day, inclusive (UTC)", "the day after the last, exclusive") if layout.window == "days" \
        else ("start of the window, inclusive (a date means midnight UTC)", "end of the window, exclusive")
    key = "the person whose acts are read (teams expand into members)" if layout.kind == "person" \
        else f"the {layout.key} whose acts are read"
    return (f"| field | meaning |\n|---|---|\n| `{layout.key}` | {key} |\n| `{start}` | {first} |\n"
            f"| `{end}` | {last} |")


def readme(layout: Layout, flows: list[str], query_class: str | None = None) -> str:
    return _fill("README.md.tmpl", **{**_names(layout), "query_class": query_class or layout.query_class},
                 query_table=_query_table(layout),
                 flow_sections="".join(readme_flow(layout, f) for f in flows))


def test(layout: Layout, strategies: list[str]) -> str:
    """tests/sources/test_<source>.py, expecting the sample events of `strategies`."""
    lines = ["{"]
    for strategy in sorted(set(strategies)):
        ids = ", ".join(f'"{event_id}"' for event_id in sample_ids(strategy))
        lines.append(f'    "{strategy}": {{{ids}}},')
    lines.append("}")
    return _fill("test_source.py.tmpl", **_names(layout), expected="\n".join(lines))
