"""Settings: defaults point at the embedded stack; bad values name the variable."""

import pytest

from etl.core.errors import ConfigError
from etl.core.settings import settings_from_env


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
