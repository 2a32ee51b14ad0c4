"""`runctl terminate` says "terminated" only for what it terminated (issue 9, item 5)."""

from __future__ import annotations

import json
import subprocess
import sys

RUNCTL = [sys.executable, "-m", "runctl"]
SLEEPER = ["--", sys.executable, "-c", "import time; time.sleep(120)"]


def run(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*RUNCTL, *args], capture_output=True, text=True, timeout=120, check=check)


def running() -> list[str]:
    return [r["id"] for r in json.loads(run("ls", "--json").stdout)]


def test_an_unknown_id_is_an_error_not_a_success():
    out = run("terminate", "local-0123456789abcdef", check=False)
    assert out.returncode == 1
    assert "no local resource 'local-0123456789abcdef'" in out.stderr
    assert "terminated" not in out.stdout


def test_a_name_resolves_through_the_ledger_when_it_is_unique():
    rid = run("launch", "--name", "mytrain", *SLEEPER).stdout.strip()
    out = run("terminate", "mytrain")
    assert out.stdout.strip() == f"{rid} terminated"
    assert running() == []
    assert json.loads(run("status", "mytrain", "--json").stdout)["resource"]["id"] == rid


def test_an_ambiguous_name_is_an_error_listing_the_matches_and_terminates_nothing():
    first = run("launch", "--name", "twin", *SLEEPER).stdout.strip()
    second = run("launch", "--name", "twin", *SLEEPER).stdout.strip()
    out = run("terminate", "twin", check=False)
    assert out.returncode == 1
    assert "'twin' is the name of 2 launches" in out.stderr
    assert f"local:{first} (open)" in out.stderr and f"local:{second} (open)" in out.stderr
    assert sorted(running()) == sorted([first, second])
    for rid in (first, second):
        assert run("terminate", rid).stdout.strip() == f"{rid} terminated"
    # Both ended: the name is still ambiguous among the closed ones.
    assert "is the name of 2 launches" in run("status", "twin", check=False).stderr


def test_terminating_a_known_resource_twice_is_still_fine():
    rid = run("launch", *SLEEPER).stdout.strip()
    assert run("terminate", rid).stdout.strip() == f"{rid} terminated"
    assert run("terminate", rid).returncode == 0
