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
"""How many records a sample flow yields: `flow.py.tmpl` yields `n` in (1, 2, 3)."""


def _fill(template: str, **values: str) -> str:
    return string.Template((TEMPLATES / template).read_text(encoding="utf-8")).substitute(values)


def source_init(layout: Layout) -> str:
    return _fill("source_init.py.tmpl", source=layout.source)


def flows_init(layout: Layout) -> str:
    return _fill("flows_init.py.tmpl", source=layout.source)


def tests_init() -> str:
    return ""


def query(layout: Layout) -> str:
    return _fill("query.py.tmpl", source=layout.source, query_class=layout.query_class)


def flow(layout: Layout, flow: str, query_class: str | None = None) -> str:
    """flows/<flow>.py; `query_class` is the source's query class when it was renamed."""
    return _fill("flow.py.tmpl", source=layout.source, flow=flow, strategy=layout.strategy(flow),
                 function=layout.function(flow), query_class=query_class or layout.query_class)


def sample_ids(strategy: str) -> list[str]:
    """The event ids a sample flow yields."""
    return [f"{strategy}-sample-{n}" for n in range(1, SAMPLE_SIZE + 1)]


def readme_flow(layout: Layout, flow: str) -> str:
    return _fill("README_flow.md.tmpl", strategy=layout.strategy(flow))


def readme(layout: Layout, flows: list[str], query_class: str | None = None) -> str:
    return _fill("README.md.tmpl", source=layout.source, query_class=query_class or layout.query_class,
                 flow_sections="".join(readme_flow(layout, f) for f in flows))


def test(layout: Layout, strategies: list[str]) -> str:
    """tests/sources/test_<source>.py, expecting the sample events of `strategies`."""
    lines = ["{"]
    for strategy in sorted(set(strategies)):
        ids = ", ".join(f'"{event_id}"' for event_id in sample_ids(strategy))
        lines.append(f'    "{strategy}": {{{ids}}},')
    lines.append("}")
    return _fill("test_source.py.tmpl", source=layout.source, expected="\n".join(lines))
