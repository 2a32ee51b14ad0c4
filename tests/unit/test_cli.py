"""The CLI, run as a user runs it: a real `runctl` process."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

RUNCTL = [sys.executable, "-m", "runctl"]


def run(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*RUNCTL, *args], capture_output=True, text=True, timeout=120, check=check)


def test_run_streams_logs_waits_terminates_and_reports_cost():
    out = run("run", "--provider", "local", "-e", "EPOCHS=2", "--", sys.executable, "-c",
              "import os; [print('epoch', i) for i in range(int(os.environ['EPOCHS']))]")
    assert out.stdout.splitlines() == ["epoch 0", "epoch 1"]
    assert "succeeded, exit code 0" in out.stderr and "cost 0.0000 USD" in out.stderr


def test_run_exits_with_the_workloads_exit_code():
    out = run("run", "--", sys.executable, "-c", "raise SystemExit(4)", check=False)
    assert out.returncode == 4


def test_launch_then_manage_from_other_processes():
    rid = run("launch", "--name", "bg", "--", sys.executable, "-c",
              "import time; print('hi', flush=True); time.sleep(60)").stdout.strip()
    listed = json.loads(run("ls", "--json").stdout)
    assert [r["id"] for r in listed] == [rid] and listed[0]["state"] == "running"
    status = json.loads(run("status", rid, "--json").stdout)
    assert status["resource"]["name"] == "bg" and status["cost"]["amount"] == "0"
    assert run("stop", rid).stdout.strip() == f"{rid} stopped"
    assert run("start", rid).stdout.strip() == f"{rid} running"
    assert run("terminate", rid).stdout.strip() == f"{rid} terminated"
    assert run("logs", rid).stdout == "hi\n"
    assert json.loads(run("ls", "--json").stdout) == []
    assert len(json.loads(run("ls", "--all", "--json").stdout)) == 1


def test_providers_and_doctor():
    listed = json.loads(run("providers", "--json").stdout)
    local = next(p for p in listed if p["name"] == "local")
    assert local["usable"] is True
    doctor = run("doctor", "--json", check=False)
    assert json.loads(doctor.stdout)["default_provider"] == "local"


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("run", "--"), "give the command to run"),
        (("run", "-e", "NOEQUALS", "--", "true"), "--env: 'NOEQUALS' has no '='"),
        (("status", "local-nope"), "no local resource"),
        (("launch", "--name", "Bad Name", "--", "true"), "name: 'Bad Name' is invalid"),
    ],
)
def test_bad_input_is_a_clear_error(args, message):
    out = run(*args, check=False)
    assert out.returncode in (1, 2)
    assert message in out.stderr
    assert "Traceback" not in out.stderr


def test_run_timeout_terminates_and_exits_124():
    out = run("run", "--timeout", "1", "--", sys.executable, "-c",
              "import time; print('start', flush=True); time.sleep(60)", check=False)
    assert out.returncode == 124
    assert "--timeout 1 s reached; terminated" in out.stderr
    assert json.loads(run("ls", "--json").stdout) == []


def test_run_refuses_a_provider_that_cannot_report_the_end_without_a_timeout(monkeypatch):
    monkeypatch.setenv("LAMBDA_API_KEY", "test-key-not-used-0000")
    out = run("run", "--provider", "lambda", "--", "python3", "train.py", check=False)
    assert out.returncode == 1
    assert "--timeout: lambda cannot tell when the command ends" in out.stderr
