"""Error bodies are redacted before they are kept (issue 18, item 8)."""

from __future__ import annotations

import httpx
import pytest

from runctl._wire import Fields, malformed
from runctl.config import Secret
from runctl.errors import MalformedResponseError, ProviderError
from runctl.http import HttpApi

KEY = "rk_live_REDACTME_0123456789abcdef"
USER_TOKEN = "hf_user_token_value_9f8e7d"


def _api(handler) -> HttpApi:
    async def no_sleep(seconds: float) -> None:
        return None

    return HttpApi(
        provider="acme", base_url="https://api.acme.test/v1", secret=Secret(KEY, "env ACME_KEY"),
        transport=httpx.MockTransport(handler), sleep=no_sleep,
    )


@pytest.mark.anyio
@pytest.mark.parametrize("offset", range(1990, 2001, 2))
async def test_no_key_prefix_survives_the_cut_of_an_error_body(offset: int) -> None:
    # The key straddles the 2,000-character cut: redacting after cutting left its prefix.
    body = "x" * offset + KEY + "y" * 100
    api = _api(lambda request: httpx.Response(400, text=body))
    with pytest.raises(ProviderError) as info:
        await api.get("/things")
    await api.aclose()
    kept = info.value.body or ""
    assert KEY[:8] not in kept and len(kept) <= 2000


def test_a_malformed_successful_answer_keeps_no_env_value_nor_key() -> None:
    Secret(KEY, "env ACME_KEY")  # a credential this process holds
    pod = {"id": 7, "name": "n", "env": {"HF_TOKEN": USER_TOKEN}, "note": f"echo {KEY}",
           "containers": [{"args": f"python train.py --token {USER_TOKEN}"}]}
    with pytest.raises(MalformedResponseError) as info:
        Fields(pod, "Pod", provider="acme").text("id")
    assert USER_TOKEN not in (info.value.body or "") and KEY not in (info.value.body or "")
    error = malformed("acme", "Pod: bad", {"pods": [pod] * 40})  # long: cut at 500
    assert USER_TOKEN not in (error.body or "") and KEY[:6] not in (error.body or "")


def test_a_provider_error_built_anywhere_redacts_its_body() -> None:
    Secret(KEY, "env ACME_KEY")
    error = ProviderError("failed", provider="acme", body=f"the key {KEY} was refused")
    assert KEY not in (error.body or "") and "***" in (error.body or "")
