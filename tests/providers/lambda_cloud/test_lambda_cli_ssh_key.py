"""Lambda is usable from the CLI: it needs an SSH key, and the CLI can give one (issue 9, item 9)."""

from __future__ import annotations

from pathlib import Path

import pytest

from runctl.cli import main
from runctl.providers.lambda_cloud import LambdaCloudProvider

from .conftest import FAKE_KEY, PUBLIC_KEY, FakeLambda

LAUNCH = ["launch", "--provider", "lambda", "--gpu", "H100", "--gpus", "8"]


@pytest.fixture
def lambda_env(fake: FakeLambda, monkeypatch: pytest.MonkeyPatch) -> FakeLambda:
    monkeypatch.setenv("LAMBDA_API_KEY", FAKE_KEY)
    monkeypatch.setenv("RUNCTL_LAMBDA_BASE_URL", fake.url)
    return fake


def launched_key(fake: FakeLambda, capsys: pytest.CaptureFixture[str], *args: str) -> str:
    assert main([*LAUNCH, *args, "--", "python", "train.py"]) == 0, capsys.readouterr().err
    rid = capsys.readouterr().out.strip()
    (name,) = fake.instances[rid]["ssh_key_names"]
    return str(name)


def test_ssh_key_names_a_key_registered_with_lambda(lambda_env, capsys):
    assert launched_key(lambda_env, capsys, "--ssh-key", "laptop") == "laptop"


def test_ssh_public_key_reads_the_file_and_registers_it(lambda_env, capsys, tmp_path: Path):
    key_file = tmp_path / "id_ed25519.pub"
    key_file.write_text(PUBLIC_KEY + "\n")
    name = launched_key(lambda_env, capsys, "--ssh-public-key", str(key_file))
    assert name.startswith("runctl-") and [k["name"] for k in lambda_env.keys] == [name]


def test_a_private_key_file_is_refused_without_showing_it(lambda_env, capsys, tmp_path: Path):
    key_file = tmp_path / "id_ed25519"
    key_file.write_text("-----BEGIN OPENSSH PRIVATE KEY-----\nb3BlbnNzaC1rZXktdjEAAAAA\n")
    assert main([*LAUNCH, "--ssh-public-key", str(key_file), "--", "train"]) == 1
    err = capsys.readouterr().err
    assert f"--ssh-public-key: {key_file} is a private key" in err and "b3Blbn" not in err


def test_the_ssh_key_name_setting_is_used_when_the_launch_gives_none(lambda_env, capsys,
                                                                       runctl_home: Path):
    (runctl_home / "config.toml").write_text('[providers.lambda]\nssh_key_name = "team-key"\n')
    assert launched_key(lambda_env, capsys) == "team-key"


def test_without_any_key_the_error_says_how_to_give_one(lambda_env, capsys):
    assert main([*LAUNCH, "--", "python", "train.py"]) == 1
    err = capsys.readouterr().err
    assert "--ssh-public-key: Lambda launches no instance without an SSH key" in err
    assert "--ssh-key NAME" in err and "ssh_key_name in [providers.lambda]" in err
    assert lambda_env.instances == {}


@pytest.mark.anyio
async def test_verify_makes_one_cheap_authenticated_call(
    fake: FakeLambda, fake_provider: LambdaCloudProvider
) -> None:
    assert await fake_provider.verify() == "GET /ssh-keys answered"
    assert [r.path for r in fake.server.requests] == ["/api/v1/ssh-keys"]
