"""No secret in a repr: settings, provider config, launch spec (issue 9, item 8)."""

from __future__ import annotations

from pathlib import Path

import runctl
from runctl.config import ProviderConfig, load_settings

KEY = "rpa_SECRET_from_config_file_0123456789"


def test_an_api_key_from_the_config_file_is_masked_in_every_repr(runctl_home: Path):
    (runctl_home / "config.toml").write_text(
        f'[providers.runpod]\napi_key = "{KEY}"\nbase_url = "http://127.0.0.1:9"\n'
        '[providers.lambda]\nssh_key_name = "laptop"\n'
    )
    settings = load_settings()
    with runctl.Client() as rc:
        shown = [repr(settings), repr(rc.settings), repr(rc.provider("runpod").config),
                 repr(settings.provider_config("runpod")), str(settings)]
    for text in shown:
        assert KEY not in text
    assert "'api_key': '***'" in repr(settings)
    # What is not a credential stays readable.
    assert "http://127.0.0.1:9" in repr(settings) and "'ssh_key_name': 'laptop'" in repr(settings)
    # The value itself is still there for the provider.
    assert settings.providers["runpod"]["api_key"] == KEY


def test_provider_config_masks_tokens_secrets_and_passwords():
    config = ProviderConfig(name="x", home=Path("/h"), settings={
        "token": "t0k", "client_secret": "s3c", "password": "pw", "region": "us-east-1",
    })
    text = repr(config)
    assert "t0k" not in text and "s3c" not in text and "'pw'" not in text
    assert "us-east-1" in text


def test_launch_spec_shows_env_names_but_never_their_values():
    spec = runctl.LaunchSpec(command=["train"], env={"HF_TOKEN": "hf_abcdef", "EPOCHS": "3"})
    text = repr(spec)
    assert "hf_abcdef" not in text
    assert "env={'HF_TOKEN': '***', 'EPOCHS': '***'}" in text
    assert spec.env["HF_TOKEN"] == "hf_abcdef"
