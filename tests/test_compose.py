"""CI's check of `docker-compose.yml`, since Docker does not run here: the file validates against
the Compose Specification's JSON schema, the Compose v1 tool accepts and renders it (with
`tests/compose.sample.env` plus a value for every setting), and what it renders keeps the rules of a
safe deployment: no default secrets, nothing of the databases published, published ports on
loopback only, every setting of the framework and of each source reaching the workers, a
database sized for the declared fleet, pinned images, limits, log rotation and health checks.

The schema (`tests/compose-spec.json`, Apache-2.0, see `compose-spec.LICENSE`) is the one the
check-jsonschema project vendors from compose-spec/compose-spec; refresh it from a newer
check-jsonschema wheel when Compose gains features this file uses. The v1 tool is installed on
first use into `.etl/compose-v1/` (tests/compose_v1.py).
"""

from __future__ import annotations

import functools
import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import jsonschema
import pytest
import yaml
from dotenv import dotenv_values

from tests import compose_v1

try:  # the search attributes moved with the restructuring of etl/ into packages
    from etl.workflows import search_attributes as sa
except ImportError:  # pragma: no cover - the layout before it
    from etl import search_attributes as sa

ROOT = Path(__file__).resolve().parent.parent
SCHEMA = Path(__file__).with_name("compose-spec.json")
SAMPLE_ENV = ROOT / "tests" / "compose.sample.env"
WORKERS = ("batch-worker", "streaming-worker")
REQUIRED_SECRETS = ("TEMPORAL_DB_PASSWORD", "DB_PASSWORD", "ETL_ENCRYPTION_KEY")
SECRET_NAME = re.compile(r"PASSWORD|KEY|TOKEN|SECRET")
RESERVED_CONNECTIONS = 10
"""Connections of workflows-db left for launchers, psql and backups beyond the workers' pools."""

# What the workers need when etl.core.settings cannot list it (name: secret?).
FALLBACK_VARIABLES = {
    "TEMPORAL_HOST": False, "TEMPORAL_NAMESPACE": False, "TEMPORAL_TLS": False, "TEMPORAL_API_KEY": True,
    "DB_HOST": False, "DB_PORT": False, "DB_NAME": False, "DB_USER": False, "DB_PASSWORD": True,
    "DB_MIN_CONN": False, "DB_MAX_CONN": False, "EVENTS_TABLE": False, "ETL_ENCRYPTION_KEY": True,
    "WORKER_CONCURRENCY": False, "MEMORY_LIMIT_MIB": False, "HEALTH_PORT": False, "HEALTH_HOST": False,
    "GITHUB_TOKEN": True, "GITHUB_API_URL": False, "LP_CREDENTIALS_FILE": False, "LP_TIMEOUT": False,
    "LP_WEB_ROOT": False, "LP_API_VERSION": False, "LP_APP_ID": False, "LP_CACHE_DIR": False,
}
# Worker versioning, planned: passed already so turning it on needs no compose change.
PLANNED_VARIABLES = {"WORKER_DEPLOYMENT_NAME": False, "WORKER_BUILD_ID": False}
# Optional secrets reach the workers through env_file only: listing them would need a default.
OPTIONAL_SECRETS = {"GITHUB_TOKEN", "TEMPORAL_API_KEY"}
# Where things are inside the deployment: compose fixes these whatever the env file says.
FIXED_IN_COMPOSE = {"TEMPORAL_HOST": "temporal:7233", "DB_HOST": "workflows-db", "DB_PORT": "5432",
                    "DATABASE_URL": "", "HEALTH_HOST": "0.0.0.0", "HEALTH_PORT": "8000",
                    "ETL_STATE_DIR": "/var/lib/etl"}


@functools.cache
def settings_variables() -> dict[str, bool]:
    """Every variable the framework and each discovered source reads, mapped to whether it is secret."""
    try:
        from etl.core.settings import all_variables
    except ImportError:
        return {**FALLBACK_VARIABLES, **PLANNED_VARIABLES}
    return {**all_variables(), **PLANNED_VARIABLES}


def is_secret(name: str) -> bool:
    return bool(SECRET_NAME.search(name)) or settings_variables().get(name, False)


@pytest.fixture(scope="module")
def compose() -> dict:
    return yaml.safe_load((ROOT / "docker-compose.yml").read_text())


@pytest.fixture(scope="module")
def sample() -> dict[str, str]:
    return {k: v for k, v in dotenv_values(SAMPLE_ENV).items() if v is not None}


@pytest.fixture(scope="module")
def full_env(sample) -> dict[str, str]:
    """The sample env file plus a distinct value for every setting it leaves out."""
    return {**{name: f"ci-{name.lower()}" for name in settings_variables()}, **sample}


@pytest.fixture(scope="module")
def render(tmp_path_factory):
    def run(env: dict[str, str], compose_file: Path = ROOT / "docker-compose.yml") -> compose_v1.Rendered:
        try:
            return compose_v1.render(env, tmp_path_factory.mktemp("compose"), compose_file)
        except compose_v1.InstallError as exc:
            pytest.fail(f"could not install the Compose v1 tool from the package index: {exc}")
    return run


@pytest.fixture(scope="module")
def rendered(render, full_env) -> dict:
    """The file as Compose v1 resolves it with every variable set."""
    result = render(full_env)
    assert result.returncode == 0, result.stderr
    return result.config


@pytest.fixture(scope="module")
def defaults(render, sample) -> dict:
    """The file as Compose v1 resolves it with only the required secrets set: its defaults."""
    result = render({name: sample[name] for name in REQUIRED_SECRETS})
    assert result.returncode == 0, result.stderr
    return result.config


def test_compose_file_follows_the_compose_specification(compose):
    validator = jsonschema.Draft202012Validator(json.loads(SCHEMA.read_text()))
    problems = [f"{'/'.join(map(str, e.absolute_path)) or '(top)'}: {e.message}" for e in validator.iter_errors(compose)]
    assert problems == []


def test_a_broken_compose_file_is_caught():
    """The check above can fail: a typo in a key is a schema error."""
    validator = jsonschema.Draft202012Validator(json.loads(SCHEMA.read_text()))
    broken = {"services": {"w": {"image": "x", "depends_on": {"db": {"condition": "service_healty"}}, "restart_policy": 1}}}
    assert len(list(validator.iter_errors(broken))) >= 2


def test_compose_v1_accepts_the_file_with_the_sample_env(render, full_env):
    result = render(full_env)
    assert result.returncode == 0, result.stderr
    assert "is not set" not in result.stderr
    assert set(result.config["services"]) >= {"temporal", "temporal-ui", "codec-server", "workflows-db", *WORKERS}


def test_compose_v1_rejects_what_it_cannot_read(render, tmp_path):
    """The v1 check can fail: a top-level `name:` (Compose v2 only) is an error in v1."""
    broken = tmp_path / "broken.yml"
    broken.write_text("name: fleet\nservices:\n  one:\n    image: busybox:1.36.1\n")
    result = render({}, broken)
    assert result.returncode != 0 and "'name' does not match" in result.stderr
    assert "name" not in yaml.safe_load((ROOT / "docker-compose.yml").read_text())


@pytest.mark.parametrize("secret", REQUIRED_SECRETS)
def test_nothing_starts_without_a_required_secret(render, full_env, secret):
    result = render({k: v for k, v in full_env.items() if k != secret})
    assert result.returncode != 0
    assert f"set {secret}" in result.stderr


def test_no_secret_has_a_default(compose):
    text = (ROOT / "docker-compose.yml").read_text()
    defaulted = [m.group(0) for m in re.finditer(r"\$\{(\w+)(:?-)", text) if is_secret(m.group(1))]
    assert defaulted == []
    # A secret in an environment block is empty or a required variable, never a literal.
    literal = []
    for name, service in compose["services"].items():
        for key, value in (service.get("environment") or {}).items():
            if is_secret(key) and value not in ("", None) and not re.fullmatch(r"\$\{\w+:\?[^}]+\}", str(value)):
                literal.append(f"{name}: {key}")
    assert literal == []


def published_ports(service: dict) -> list[tuple[str, str]]:
    """(host address, host port) of each published port, short or long syntax."""
    found = []
    for port in service.get("ports", []):
        if isinstance(port, dict):
            found.append((port.get("host_ip", ""), str(port.get("published", ""))))
        else:
            parts = str(port).split("/")[0].split(":")
            found.append((parts[0], parts[1]) if len(parts) == 3 else ("", parts[0]))
    return found


def test_databases_are_not_published_and_the_rest_only_on_loopback(rendered):
    for name, service in rendered["services"].items():
        if service["image"].startswith("postgres:"):
            assert "ports" not in service, f"{name} is a database: reach it with docker compose exec"
        for address, port in published_ports(service):
            assert address == "127.0.0.1", f"{name} publishes {port} on {address or 'every interface'}"
    published = {name for name, s in rendered["services"].items() if s.get("ports")}
    assert published == {"temporal", "temporal-ui", "codec-server"}


def test_databases_and_the_frontend_are_on_internal_networks(rendered):
    internal = {name for name, spec in rendered["networks"].items() if (spec or {}).get("internal")}
    services = rendered["services"]
    for name, service in services.items():
        if service["image"].startswith("postgres:"):
            assert set(service["networks"]) <= internal, f"{name} is on a network with a way out"
    for worker in WORKERS:
        for other in ("temporal", "workflows-db"):
            shared = set(services[worker]["networks"]) & set(services[other]["networks"])
            assert shared and shared <= internal, f"{worker} reaches {other} over {shared}"
        assert not set(services[worker]["networks"]) & set(services["temporal-db"]["networks"])


def test_every_setting_reaches_the_workers(compose, rendered, full_env):
    for worker in WORKERS:
        environment = rendered["services"][worker]["environment"]
        wrong = {name: environment.get(name, "<missing>") for name in settings_variables()
                 if environment.get(name, "<missing>") != FIXED_IN_COMPOSE.get(name, full_env[name])}
        assert wrong == {}, f"{worker} does not get these settings as given"
    # The explicit list: every worker setting but the optional secrets, which only env_file carries.
    for worker in WORKERS:
        listed = set(compose["services"][worker]["environment"])
        assert {*FALLBACK_VARIABLES, *PLANNED_VARIABLES} - OPTIONAL_SECRETS <= listed
        assert compose["services"][worker]["env_file"] == ["${ETL_ENV_FILE:-.env}"]


def test_the_events_database_is_sized_for_the_declared_fleet(defaults, rendered):
    for config in (defaults, rendered):
        command = " ".join(config["services"]["workflows-db"]["command"])
        max_connections = int(re.search(r"max_connections=(\d+)", command).group(1))
        demand = sum(int(config["services"][w]["scale"]) * int(config["services"][w]["environment"]["DB_MAX_CONN"])
                     for w in WORKERS)
        assert demand + RESERVED_CONNECTIONS <= max_connections


def mebibytes(limit: str) -> float:
    number, unit = re.fullmatch(r"(\d+(?:\.\d+)?)([kmg]?)b?", str(limit).lower()).groups()
    return float(number) * {"k": 1 / 1024, "m": 1, "g": 1024, "": 1 / 1024 ** 2}[unit]


def test_every_container_has_limits_rotated_logs_and_a_health_check(rendered, defaults):
    for name, service in rendered["services"].items():
        assert service.get("cpus") and service.get("mem_limit"), f"{name} has no CPU or memory limit"
        logging = service.get("logging", {})
        assert logging.get("driver") == "json-file" and {"max-size", "max-file"} <= set(logging.get("options", {})), name
        if service.get("restart"):  # long-running, not a one-shot
            assert service.get("healthcheck", {}).get("test"), f"{name} has no health check"
    # Streaming backpressure starts well before the container's memory limit.
    streaming = defaults["services"]["streaming-worker"]
    assert int(streaming["environment"]["MEMORY_LIMIT_MIB"]) <= 0.8 * mebibytes(streaming["mem_limit"])


def test_health_checks_ask_the_service_itself(rendered):
    services = rendered["services"]
    assert "operator cluster health" in " ".join(services["temporal"]["healthcheck"]["test"])
    assert "/healthz" in " ".join(services["temporal-ui"]["healthcheck"]["test"])
    assert "/decode" in " ".join(services["codec-server"]["healthcheck"]["test"])
    for worker in WORKERS:
        assert "/healthz" in " ".join(services[worker]["healthcheck"]["test"])


def test_the_ui_decodes_payloads_through_the_codec_server(rendered, full_env):
    services = rendered["services"]
    ui, codec = services["temporal-ui"], services["codec-server"]
    [(_, codec_port)] = published_ports(codec)
    [(_, ui_port)] = published_ports(ui)
    assert ui["environment"]["TEMPORAL_CODEC_ENDPOINT"] == full_env["CODEC_URL"] == f"http://127.0.0.1:{codec_port}"
    assert codec["command"][:2] == ["python", "scripts/codec_server.py"]
    origins = [codec["command"][i + 1] for i, word in enumerate(codec["command"]) if word == "--origin"]
    assert full_env["TEMPORAL_UI_URL"] == f"http://127.0.0.1:{ui_port}" and full_env["TEMPORAL_UI_URL"] in origins
    key = full_env["ETL_ENCRYPTION_KEY"]
    assert codec["environment"]["ETL_ENCRYPTION_KEY"] == key
    assert all(services[w]["environment"]["ETL_ENCRYPTION_KEY"] == key for w in WORKERS)


def image_tags(compose_text: str) -> dict[str, tuple[str, str]]:
    """service -> (image, the comment lines just above its `image:` line)."""
    lines, found, service = compose_text.splitlines(), {}, None
    for i, line in enumerate(lines):
        if match := re.match(r"^  ([\w-]+):\s*$", line):
            service = match.group(1)
        if match := re.match(r"^\s+image:\s*(\S+)", line):
            j, comments = i - 1, []
            while j >= 0 and lines[j].strip().startswith("#"):
                comments.insert(0, lines[j].strip())
                j -= 1
            found[service] = (match.group(1), " ".join(comments))
    return found


def test_images_are_pinned_with_a_reason_for_each_tag():
    version = re.search(r'^version = "([^"]+)"', (ROOT / "pyproject.toml").read_text(), re.M).group(1)
    for service, (image, reason) in image_tags((ROOT / "docker-compose.yml").read_text()).items():
        if image.startswith("temporal-etl-fleet-worker:"):
            assert image.endswith(f":${{WORKER_IMAGE_TAG:-{version}}}"), "the worker image is tagged with the project's version"
            continue
        tag = image.split("@")[0].rsplit(":", 1)[-1]
        assert re.fullmatch(r"\d+\.\d+(\.\d+)?", tag), f"{service}: {image} is not an exact version"
        assert tag in reason, f"{service}: the comment above {image} must say why {tag}"


def test_temporal_images_match_the_release_the_tests_run_against():
    tags = {image.split(":")[0]: image.split(":")[1] for image, _ in image_tags((ROOT / "docker-compose.yml").read_text()).values()}
    assert tags["temporalio/server"] == tags["temporalio/admin-tools"], "the schema tool must be the server's release"
    temporal = shutil.which("temporal", path=str(Path(sys.executable).parent))
    if temporal is None:
        pytest.skip("no temporal binary beside this Python (the embedded extra is not installed)")
    out = subprocess.run([temporal, "--version"], capture_output=True, text=True, timeout=30).stdout
    server, ui = re.search(r"Server (\d+\.\d+)\.\d+, UI (\d+\.\d+)\.\d+", out).groups()
    assert tags["temporalio/server"].startswith(server + ".") and tags["temporalio/ui"].startswith(ui + ".")


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
            # An interpolated path (ETL_ENV_FILE) is the operator's; the v1 render checks it exists.
            if "${" not in path and not (ROOT / path).exists() and not (isinstance(env_file, dict) and env_file.get("required") is False):
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
        command = service.get("command") if isinstance(service.get("command"), list) else []
        missing += [f"{name}: command runs {word}, which is not in the repo" for word in command
                    if word.startswith("scripts/") and not (ROOT / word).is_file()]
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
    for name in WORKERS:
        worker = compose["services"][name]
        assert "container_name" not in worker and "ports" not in worker, f"{name} could not be scaled"
        assert "/healthz" in " ".join(worker["healthcheck"]["test"])
        assert worker["environment"]["HEALTH_PORT"] == "8000" and worker["environment"]["HEALTH_HOST"] == "0.0.0.0"
        assert worker["depends_on"]["temporal-setup"]["condition"] == "service_completed_successfully"


def test_setup_registers_exactly_our_search_attributes():
    script = (ROOT / "temporal-config" / "setup-namespace.sh").read_text()
    registered = dict(re.findall(r"(Etl\w+):(Keyword|Text)", script))
    ours = {key.name: ("Text" if key is sa.ETL_QUERY else "Keyword") for key in sa.ALL}
    assert registered == ours


def test_the_readme_says_how_to_go_to_production():
    readme = (ROOT / "README.md").read_text()
    section = readme.split("### Going to production", 1)[1].split("\n## ", 1)[0].split("\n### ", 1)[0]
    compose_text = (ROOT / "docker-compose.yml").read_text()
    for name in (*REQUIRED_SECRETS, "WORKFLOWS_DB_MAX_CONNECTIONS", "TEMPORAL_UI_URL", "CODEC_URL"):
        assert name in section and name in compose_text, name
    for word in ("DB_MAX_CONN", "tests/compose.sample.env", "etl_events_loaded_total", "pg_dump", "temporal-schema"):
        assert word in section, word
