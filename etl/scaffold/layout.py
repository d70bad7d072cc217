"""Where a source's files live, and what its parts are called.

Every source has the same shape, so adding one is copying a pattern:

    sources/<source>/__init__.py
    sources/<source>/settings.py         @source_settings(prefix="<SOURCE>_") class <Source>Settings
    sources/<source>/client.py           connect(settings): the kit's HTTP client for the API
    sources/<source>/query.py            @query_type("<source>") class <Source>Query
    sources/<source>/flows/__init__.py
    sources/<source>/flows/<flow>.py     @extract_method("<source>-<flow>") def extract_<flow>
    sources/<source>/fixture/            the offline API: server.py (<Source>Fixture), __main__.py
    sources/<source>/README.md
    tests/sources/test_<source>.py

A source is made from one of two templates (`KINDS`): `person`, whose query names a member and a
window of days, as Launchpad's; or `project`, whose query names a project and a time window,
as GitHub's. An existing source's kind is read from its query (a `member_field` means person).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from etl.scaffold.names import SKIPPED

KINDS = ("project", "person")


@dataclass(frozen=True)
class Layout:
    """The paths and names of one source in the project at `root`."""

    root: Path
    source: str
    template: str = "project"
    """The template a new source gets (`KINDS`)."""

    @property
    def kind(self) -> str:
        """`person` or `project`: the existing query's, else the template asked for."""
        if self.query.exists() and "member_field" in self.query.read_text(encoding="utf-8", errors="replace"):
            return "person"
        return "project" if self.query.exists() else self.template

    @property
    def dir(self) -> Path:
        return self.root / "sources" / self.source

    @property
    def settings(self) -> Path:
        return self.dir / "settings.py"

    @property
    def client(self) -> Path:
        return self.dir / "client.py"

    @property
    def fixture_dir(self) -> Path:
        return self.dir / "fixture"

    @property
    def prefix(self) -> str:
        """The settings' environment prefix: `acme_crm` -> `ACME_CRM_`."""
        return self.source.upper() + "_"

    def _camel(self, suffix: str) -> str:
        return "".join(part.capitalize() for part in self.source.split("_")) + suffix

    @property
    def settings_class(self) -> str:
        return self._camel("Settings")

    @property
    def fixture_class(self) -> str:
        return self._camel("Fixture")

    @property
    def init(self) -> Path:
        return self.dir / "__init__.py"

    @property
    def query(self) -> Path:
        return self.dir / "query.py"

    @property
    def flows_dir(self) -> Path:
        return self.dir / "flows"

    @property
    def flows_init(self) -> Path:
        return self.flows_dir / "__init__.py"

    @property
    def readme(self) -> Path:
        return self.dir / "README.md"

    @property
    def tests_dir(self) -> Path:
        return self.root / "tests"

    @property
    def tests_init(self) -> Path:
        return self.tests_dir / "sources" / "__init__.py"

    @property
    def test(self) -> Path:
        return self.tests_dir / "sources" / f"test_{self.source}.py"

    @property
    def package(self) -> str:
        return f"sources.{self.source}"

    @property
    def query_class(self) -> str:
        """The query class a new source gets: `acme_crm` -> `AcmeCrmQuery`."""
        return self._camel("Query")

    def flow(self, flow: str) -> Path:
        return self.flows_dir / f"{flow}.py"

    def strategy(self, flow: str) -> str:
        return f"{self.source}-{flow}"

    @staticmethod
    def function(flow: str) -> str:
        """The extract method a new flow gets."""
        return f"extract_{flow}"

    def existing_flows(self) -> list[str]:
        """The flows on disk: every module in flows/ that discovery would import."""
        if not self.flows_dir.is_dir():
            return []
        return sorted(p.stem for p in self.flows_dir.glob("*.py")
                      if not p.stem.startswith("_") and p.stem not in SKIPPED)

    def module(self, path: Path) -> str:
        """The dotted module name of a .py file under the root."""
        parts = path.relative_to(self.root).with_suffix("").parts
        return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)

    def rel(self, path: Path) -> str:
        """`path` as the user sees it: relative to the root."""
        try:
            return str(path.relative_to(self.root))
        except ValueError:
            return str(path)
