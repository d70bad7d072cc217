"""The files of a source, rendered from the templates in `templates/`.

`string.Template` (`${name}`), because the generated code is full of the `{}` that
`str.format` would need escaped, and `$` never occurs in it. The templates are kept alive by
tests/test_new.py, which renders a source, imports it, and runs its generated test.
"""

from __future__ import annotations

import string
from pathlib import Path

from etl.scaffold.layout import Layout

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
            "fixture_class": layout.fixture_class, "query_class": layout.query_class}


def source_init(layout: Layout) -> str:
    return _fill("source_init.py.tmpl", source=layout.source)


def flows_init(layout: Layout) -> str:
    return _fill("flows_init.py.tmpl", source=layout.source)


def tests_init() -> str:
    return ""


def settings(layout: Layout) -> str:
    return _fill("settings.py.tmpl", **_names(layout))


def client(layout: Layout) -> str:
    return _fill("client.py.tmpl", **_names(layout))


def fixture_files(layout: Layout) -> dict[str, str]:
    """fixture/ file name -> content."""
    return {"__init__.py": _fill("fixture_init.py.tmpl", **_names(layout)),
            "server.py": _fill("fixture_server.py.tmpl", **_names(layout)),
            "__main__.py": _fill("fixture_main.py.tmpl", **_names(layout))}


def query(layout: Layout) -> str:
    return _fill(f"query_{layout.kind}.py.tmpl", **_names(layout))


_PARAMS = {"person": '{"author": query.member}', "project": '{"project": query.project}'}


def flow(layout: Layout, flow: str, query_class: str | None = None) -> str:
    """flows/<flow>.py; `query_class` is the source's query class when it was renamed."""
    return _fill("flow.py.tmpl", **{**_names(layout), "query_class": query_class or layout.query_class},
                 flow=flow, strategy=layout.strategy(flow), function=layout.function(flow),
                 params=_PARAMS[layout.kind])


def sample_ids(strategy: str) -> list[str]:
    """The event ids a sample flow yields from the sample fixture data (the items in its window)."""
    return [f"{strategy}-sample-{n}" for n in range(1, SAMPLE_SIZE + 1)]


def readme_flow(layout: Layout, flow: str) -> str:
    return _fill("README_flow.md.tmpl", strategy=layout.strategy(flow))


_QUERY_TABLES = {
    "person": "| field | meaning |\n|---|---|\n"
              "| `member` | the person whose acts are read (teams expand into members) |\n"
              "| `data_date_start` | the first day, inclusive (UTC) |\n| `data_date_end` | the day after the last, "
              "exclusive |",
    "project": "| field | meaning |\n|---|---|\n| `project` | the project whose acts are read |\n"
               "| `since` | start of the window, inclusive (a date means midnight UTC) |\n"
               "| `until` | end of the window, exclusive |",
}


def readme(layout: Layout, flows: list[str], query_class: str | None = None) -> str:
    return _fill("README.md.tmpl", **{**_names(layout), "query_class": query_class or layout.query_class},
                 query_table=_QUERY_TABLES[layout.kind],
                 flow_sections="".join(readme_flow(layout, f) for f in flows))


def test(layout: Layout, strategies: list[str]) -> str:
    """tests/sources/test_<source>.py, expecting the sample events of `strategies`."""
    lines = ["{"]
    for strategy in sorted(set(strategies)):
        ids = ", ".join(f'"{event_id}"' for event_id in sample_ids(strategy))
        lines.append(f'    "{strategy}": {{{ids}}},')
    lines.append("}")
    return _fill("test_source.py.tmpl", **_names(layout), expected="\n".join(lines))
