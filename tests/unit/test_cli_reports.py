"""What the CLI reports names things once (issue 9, item 11)."""

from __future__ import annotations

import pytest

from runctl.cli import _prefixed, main
from tests.support.fake_http import FakeHttpServer, Reply


@pytest.mark.parametrize("command", ["reconcile", "cleanup"])
def test_a_provider_error_names_the_provider_once(command, capsys, monkeypatch):
    server = FakeHttpServer()
    server.route("GET", "/v2/pods", lambda req: Reply.json(
        {"status": 401, "title": "Unauthorized", "detail": "invalid API key"}, 401))
    with server:
        monkeypatch.setenv("RUNPOD_API_KEY", "rpa_reports_key_0123456789")
        monkeypatch.setenv("RUNCTL_RUNPOD_BASE_URL", server.url)
        assert main([command, "-p", "runpod"]) == 1
    err = capsys.readouterr().err
    assert "error: runpod: " in err
    assert "runpod: runpod:" not in err


def test_prefixed_adds_the_name_only_when_missing():
    assert _prefixed("vast", "vast: boom") == "vast: boom"
    assert _prefixed("vast", "boom") == "vast: boom"
    assert _prefixed("vast", "vastly: boom") == "vast: vastly: boom"
