"""`runctl doctor` says "ok" only when it is (issue 9: config keys, writable home, --online)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from runctl.cli import main
from tests.support.fake_http import FakeHttpServer, Reply, Request

GOOD_KEY = "rpa_GOOD_doctor_key_0123456789"
BAD_KEY = "rpa_BOGUS_doctor_key_0123456789"


def doctor(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, dict, str]:
    code = main(["doctor", "--json", *args])
    out, err = capsys.readouterr()
    return code, json.loads(out), err


def config(home: Path, text: str) -> None:
    (home / "config.toml").write_text(text)


def test_a_clean_setup_is_ok(capsys):
    code, report, _ = doctor(capsys)
    assert code == 0 and report["problems"] == [] and report["home_writable"] is True


def test_a_misspelt_key_is_a_problem_with_the_nearest_known_key(capsys, runctl_home):
    config(runctl_home, 'default_provider = "local"\nofer_timeout = 5\n')
    code, report, _ = doctor(capsys)
    assert code == 1
    assert any("unknown key 'ofer_timeout' ignored (did you mean 'offer_timeout'?)" in p
               for p in report["problems"])


def test_an_unknown_default_provider_is_a_problem_listing_the_installed(capsys, runctl_home):
    config(runctl_home, 'default_provider = "nosuch"\n')
    code, report, _ = doctor(capsys)
    assert code == 1
    (problem,) = [p for p in report["problems"] if p.startswith("default_provider")]
    assert "'nosuch' is not an installed provider (allowed:" in problem and "local" in problem


def test_a_bad_provider_setting_is_reported_and_refused(capsys, runctl_home):
    config(runctl_home, "[providers.local]\ngrace_seconds = -4\n")
    code, report, _ = doctor(capsys)
    assert code == 1
    local = next(p for p in report["providers"] if p["name"] == "local")
    assert local["usable"] is False
    assert "[providers.local] grace_seconds: '-4' is invalid (allowed: seconds >= 0)" in (
        local["reason"])
    assert any("default_provider: 'local' is not usable here" in p for p in report["problems"])


def test_a_misspelt_provider_key_is_a_problem(capsys, runctl_home):
    config(runctl_home, "[providers.local]\ngrace_second = 3\n")
    code, report, _ = doctor(capsys)
    assert code == 1
    assert ("[providers.local] grace_second: unknown key, ignored (did you mean "
            "'grace_seconds'?)") in report["problems"]


def test_an_unwritable_home_is_a_problem(capsys, monkeypatch, tmp_path):
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    # Below a regular file nothing can be created, whoever runs the test (root too).
    monkeypatch.setenv("RUNCTL_HOME", str(blocker / "home"))
    code, report, _ = doctor(capsys)
    assert code == 1 and report["home_writable"] is False
    assert any("is not writable" in p and "RUNCTL_HOME" in p for p in report["problems"])


# --- --online -----------------------------------------------------------------------------------


@pytest.fixture
def runpod_api(monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeHttpServer]:
    """A RunPod on loopback that knows one key; runctl is pointed at it."""

    def ssh_keys(req: Request) -> Reply:
        if req.headers.get("authorization") != f"Bearer {GOOD_KEY}":
            return Reply.json({"status": 401, "title": "Unauthorized",
                               "detail": "invalid API key"}, 401)
        return Reply.json({"sshKeys": []})

    server = FakeHttpServer()
    server.route("GET", "/v2/account/ssh-keys", ssh_keys)
    with server:
        monkeypatch.setenv("RUNCTL_RUNPOD_BASE_URL", server.url)
        yield server


def test_online_a_bogus_key_fails_the_check(capsys, monkeypatch, runpod_api):
    monkeypatch.setenv("RUNPOD_API_KEY", BAD_KEY)
    code, report, err = doctor(capsys, "--online", "--timeout", "20")
    assert code == 1
    runpod = next(p for p in report["providers"] if p["name"] == "runpod")
    assert runpod["online"]["result"] == "failed"
    assert "invalid API key" in runpod["online"]["detail"]
    assert BAD_KEY not in json.dumps(report) + err
    assert len(runpod_api.requests) == 1  # one cheap call, no retries of a refusal


def test_online_a_good_key_passes_and_providers_without_a_check_say_so(capsys, monkeypatch,
                                                                          runpod_api):
    monkeypatch.setenv("RUNPOD_API_KEY", GOOD_KEY)
    code, report, _ = doctor(capsys, "--online", "--timeout", "20")
    assert code == 0
    by_name = {p["name"]: p for p in report["providers"]}
    assert by_name["runpod"]["online"] == {
        "result": "ok", "detail": "GET /v2/account/ssh-keys answered"}
    assert by_name["local"]["online"]["result"] == "not checked"


def test_the_text_report_names_what_was_checked(capsys, monkeypatch, runpod_api):
    monkeypatch.setenv("RUNPOD_API_KEY", BAD_KEY)
    assert main(["doctor", "--online", "--timeout", "20"]) == 1
    out = capsys.readouterr().out
    assert "online FAILED: " in out and "[ok]      runpod" in out
