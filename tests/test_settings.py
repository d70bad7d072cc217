"""Settings: defaults point at the embedded stack; bad values name the variable."""

import pytest

from etl.core.errors import ConfigError
from etl.core.settings import (FRAMEWORK_VARIABLES, PROJECT_ROOT, all_variables, env_example, settings_from_env,
                               source_settings_classes)
from sources.github.settings import GitHubSettings
from sources.launchpad.settings import LaunchpadSettings


def test_defaults_point_at_the_embedded_stack():
    s = settings_from_env({})
    assert s.temporal_host == "localhost:7233"
    assert s.dsn() == "postgresql://etl@127.0.0.1:55432/etl"
    assert s.events_table == "events"


@pytest.mark.parametrize("env, variable, expected", [
    ({"DB_PORT": "fivefour"}, "DB_PORT", "a whole number"),
    ({"DB_PORT": "70000"}, "DB_PORT", "a TCP port"),
    ({"EVENTS_TABLE": "events; drop table x"}, "EVENTS_TABLE", "an SQL identifier"),
    ({"EVENTS_TABLE": "1events"}, "EVENTS_TABLE", "an SQL identifier"),
    ({"TEMPORAL_HOST": "nohostport"}, "TEMPORAL_HOST", "host:port"),
    ({"DB_MIN_CONN": "5", "DB_MAX_CONN": "2"}, "DB_MAX_CONN", "at least DB_MIN_CONN"),
    ({"FROM_DATE": "2024-13-01"}, "FROM_DATE", "YYYY-MM-DD"),
    ({"DATABASE_URL": "mysql://x"}, "DATABASE_URL", "postgresql://"),
])
def test_bad_values_name_the_variable(env, variable, expected):
    with pytest.raises(ConfigError) as err:
        settings_from_env(env)
    assert err.value.variable == variable
    assert str(err.value).startswith(f"{variable}=")
    assert expected in str(err.value)


def test_secrets_stay_out_of_repr():
    s = settings_from_env({"GITHUB_TOKEN": "ghp_secret", "DB_PASSWORD": "pw-secret"})
    assert "ghp_secret" not in repr(s) and "pw-secret" not in repr(s)
    assert "pw-secret" not in s.public_database_url()


class Recording(dict):
    """A mapping that remembers which variables were asked for."""

    def __init__(self, *a, **k):
        super().__init__(*a, **k)
        self.asked: set[str] = set()

    def get(self, key, default=None):
        self.asked.add(key)
        return super().get(key, default)

    def __getitem__(self, key):
        self.asked.add(key)
        return super().__getitem__(key)

    def __contains__(self, key):
        self.asked.add(key)
        return super().__contains__(key)


def test_the_framework_reads_exactly_the_variables_it_declares():
    env = Recording()
    settings_from_env(env)
    assert env.asked == set(FRAMEWORK_VARIABLES)


def test_env_example_is_current():
    """`.env.example` is generated from the declarations: a new setting cannot be missing from it."""
    assert (PROJECT_ROOT / ".env.example").read_text() == env_example(), \
        "run `python scripts/dev.py env-example` and commit .env.example"


def test_every_source_setting_is_declared_in_the_source_and_listed():
    variables = all_variables()
    assert variables["GITHUB_TOKEN"] is True and variables["LP_TIMEOUT"] is False
    assert variables["DB_PASSWORD"] is True and "EVENTS_TABLE" in variables
    for cls in source_settings_classes():
        assert cls.__module__.startswith("sources."), cls


def test_source_settings_are_typed_checked_and_secret():
    s = settings_from_env({"GITHUB_TOKEN": "ghp_secret", "LP_TIMEOUT": "2.5"})
    assert s.source(GitHubSettings).token == "ghp_secret"
    assert s.source(LaunchpadSettings).timeout == 2.5
    assert "ghp_secret" not in repr(s.source(GitHubSettings)) and "ghp_secret" not in repr(s)
    assert s.source_env() == {"GITHUB_TOKEN": "ghp_secret", "LP_TIMEOUT": "2.5"}
    for env, variable, expected in [({"LP_TIMEOUT": "soon"}, "LP_TIMEOUT", "a number of seconds"),
                                    ({"LP_TIMEOUT": "5\n"}, "LP_TIMEOUT", "a number of seconds"),
                                    ({"GITHUB_API_URL": "ftp://x"}, "GITHUB_API_URL", "http"),
                                    ({"LP_APP_ID": "a b"}, "LP_APP_ID", "a name")]:
        with pytest.raises(ConfigError) as err:
            settings_from_env(env).source(GitHubSettings if variable.startswith("GITHUB") else LaunchpadSettings)
        assert err.value.variable == variable and expected in str(err.value)


def test_with_env_validates_at_once():
    with pytest.raises(ConfigError, match="GITHUB_API_URL"):
        settings_from_env({}).with_env(GITHUB_API_URL="not a url")
