"""The HTTP layer: retries, Retry-After, non-idempotent safety, error mapping, redaction."""

from __future__ import annotations

import logging

import httpx
import pytest

from runctl.config import Secret
from runctl.errors import (
    AuthenticationError,
    ConfigurationError,
    ConflictError,
    MalformedResponseError,
    NotFoundError,
    ProviderConnectionError,
    ProviderError,
    ProviderTimeoutError,
    RateLimitedError,
    ServerError,
)
from runctl.http import HttpApi, RetryPolicy, check_base_url

pytestmark = pytest.mark.anyio

KEY = "rk_live_0123456789abcdefSECRET"


class Script:
    """A scripted transport: each request gets the next response (or exception)."""

    def __init__(self, *steps):
        self.steps = list(steps)
        self.requests: list[httpx.Request] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        step = self.steps.pop(0)
        if isinstance(step, Exception):
            raise step
        return step


def api(script: Script, sleeps: list[float] | None = None, **kw) -> HttpApi:
    async def fake_sleep(seconds: float) -> None:
        if sleeps is not None:
            sleeps.append(seconds)

    return HttpApi(
        provider="acme",
        base_url="https://api.acme.test/v1",
        secret=Secret(KEY, "env ACME_KEY"),
        transport=httpx.MockTransport(script),
        sleep=fake_sleep,
        **kw,
    )


async def test_get_is_retried_on_5xx_and_429_with_backoff_then_succeeds():
    sleeps: list[float] = []
    script = Script(httpx.Response(503), httpx.Response(429), httpx.Response(200, json={"ok": 1}))
    client = api(script, sleeps)
    assert await client.get("/things") == {"ok": 1}
    assert len(script.requests) == 3
    assert len(sleeps) == 2 and all(0 <= s <= 30 for s in sleeps)


async def test_retry_after_seconds_is_honoured():
    sleeps: list[float] = []
    script = Script(httpx.Response(429, headers={"Retry-After": "7"}), httpx.Response(200, json=[]))
    await api(script, sleeps).get("/things")
    assert sleeps == [7.0]


async def test_retry_after_longer_than_the_cap_is_raised_not_waited():
    script = Script(httpx.Response(429, headers={"Retry-After": "3600"}))
    with pytest.raises(RateLimitedError) as info:
        await api(script, retry=RetryPolicy(cap=30)).get("/things")
    assert info.value.retry_after == 3600
    assert len(script.requests) == 1


async def test_backoff_grows_exponentially_and_is_capped():
    policy = RetryPolicy(base=1.0, cap=8.0)
    policy._rng.uniform = lambda low, high: high  # the upper bound of the jitter window
    assert [policy.backoff(n) for n in range(1, 6)] == [1.0, 2.0, 4.0, 8.0, 8.0]


async def test_gives_up_after_the_attempts_and_raises_the_mapped_error():
    script = Script(*[httpx.Response(502)] * 3)
    with pytest.raises(ServerError) as info:
        await api(script, retry=RetryPolicy(attempts=3)).get("/things")
    assert info.value.status == 502
    assert len(script.requests) == 3


async def test_post_is_not_resent_after_a_5xx_it_may_have_processed():
    script = Script(httpx.Response(500), httpx.Response(200, json={}))
    with pytest.raises(ServerError):
        await api(script).post("/pods", json_body={"name": "x"})
    assert len(script.requests) == 1


async def test_post_is_not_resent_after_a_read_timeout():
    script = Script(httpx.ReadTimeout("slow"), httpx.Response(200, json={}))
    with pytest.raises(ProviderTimeoutError) as info:
        await api(script).post("/pods", json_body={})
    assert info.value.maybe_applied is True
    assert len(script.requests) == 1


async def test_post_is_resent_when_it_never_reached_the_server():
    script = Script(httpx.ConnectError("refused"), httpx.Response(429), httpx.Response(201, json={"id": "p1"}))
    assert await api(script).post("/pods", json_body={}) == {"id": "p1"}
    assert len(script.requests) == 3


async def test_post_marked_idempotent_is_retried():
    script = Script(httpx.Response(502), httpx.Response(200, json={}))
    await api(script).post("/search", json_body={}, idempotent=True)
    assert len(script.requests) == 2


async def test_connect_error_everywhere_is_a_connection_error_that_did_not_apply():
    script = Script(*[httpx.ConnectError("refused")] * 5)
    with pytest.raises(ProviderConnectionError) as info:
        await api(script).get("/x")
    assert info.value.maybe_applied is False


async def test_a_refused_connection_is_tried_only_twice_so_no_network_fails_fast():
    sleeps: list[float] = []
    script = Script(*[httpx.ConnectError("Name or service not known")] * 5)
    with pytest.raises(ProviderConnectionError):
        await api(script, sleeps).get("/x")
    assert len(script.requests) == 2
    assert sum(sleeps) <= 0.5


@pytest.mark.parametrize(
    ("status", "error"),
    [(401, AuthenticationError), (403, AuthenticationError), (404, NotFoundError),
     (409, ConflictError), (400, ProviderError), (500, ServerError)],
)
async def test_statuses_map_to_the_error_tree(status, error):
    script = Script(*[httpx.Response(status, json={"error": "nope"}, headers={"x-request-id": "req-42"})] * 5)
    with pytest.raises(error) as info:
        await api(script).get("/x")
    assert info.value.status == status
    assert info.value.request_id == "req-42"
    assert info.value.provider == "acme"
    assert "nope" in str(info.value)


async def test_provider_classifier_refines_the_mapping():
    from runctl.errors import CapacityError

    def classify(response, message):
        if b"no instances available" in response.content:
            return CapacityError(message, provider="acme", status=response.status_code)
        return None

    script = Script(httpx.Response(400, json={"error": "no instances available"}))
    with pytest.raises(CapacityError):
        await api(script, classify=classify).post("/pods", json_body={})


async def test_non_json_body_is_a_malformed_response():
    script = Script(httpx.Response(200, text="<html>gateway</html>"))
    with pytest.raises(MalformedResponseError):
        await api(script).get("/x")


async def test_a_truncated_answer_never_carries_the_users_data_into_the_error():
    truncated = '{"pods": [{"id": "p1", "env": {"HF_TOKEN": "hf_user_secret_123"'
    script = Script(httpx.Response(200, text=truncated, headers={"content-type": "application/json"}))
    with pytest.raises(MalformedResponseError) as info:
        await api(script).get("/v2/pods")
    assert "hf_user_secret_123" not in f"{info.value} {info.value!r} {info.value.body}"
    assert "truncated?" in str(info.value)


async def test_the_key_is_sent_but_never_shown(caplog):
    caplog.set_level(logging.DEBUG, logger="runctl")
    echo = httpx.Response(500, json={"error": f"bad key {KEY}"})
    script = Script(echo, echo, echo, echo, echo)
    client = api(script)
    with pytest.raises(ServerError) as info:
        await client.get("/x", params={"api_key": KEY})
    assert script.requests[0].headers["Authorization"] == f"Bearer {KEY}"
    error = info.value
    for text in (str(error), repr(error), error.body or "", repr(client), caplog.text,
                 repr(client._client.headers)):
        assert KEY not in text
    assert "***" in (error.body or "")


async def test_the_secret_is_not_in_the_clients_default_headers():
    client = api(Script())
    assert "authorization" not in {k.lower() for k in client._client.headers}


@pytest.mark.parametrize(
    "url", ["http://127.0.0.1:8080", "http://localhost:1/x", "http://[::1]:9", "https://api.runpod.io"]
)
def test_base_url_accepts_https_and_loopback_http(url):
    assert check_base_url("acme", url)


@pytest.mark.parametrize("url", ["http://api.runpod.io", "http://10.0.0.1", "ftp://x", "api.runpod.io"])
def test_base_url_refuses_plain_http_off_loopback(url):
    with pytest.raises(ConfigurationError, match="acme"):
        check_base_url("acme", url)


async def test_a_broken_log_stream_is_a_connection_error_not_an_httpx_error():
    script = Script(httpx.ReadTimeout("quiet"))
    with pytest.raises(ProviderTimeoutError):
        async for _ in api(script).stream_lines("/logs"):
            pass


async def test_a_read_is_retried_on_500_and_succeeds():
    sleeps: list[float] = []
    script = Script(httpx.Response(500), httpx.Response(500), httpx.Response(200, json=[1]))
    assert await api(script, sleeps).get("/things") == [1]
    assert len(script.requests) == 3 and len(sleeps) == 2


async def test_a_write_is_not_retried_on_500_even_when_idempotent():
    script = Script(httpx.Response(500), httpx.Response(200, json={}))
    with pytest.raises(ServerError):
        await api(script).delete("/pods/p1")
    assert len(script.requests) == 1
