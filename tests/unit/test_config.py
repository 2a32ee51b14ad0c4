"""Settings and credentials: environment first, then the config file; secrets stay secret."""

from __future__ import annotations

import pickle

import pytest

from runctl.config import Secret, load_settings, runctl_home
from runctl.errors import ConfigurationError


def test_home_is_runctl_home_when_set(runctl_home):
    assert runctl_home == load_settings().home


def test_home_defaults_to_the_xdg_config_dir(monkeypatch, tmp_path):
    monkeypatch.delenv("RUNCTL_HOME")
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path))
    assert runctl_home() == tmp_path / "runctl"


def test_config_file_then_environment(runctl_home, monkeypatch):
    (runctl_home / "config.toml").write_text(
        'default_provider = "runpod"\noffer_timeout = 3\n[providers.runpod]\napi_key = "from-file-123"\n'
        'base_url = "https://proxy.example"\n'
    )
    settings = load_settings()
    assert settings.default_provider == "runpod" and settings.offer_timeout == 3
    cfg = settings.provider_config("runpod")
    assert cfg.secret("api_key", env=("RUNPOD_API_KEY",)).reveal() == "from-file-123"
    assert cfg.setting("base_url") == "https://proxy.example"
    monkeypatch.setenv("RUNPOD_API_KEY", "from-env-456")
    monkeypatch.setenv("RUNCTL_RUNPOD_BASE_URL", "http://127.0.0.1:9")
    monkeypatch.setenv("RUNCTL_DEFAULT_PROVIDER", "local")
    settings = load_settings()
    cfg = settings.provider_config("runpod")
    assert cfg.secret("api_key", env=("RUNPOD_API_KEY",)).reveal() == "from-env-456"
    assert cfg.secret("api_key", env=("RUNPOD_API_KEY",)).source == "env RUNPOD_API_KEY"
    assert cfg.setting("base_url") == "http://127.0.0.1:9"
    assert settings.default_provider == "local"


def test_a_key_file_is_read_like_the_providers_own_cli_does(tmp_path):
    key_file = tmp_path / "vast_api_key"
    key_file.write_text("\n  abc-key-789  \n")
    cfg = load_settings().provider_config("vast")
    secret = cfg.secret("api_key", env=("VAST_API_KEY",), files=(key_file,))
    assert secret.reveal() == "abc-key-789" and secret.source == f"file {key_file}"


def test_bad_config_is_a_configuration_error(runctl_home):
    (runctl_home / "config.toml").write_text("offer_timeout = -1\n")
    with pytest.raises(ConfigurationError, match="offer_timeout"):
        load_settings()
    (runctl_home / "config.toml").write_text("this is = = not toml")
    with pytest.raises(ConfigurationError, match="config.toml"):
        load_settings()


def test_a_secret_never_shows_itself():
    secret = Secret("sk-very-secret-value", "env X")
    assert "sk-very" not in repr(secret) and "sk-very" not in str(secret) and "sk-very" not in f"{secret}"
    with pytest.raises(TypeError):
        pickle.dumps(secret)
