"""Configuration: TOML file, environment overrides, validation, secrets never shown."""

from __future__ import annotations

from pathlib import Path

import pytest

from gateway.config import ConfigError, Secret, load_settings

TOML = """
[server]
port = 9000
graphiql = false

[auth]
jwt_secret = "file-secret-file-secret-file-secret-1234"

[store]
url = "postgresql+asyncpg://app:hunter2@db/brokergraph"

[connectors.ctrader]
url = "https://ctrader.example"
login = "manager"
password = "p4ssw0rd"
"""


def write(tmp_path: Path, text: str = TOML) -> Path:
    path = tmp_path / "brokergraph.toml"
    path.write_text(text)
    return path


def test_file_values_are_read(tmp_path: Path) -> None:
    settings = load_settings(write(tmp_path), environ={})
    assert settings.server.port == 9000
    assert settings.server.graphiql is False
    assert settings.connectors["ctrader"]["url"] == "https://ctrader.example"


def test_environment_overrides_file_with_typed_values(tmp_path: Path) -> None:
    environ = {
        "BROKERGRAPH_SERVER__PORT": "9100",
        "BROKERGRAPH_SERVER__ALLOWED_ORIGINS": '["https://crm.example"]',
        "BROKERGRAPH_CONNECTORS__CTRADER__PASSWORD": "from-env",
        "BROKERGRAPH_CONNECTORS__DXTRADE__URL": "https://dx.example",
    }
    settings = load_settings(write(tmp_path), environ=environ)
    assert settings.server.port == 9100
    assert settings.server.allowed_origins == ("https://crm.example",)
    assert settings.connectors["ctrader"]["password"] == Secret("from-env")
    assert settings.connectors["dxtrade"]["url"] == "https://dx.example"


def test_config_path_from_environment(tmp_path: Path) -> None:
    settings = load_settings(environ={"BROKERGRAPH_CONFIG": str(write(tmp_path))})
    assert settings.server.port == 9000


def test_secrets_are_wrapped_and_never_printed(tmp_path: Path) -> None:
    settings = load_settings(write(tmp_path), environ={})
    password = settings.connectors["ctrader"]["password"]
    assert isinstance(password, Secret)
    assert password.reveal() == "p4ssw0rd"
    described = repr(settings.describe()) + repr(settings) + str(password)
    assert "p4ssw0rd" not in described
    assert "file-secret" not in described


def test_defaults_need_no_file() -> None:
    settings = load_settings(environ={})
    assert settings.store.url.startswith("sqlite+aiosqlite:///")
    assert settings.cache.url == "memory://"
    assert settings.auth.jwt_secret is None


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("[server]\nport = 'x'\n", "port must be a non-negative integer"),
        ("[server]\nbogus = 1\n", "unknown settings: bogus"),
        ("[nonsense]\na = 1\n", "unknown configuration sections: nonsense"),
        ("[server]\ngraphiql = 'yes'\n", "graphiql must be true or false"),
        ("[connectors]\nctrader = 1\n", "[connectors.ctrader] must be a table"),
        ("not toml at all [", "not valid TOML"),
    ],
)
def test_invalid_configuration_is_refused_clearly(tmp_path: Path, text: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message.replace("[", r"\[").replace(".", r"\.")):
        load_settings(write(tmp_path, text), environ={})


def test_missing_file_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="does not exist"):
        load_settings(tmp_path / "nope.toml", environ={})
