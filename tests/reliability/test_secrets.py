"""No API key or token appears in any log line, repr, error message or cassette.

The fault-injection tests already run under the ``sink`` fixture, which records
every log line (DEBUG and up, tracebacks included) and the str/repr of every error,
resource and report they meet, and fails the test if a credential shows. This
module adds the cassettes, the ledger file, and a check that the scan itself works.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import httpx
import pytest

from runctl.errors import RunctlError
from runctl.ledger import Ledger

from .conftest import API_KEY, SECRETS, TextSink
from .harness import spec_for

TESTS = Path(__file__).resolve().parents[1]
CASSETTES = sorted(p for p in TESTS.rglob("*") if "cassettes" in p.parts and p.is_file())
_CREDENTIAL_HEADER = re.compile(
    r"^\s*-?\s*['\"]?(authorization|x-api-key|api-key|x-auth-token|cookie)['\"]?\s*:\s*(.*)$",
    re.IGNORECASE,
)
# A value shaped like a real credential (long, no spaces), as opposed to a placeholder.
_LOOKS_REAL = re.compile(r"(bearer\s+)?[A-Za-z0-9_\-\.]{24,}", re.IGNORECASE)
_KEY_PARAM = re.compile(r"[?&](api_key|apikey|token|access_token|key)=([^&\s'\"]+)", re.IGNORECASE)
_PLACEHOLDERS = ("***", "REDACTED", "redacted", "<", "test", "dummy", "fake")


def test_the_cassettes_were_found() -> None:
    assert CASSETTES, "no cassettes under tests/**/cassettes: the scan below checks nothing"


@pytest.mark.parametrize("cassette", CASSETTES, ids=lambda p: str(p.relative_to(TESTS)))
def test_no_cassette_holds_a_credential(cassette: Path) -> None:
    text = cassette.read_text(errors="replace")
    for secret in SECRETS:
        assert secret not in text
    lines = text.splitlines()
    for number, line in enumerate(lines, 1):
        header = _CREDENTIAL_HEADER.match(line)
        if header:
            value = header.group(2).strip()
            if not value and number < len(lines):  # YAML list form: the value is on the next line
                value = lines[number].strip().lstrip("- ").strip("'\"")
            assert not (
                _LOOKS_REAL.fullmatch(value.strip("'\""))
                and not any(p in value for p in _PLACEHOLDERS)
            ), f"{cassette.name}:{number}: {header.group(1)} header is not redacted"
        for _, value in _KEY_PARAM.findall(line):
            assert any(p in value for p in _PLACEHOLDERS) or len(value) < 12, (
                f"{cassette.name}:{number}: a credential query parameter is not redacted"
            )


def test_the_ledger_file_holds_no_credential(
    runctl_home: Path, tmp_path: Path
) -> None:
    ledger = Ledger(tmp_path / "l.db")
    ledger.record_intent(spec_for("s1"), provider="runpod")
    data = b"".join(p.read_bytes() for p in tmp_path.glob("l.db*"))
    assert b"s1" in data
    for secret in SECRETS:
        assert secret.encode() not in data


def test_the_scan_catches_a_leak() -> None:
    sink = TextSink()
    sink.add(RunctlError("ok"), RuntimeError(f"Authorization: Bearer {API_KEY}"))
    assert len(sink.leaks()) == 2  # str and repr


@pytest.mark.anyio
async def test_an_error_from_the_provider_never_shows_the_key(sink: TextSink) -> None:
    from runctl.config import ProviderConfig
    from runctl.http import RetryPolicy
    from runctl.providers.runpod import RunPodProvider

    def echo_the_key(request: httpx.Request) -> httpx.Response:
        # A hostile or buggy API that echoes the credential back in its error body.
        return httpx.Response(401, json={"detail": f"bad key {request.headers['authorization']}"})

    config = ProviderConfig(name="runpod", home=Path("/x"), environ={"RUNPOD_API_KEY": API_KEY})
    provider: Any = RunPodProvider(config, transport=httpx.MockTransport(echo_the_key),
                                   retry=RetryPolicy(attempts=1))
    with pytest.raises(RunctlError) as caught:
        await provider.get("pod1")
    sink.add(caught.value, provider, getattr(caught.value, "body", None))
    await provider.aclose()
    assert getattr(caught.value, "status", None) == 401
