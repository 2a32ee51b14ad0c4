"""An argv is never given to a shell, on any provider; the shell form is explicit (issue 18).

Each provider's generated script is run for real with the system shell (with the
log paths pointed into a temporary directory): a one-item list naming a shell
command must not run it.
"""

from __future__ import annotations

import shlex
import subprocess
from pathlib import Path

import pytest

from runctl import LaunchSpec, ValidationError
from runctl._workload import shell_argv, wrap_command
from runctl.providers.lambda_cloud import user_data_script
from runctl.providers.paperspace import startup_script


def _scripts(spec: LaunchSpec, out: Path) -> dict[str, list[str]]:
    """The argv each provider would have its machine run, writing output to ``out``."""
    lambda_script = user_data_script(spec).replace("/var/log/runctl.log", str(out))
    lambda_script = lambda_script.replace("/var/log/runctl.exit", str(out) + ".exit")
    paperspace = startup_script(spec).replace(f"/var/log/runctl-{spec.launch_id}.log", str(out))
    wrapped = wrap_command(spec.command, spec.launch_id, shell=spec.shell, keep_alive=":")
    return {
        "lambda": ["bash", "-c", lambda_script],
        "paperspace": ["bash", "-c", paperspace],
        # RunPod sends shlex.join(shell_argv(...)) as args, Vast shell_argv(...) as args.
        "runpod/vast": shell_argv(wrapped),
    }


@pytest.mark.parametrize("provider", ["lambda", "paperspace", "runpod/vast"])
def test_a_one_item_argv_never_runs_under_a_shell(tmp_path: Path, provider: str) -> None:
    marker = tmp_path / "marker"
    spec = LaunchSpec(command=[f"echo hi; touch {marker}"], launch_id="argv1")
    assert spec.shell is False
    argv = _scripts(spec, tmp_path / "out.log")[provider]
    subprocess.run(argv, cwd=tmp_path, timeout=30, check=False, capture_output=True)
    assert not marker.exists()


@pytest.mark.parametrize("provider", ["lambda", "paperspace", "runpod/vast"])
def test_the_shell_form_runs_under_a_shell(tmp_path: Path, provider: str) -> None:
    marker = tmp_path / "marker"
    spec = LaunchSpec(command=f"echo hi && touch {marker}", launch_id="shell1")
    assert spec.shell is True and spec.command == (f"echo hi && touch {marker}",)
    argv = _scripts(spec, tmp_path / "out.log")[provider]
    subprocess.run(argv, cwd=tmp_path, timeout=30, check=False, capture_output=True)
    assert marker.exists()


def test_runpod_sends_the_argv_quoted_word_by_word() -> None:
    script = wrap_command(["echo hi; rm -rf x"], "l1")
    assert shlex.quote("echo hi; rm -rf x") in script and "sh -c 'echo" not in script


def test_the_forms_are_kept_through_json() -> None:
    from runctl import from_json, to_json

    for spec in (LaunchSpec(command="a && b"), LaunchSpec(command=["a && b"])):
        again = from_json(to_json(spec), LaunchSpec)
        assert (again.command, again.shell) == (spec.command, spec.shell)


@pytest.mark.parametrize(
    "kwargs",
    [{"command": ["a", "b"], "shell": True}, {"command": [" "], "shell": True},
     {"command": "x", "shell": "yes"}],
)
def test_a_shell_command_is_one_string(kwargs: dict[str, object]) -> None:
    with pytest.raises(ValidationError) as info:
        LaunchSpec(**kwargs)  # type: ignore[arg-type]
    assert info.value.field in ("command", "shell")
