"""`runctl terminate` says "terminated" only for what it terminated (issue 9, item 5)."""

from __future__ import annotations

import json
import sys
from collections.abc import Callable

import attrs
import pytest

from runctl.cli import main

SLEEPER = ["--", sys.executable, "-c", "import time; time.sleep(120)"]


@attrs.frozen
class Ran:
    returncode: int
    stdout: str
    stderr: str


@pytest.fixture
def run(capsys: pytest.CaptureFixture[str]) -> Callable[..., Ran]:
    """The CLI in this process (the jobs it launches are real detached processes)."""

    def cli(*args: str, check: bool = True) -> Ran:
        code = main(list(args))
        out, err = capsys.readouterr()
        assert not check or code == 0, err
        return Ran(code, out, err)

    return cli


def running(run: Callable[..., Ran]) -> list[str]:
    return [r["id"] for r in json.loads(run("ls", "--json").stdout)]


def test_an_unknown_id_is_an_error_not_a_success(run):
    out = run("terminate", "local-0123456789abcdef", check=False)
    assert out.returncode == 1
    assert "no local resource 'local-0123456789abcdef'" in out.stderr
    assert "terminated" not in out.stdout


def test_a_name_resolves_through_the_ledger_when_it_is_unique(run):
    rid = run("launch", "--name", "mytrain", *SLEEPER).stdout.strip()
    out = run("terminate", "mytrain")
    assert out.stdout.strip() == f"{rid} terminated"
    assert running(run) == []
    assert json.loads(run("status", "mytrain", "--json").stdout)["resource"]["id"] == rid


def test_an_ambiguous_name_is_an_error_listing_the_matches_and_terminates_nothing(run):
    first = run("launch", "--name", "twin", *SLEEPER).stdout.strip()
    second = run("launch", "--name", "twin", *SLEEPER).stdout.strip()
    out = run("terminate", "twin", check=False)
    assert out.returncode == 1
    assert "'twin' is the name of 2 launches" in out.stderr
    assert f"local:{first} (open)" in out.stderr and f"local:{second} (open)" in out.stderr
    assert sorted(running(run)) == sorted([first, second])
    for rid in (first, second):
        assert run("terminate", rid).stdout.strip() == f"{rid} terminated"
    # Both ended: the name is still ambiguous among the closed ones.
    assert "is the name of 2 launches" in run("status", "twin", check=False).stderr


def test_terminating_a_known_resource_twice_is_still_fine(run):
    rid = run("launch", *SLEEPER).stdout.strip()
    assert run("terminate", rid).stdout.strip() == f"{rid} terminated"
    assert run("terminate", rid).returncode == 0
