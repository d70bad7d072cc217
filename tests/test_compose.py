"""CI's check of `docker-compose.yml`, since Docker does not run here: the file validates against
the Compose Specification's JSON schema, and everything it refers to exists in the repo.

The schema (`tests/compose-spec.json`, Apache-2.0, see `compose-spec.LICENSE`) is the one the
check-jsonschema project vendors from compose-spec/compose-spec; refresh it from a newer
check-jsonschema wheel when Compose gains features this file uses.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import jsonschema
import pytest
import yaml

from etl.workflows import search_attributes as sa

ROOT = Path(__file__).resolve().parent.parent
SCHEMA = Path(__file__).with_name("compose-spec.json")


@pytest.fixture(scope="module")
def compose() -> dict:
    return yaml.safe_load((ROOT / "docker-compose.yml").read_text())


def test_compose_file_follows_the_compose_specification(compose):
    validator = jsonschema.Draft202012Validator(json.loads(SCHEMA.read_text()))
    problems = [f"{'/'.join(map(str, e.absolute_path)) or '(top)'}: {e.message}" for e in validator.iter_errors(compose)]
    assert problems == []


def test_a_broken_compose_file_is_caught():
    """The check above can fail: a typo in a key is a schema error."""
    validator = jsonschema.Draft202012Validator(json.loads(SCHEMA.read_text()))
    broken = {"services": {"w": {"image": "x", "depends_on": {"db": {"condition": "service_healty"}}, "restart_policy": 1}}}
    assert len(list(validator.iter_errors(broken))) >= 2


def bind_mounts(service: dict) -> list[tuple[str, str]]:
    """(source, target) of each bind mount; named volumes are skipped."""
    mounts = []
    for volume in service.get("volumes", []):
        if isinstance(volume, str):
            source, _, rest = volume.partition(":")
            target = rest.split(":")[0]
        else:
            if volume.get("type") != "bind":
                continue
            source, target = volume["source"], volume["target"]
        if source.startswith((".", "/")):
            mounts.append((source, target))
    return mounts


def test_every_path_the_file_refers_to_exists(compose):
    missing = []
    for name, service in compose["services"].items():
        build = service.get("build")
        if build:
            context = ROOT / (build if isinstance(build, str) else build.get("context", "."))
            dockerfile = context / (build.get("dockerfile", "Dockerfile") if isinstance(build, dict) else "Dockerfile")
            missing += [f"{name}: build {p}" for p in (context, dockerfile) if not p.exists()]
        for env_file in [service["env_file"]] if isinstance(service.get("env_file"), str) else service.get("env_file", []):
            path = env_file if isinstance(env_file, str) else env_file["path"]
            if not (ROOT / path).exists() and not (isinstance(env_file, dict) and env_file.get("required") is False):
                missing.append(f"{name}: env_file {path}")
        mounts = bind_mounts(service)
        missing += [f"{name}: volume {source}" for source, _ in mounts if not (ROOT / source).exists()]
        # A script run from a mount must be inside one, and exist there.
        for word in service.get("entrypoint", []) if isinstance(service.get("entrypoint"), list) else []:
            if word.startswith("/setup/"):
                sources = [ROOT / s / Path(word).relative_to(t) if Path(word).is_relative_to(t) else None
                           for s, t in mounts]
                sources += [ROOT / s for s, t in mounts if t == word]
                if not any(p is not None and p.is_file() for p in sources):
                    missing.append(f"{name}: entrypoint {word} is not a mounted file")
        for volume in service.get("volumes", []):
            named = volume.split(":")[0] if isinstance(volume, str) else volume.get("source", "")
            if named and not named.startswith((".", "/")) and named not in (compose.get("volumes") or {}):
                missing.append(f"{name}: named volume {named} is not declared")
        for other in service.get("depends_on", {}):
            if other not in compose["services"]:
                missing.append(f"{name}: depends on unknown service {other}")
    assert missing == []


def test_temporal_reads_its_configuration_from_temporal_config(compose):
    temporal = compose["services"]["temporal"]
    assert ("./temporal-config", "/etc/temporal/config") in bind_mounts(temporal)
    for path in ("base.yaml", "docker.yaml", "dynamicconfig/docker.yaml"):
        text = (ROOT / "temporal-config" / path).read_text()
        assert text.startswith("#"), f"temporal-config/{path} must open with comments that document it"
        assert yaml.safe_load(text)
    server = (ROOT / "temporal-config" / "docker.yaml").read_text()
    assert "# enable-template" in server[:1024]
    # What the server renders: only `env` calls, each a whole YAML scalar.
    rendered = re.sub(r"\{\{ env \"[A-Z_]+\" \}\}", "value", server)
    assert "{{" not in rendered and yaml.safe_load(rendered)["persistence"]["datastores"]["default"]["sql"]["password"] == "value"
    assert "/etc/temporal/config/dynamicconfig/docker.yaml" in server
    assert "pluginName: postgres12" in server


def test_workers_scale_and_are_checked_on_healthz(compose):
    for name in ("batch-worker", "streaming-worker"):
        worker = compose["services"][name]
        assert "container_name" not in worker and "ports" not in worker, f"{name} could not be scaled"
        assert "/healthz" in " ".join(worker["healthcheck"]["test"])
        assert worker["environment"]["HEALTH_PORT"] == "8000" and worker["environment"]["HEALTH_HOST"] == "0.0.0.0"
        assert worker["depends_on"]["temporal-setup"]["condition"] == "service_completed_successfully"
    assert compose["services"]["temporal-ui"]["ports"] == ["8080:8080"]
    assert compose["services"]["workflows-db"]["ports"] == ["7000:5432"]


def test_setup_registers_exactly_our_search_attributes():
    script = (ROOT / "temporal-config" / "setup-namespace.sh").read_text()
    registered = dict(re.findall(r"(Etl\w+):(Keyword|Text)", script))
    ours = {key.name: ("Text" if key is sa.ETL_QUERY else "Keyword") for key in sa.ALL}
    assert registered == ours


def test_dockerfile_copies_only_what_exists():
    sources = re.findall(r"^COPY (?:--\S+ )*(.+?) \S+$", (ROOT / "Dockerfile").read_text(), re.M)
    paths = [p for line in sources for p in line.split()]
    assert paths and [p for p in paths if not (ROOT / p).exists()] == []
