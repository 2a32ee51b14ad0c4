"""Vast: the state table, labels, wire models, prices and credentials, without the network."""

from __future__ import annotations

from datetime import datetime, timezone
from decimal import Decimal
from pathlib import Path

import pytest

from runctl.config import ProviderConfig
from runctl.errors import ConfigurationError, MalformedResponseError, ValidationError
from runctl.models import TAG_LAUNCH_ID, TAG_MANAGED_BY, LaunchSpec, ResourceState
from runctl.providers.vast import (
    RAW_STATES,
    VastInstance,
    VastOffer,
    VastProvider,
    decode_label,
    encode_label,
    offer_price,
    state_of,
)

S = ResourceState
KEY = "vast-test-key-0123456789abcdef"

#: Every actual_status Vast documents (vastai/SKILL.md "Instance status values").
DOCUMENTED = {
    None: S.PROVISIONING, "created": S.PENDING, "loading": S.PROVISIONING,
    "running": S.RUNNING, "stopped": S.STOPPED, "frozen": S.STOPPED, "exited": S.FAILED,
    # No heartbeat from the host: it may still run (and bill), so never UNKNOWN.
    "rebooting": S.PROVISIONING, "unknown": S.RUNNING, "offline": S.RUNNING,
}


@pytest.mark.parametrize(("raw", "expected"), list(DOCUMENTED.items()))
def test_every_documented_status_has_a_state(raw: str | None, expected: ResourceState) -> None:
    assert RAW_STATES[raw] is expected
    assert state_of(raw, "running")[0] is expected or raw == "stopped"


def test_the_table_covers_exactly_the_documented_statuses() -> None:
    assert set(RAW_STATES) == set(DOCUMENTED)


def test_exited_is_failed_and_says_the_exit_code_is_unknown() -> None:
    state, detail = state_of("exited", "running")
    assert state is S.FAILED
    assert detail is not None and "exit code" in detail


def test_an_unrecognised_status_is_unknown_and_named() -> None:
    state, detail = state_of("hibernating", "running")
    assert state is S.UNKNOWN
    assert detail is not None and "hibernating" in detail


def test_a_requested_stop_shows_as_stopping_until_it_is_stopped() -> None:
    assert state_of("running", "stopped")[0] is S.STOPPING
    assert state_of("stopped", "stopped")[0] is S.STOPPED


def test_a_requested_start_on_a_stopped_instance_is_pending() -> None:
    assert state_of("stopped", "running")[0] is S.PENDING


def test_an_outbid_interruptible_is_stopped_with_a_reason() -> None:
    state, detail = state_of("stopped", "running", is_bid=True)
    assert state is S.STOPPED
    assert detail is not None and "outbid" in detail


def test_labels_carry_every_runctl_tag_and_come_back() -> None:
    spec = LaunchSpec(command=["true"], name="train", tags={"team": "a b&c"}, ttl=3600)
    label = encode_label(spec.runctl_tags)
    assert label.startswith("runctl:")
    assert decode_label(label) == spec.runctl_tags


def test_a_foreign_label_is_not_runctls() -> None:
    assert decode_label("My ML Training Job") is None
    assert decode_label(None) is None
    assert decode_label("runctl:team=a") is None  # no launch id
    assert decode_label("runctl:runctl-launch-id=x") is None  # no managed-by: not runctl's


def test_tags_too_long_for_the_label_are_refused() -> None:
    spec = LaunchSpec(command=["true"], tags={f"k{i}": "v" * 200 for i in range(6)})
    with pytest.raises(ValidationError, match="1024"):
        encode_label(spec.runctl_tags)


def test_offers_are_parsed_leniently_but_never_with_key_or_type_errors() -> None:
    offer = VastOffer.from_json({"id": 1, "num_gpus": 2, "brand_new_field": {"x": 1}})
    assert offer.id == 1 and offer.dph_base is None
    with pytest.raises(MalformedResponseError, match="offer.id"):
        VastOffer.from_json({"num_gpus": 2})
    with pytest.raises(MalformedResponseError, match="offer.dph_base"):
        VastOffer.from_json({"id": 1, "dph_base": "cheap"})
    with pytest.raises(MalformedResponseError):
        VastOffer.from_json(["not", "an", "object"])


def test_instances_tolerate_missing_optional_fields() -> None:
    inst = VastInstance.from_json({"id": 7, "actual_status": None})
    assert inst.num_gpus == 0 and inst.tags is None
    with pytest.raises(MalformedResponseError, match="instance.num_gpus"):
        VastInstance.from_json({"id": 7, "num_gpus": 1.5})


def test_prices_are_compute_per_machine_hour_with_storage_and_egress_apart() -> None:
    when = datetime(2026, 1, 1, tzinfo=timezone.utc)
    offer = VastOffer.from_json({"id": 1, "num_gpus": 4, "dph_base": 0.4, "dph_total": 0.5,
                                 "min_bid": 0.25, "storage_cost": 0.15, "inet_up_cost": 0.002})
    on_demand = offer_price(offer, spot=False, observed_at=when)
    assert on_demand is not None
    assert on_demand.per_hour.amount == Decimal("0.4")
    assert on_demand.per_gpu_hour is not None and on_demand.per_gpu_hour.amount == Decimal("0.1")
    assert on_demand.storage_per_gb_month is not None
    assert on_demand.storage_per_gb_month.amount == Decimal("0.15")
    assert on_demand.egress_per_gb is not None and on_demand.egress_per_gb.amount == Decimal("0.002")
    assert on_demand.billing_increment.total_seconds() == 1
    assert (on_demand.source, on_demand.observed_at, on_demand.spot) == ("live", when, False)
    spot = offer_price(offer, spot=True, observed_at=when)
    assert spot is not None and spot.spot and spot.per_hour.amount == Decimal("0.25")


def _config(environ: dict[str, str], settings: dict[str, str] | None = None) -> ProviderConfig:
    return ProviderConfig(name="vast", home=Path("/nonexistent"), settings=settings or {},
                          environ=environ)


def test_check_names_the_environment_variable_without_the_key(tmp_path: Path) -> None:
    availability = VastProvider.check(_config({"VAST_API_KEY": KEY, "HOME": str(tmp_path)}))
    assert availability.usable
    assert availability.reason is not None and "VAST_API_KEY" in availability.reason
    assert KEY not in availability.reason


def test_check_finds_the_vastai_cli_key_file(tmp_path: Path) -> None:
    (tmp_path / ".config" / "vastai").mkdir(parents=True)
    (tmp_path / ".config" / "vastai" / "vast_api_key").write_text(KEY + "\n")
    availability = VastProvider.check(_config({"HOME": str(tmp_path)}))
    assert availability.usable and availability.reason is not None
    assert "vastai/vast_api_key" in availability.reason and KEY not in availability.reason


def test_check_honours_xdg_config_home_and_the_legacy_file(tmp_path: Path) -> None:
    (tmp_path / ".vast_api_key").write_text(KEY)
    env = {"HOME": str(tmp_path), "XDG_CONFIG_HOME": str(tmp_path / "xdg")}
    assert ".vast_api_key" in (VastProvider.check(_config(env)).reason or "")
    (tmp_path / "xdg" / "vastai").mkdir(parents=True)
    (tmp_path / "xdg" / "vastai" / "vast_api_key").write_text(KEY)
    assert "xdg/vastai/vast_api_key" in (VastProvider.check(_config(env)).reason or "")


def test_check_reports_the_config_file(tmp_path: Path) -> None:
    availability = VastProvider.check(_config({"HOME": str(tmp_path)}, {"api_key": KEY}))
    assert availability.usable and "config file" in (availability.reason or "")


def test_check_without_a_key_says_where_it_looked(tmp_path: Path) -> None:
    availability = VastProvider.check(_config({"HOME": str(tmp_path)}))
    assert not availability.usable
    assert "VAST_API_KEY" in (availability.reason or "")


@pytest.mark.anyio
async def test_plain_http_to_a_remote_host_is_refused(tmp_path: Path) -> None:
    provider = VastProvider(_config({"VAST_API_KEY": KEY, "HOME": str(tmp_path),
                                     "RUNCTL_VAST_BASE_URL": "http://vast.example.com"}))
    with pytest.raises(ConfigurationError, match="plain http"):
        await provider.get("1")
    assert KEY not in repr(provider)


def test_the_capabilities_say_what_is_supported() -> None:
    caps = VastProvider(_config({})).capabilities
    assert caps.live_offers and caps.stop_start and caps.spot and caps.logs
    assert caps.idempotent_launch and caps.tags and caps.exit_code
    assert not caps.follow_logs and not caps.ttl


def test_managed_by_is_in_the_label() -> None:
    tags = decode_label(encode_label(LaunchSpec(command=["x"], launch_id="abc").runctl_tags))
    assert tags is not None
    assert tags[TAG_MANAGED_BY] == "runctl" and tags[TAG_LAUNCH_ID] == "abc"
