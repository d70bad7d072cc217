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

A source in a package of its own (`new.py NAME --package DIR`) has the same files in an
installable project, its import package `etl_source_<source>` standing for `sources/<source>`:

    DIR/pyproject.toml                   the distribution etl-source-<source>, its `etl.sources` entry point
    DIR/etl_source_<source>/...          as sources/<source>/ above, README.md included
    DIR/tests/test_<source>.py           the same test, on etl.testing's fixtures (a pytest plugin)

A new source's query names a key field and a window (`new.py --key K --window days|times`): `--key
member` makes a person's query, as Launchpad's (the member search attribute, team expansion); any
other key one thing's, such as a project, as GitHub's. A window of `days` is `data_date_start` and
`data_date_end` (dates), one of `times` is `since` and `until` (datetimes). `--template person` is
`--key member --window days`, `--template project` (the default) `--key project --window times`.
An existing source's key and window are read from its query.
"""

from __future__ import annotations

import ast
from dataclasses import dataclass
from pathlib import Path

from etl.scaffold.names import SKIPPED

KINDS = ("project", "person")


WINDOWS = {"days": ("data_date_start", "data_date_end"), "times": ("since", "until")}
TEMPLATES = {"project": ("project", "times"), "person": ("member", "days")}


@dataclass(frozen=True)
class Layout:
    """The paths and names of one source in the project at `root`."""

    root: Path
    source: str
    template: str = "project"
    """The template a new source gets (`KINDS`): its key and window, unless `key` or `window` say otherwise."""
    key_field: str | None = None
    window_kind: str | None = None
    packaged: bool = False
    """The source is a package of its own at `root`, not a folder of the project at `root`."""

    @property
    def key(self) -> str:
        """The query's key field: the existing query's, else the one asked for."""
        found = self._existing()
        return found[0] if found else self.key_field or TEMPLATES[self.template][0]

    @property
    def window(self) -> str:
        """`days` or `times`: the existing query's window, else the one asked for."""
        found = self._existing()
        return found[1] if found else self.window_kind or TEMPLATES[self.template][1]

    @property
    def kind(self) -> str:
        """`person` (the key is a member) or `project`."""
        return "person" if self.key == "member" else "project"

    def _existing(self) -> tuple[str, str] | None:
        """(key, window) of the query on disk, when it has the generated shape."""
        if not self.query.exists():
            return None
        try:
            tree = ast.parse(self.query.read_text(encoding="utf-8", errors="replace"))
        except SyntaxError:
            return None
        for node in ast.walk(tree):
            if isinstance(node, ast.ClassDef):
                fields = [(n.target.id, ast.unparse(n.annotation)) for n in node.body
                          if isinstance(n, ast.AnnAssign) and isinstance(n.target, ast.Name)]
                window = [k for k, names in WINDOWS.items() if all(f in dict(fields) for f in names)]
                key = [name for name, _ in fields if all(name not in names for names in WINDOWS.values())]
                if window and key:
                    return key[0], window[0]
        return None

    @property
    def dir(self) -> Path:
        return self.root / self.package if self.packaged else self.root / "sources" / self.source

    @property
    def distribution(self) -> str:
        """A packaged source's distribution name: `acme_crm` -> `etl-source-acme-crm`."""
        return "etl-source-" + self.source.replace("_", "-")

    @property
    def pyproject(self) -> Path:
        return self.root / "pyproject.toml"

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
    def tests_init(self) -> Path | None:
        """tests/sources/__init__.py; None for a package, whose tests/ is not one."""
        return None if self.packaged else self.tests_dir / "sources" / "__init__.py"

    @property
    def test(self) -> Path:
        folder = self.tests_dir if self.packaged else self.tests_dir / "sources"
        return folder / f"test_{self.source}.py"

    @property
    def package(self) -> str:
        """The source's import package: `sources.acme`, or `etl_source_acme` for a package of its own."""
        return f"etl_source_{self.source}" if self.packaged else f"sources.{self.source}"

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
