"""Bad input gets a clear error naming the flag or field and the allowed values (issue 9).

One test per row of the issue's "Bad input" table, through the CLI as a user types
it and through the Python API.
"""

from __future__ import annotations

import sys
import warnings
from datetime import timedelta
from decimal import Decimal
from pathlib import Path

import pytest

import runctl
from runctl.cli import main
from runctl.cost import StorageNotPricedWarning
from runctl.models import OfferQuery

PY = [sys.executable, "-c", "pass"]


def cli(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    """Run the CLI in this process; (exit code, stdout, stderr). Usage errors exit 2."""
    try:
        code = main(list(args))
    except SystemExit as e:  # argparse
        code = int(e.code or 0)
    out, err = capsys.readouterr()
    assert "Traceback" not in err
    return code, out, err


# --- unknown providers --------------------------------------------------------------------------


def test_offers_from_an_unknown_provider_is_an_error_not_an_empty_table(capsys):
    code, out, err = cli(capsys, "offers", "-p", "nosuch", "--snapshot-only")
    assert code == 1 and out == ""
    assert "--provider: no provider named 'nosuch' is installed or priced in the snapshot" in err
    assert "allowed:" in err and "local" in err and "runpod" in err


def test_offers_from_an_unknown_provider_in_python_names_the_field():
    with runctl.Client() as rc, pytest.raises(runctl.ValidationError) as caught:
        rc.offers(providers=["nosuch"])
    assert caught.value.field == "providers" and "local" in (caught.value.allowed or "")


def test_a_provider_priced_in_the_snapshot_but_not_installed_says_so(capsys):
    # Any snapshot provider without an installed plugin; 'aws' until it ships.
    with runctl.Client() as rc:
        missing = sorted(rc._async._snapshot_providers() - set(rc._async._installed()))
    if not missing:
        pytest.skip("every provider in the snapshot is installed")
    name = missing[0]
    code, _, err = cli(capsys, "launch", "--provider", name, "--", *PY)
    assert code == 1
    assert (f"--provider: {name!r} is priced in the offline snapshot but not launchable: "
            f"no provider named {name!r} is installed") in err
    # ... while its prices still show.
    with runctl.Client() as rc:
        assert rc.offers(providers=[name], live=False, limit=1)


# --- launch and run flags -----------------------------------------------------------------------


def test_an_unknown_gpu_is_refused_before_anything_is_launched(capsys):
    code, _, err = cli(capsys, "launch", "--gpu", "NOTAGPU", "--", *PY)
    assert code == 1
    assert "--gpu: 'NOTAGPU' is not a GPU model runctl knows (allowed: A10, A100," in err
    with runctl.Client() as rc:
        assert rc.ledger.records() == []


@pytest.mark.parametrize(
    ("args", "flag"),
    [
        (("launch", "--ttl", "0"), "--ttl"),
        (("launch", "--ttl", "-5"), "--ttl"),
        (("run", "--timeout", "-3"), "--timeout"),
        (("run", "--start-timeout", "0"), "--start-timeout"),
        (("launch", "--gpus", "-1"), "--gpus"),
        (("launch", "--disk", "0"), "--disk"),
    ],
)
def test_out_of_range_numbers_are_usage_errors_naming_the_flag(capsys, args, flag):
    code, _, err = cli(capsys, *args, "--", *PY)
    assert code == 2
    assert f"argument {flag}: " in err and "out of range (allowed:" in err


def test_offers_timeout_must_be_positive(capsys):
    code, _, err = cli(capsys, "offers", "--timeout", "-1")
    assert code == 2 and "argument --timeout: '-1' is out of range (allowed: > 0)" in err


def test_offers_timeout_must_be_positive_in_python():
    with runctl.Client() as rc, pytest.raises(runctl.ValidationError, match="timeout"):
        rc.offers(timeout=-1)


def test_an_empty_command_is_refused(capsys):
    code, _, err = cli(capsys, "launch", "--", "")
    assert code == 1
    assert "the command (after --): the program to run is empty" in err
    with pytest.raises(runctl.ValidationError, match="command: the program to run is empty"):
        runctl.LaunchSpec(command="")


def test_a_tag_without_equals_is_refused(capsys):
    code, _, err = cli(capsys, "launch", "--tag", "noequals", "--", *PY)
    assert code == 1 and "--tag: 'noequals' has no '=' (allowed: KEY=VALUE)" in err


# --- offers flags -------------------------------------------------------------------------------


@pytest.mark.parametrize("price", ["abc", "$3.50"])
def test_a_bad_max_price_names_the_flag_not_amount(capsys, price):
    code, _, err = cli(capsys, "offers", "--max-per-hour", price, "--snapshot-only")
    assert code == 1
    assert f"--max-per-hour: {price!r} is not a number (allowed: a number such as 3.50" in err
    with pytest.raises(runctl.ValidationError) as caught:
        OfferQuery(max_per_gpu_hour=price)
    assert caught.value.field == "max_per_gpu_hour"


def test_both_spellings_of_a_sort_view_work_in_the_cli_and_in_python(capsys):
    code, out, _ = cli(capsys, "offers", "--sort", "per_gpu_hour", "--snapshot-only", "--limit",
                       "1")
    assert code == 0 and out
    assert OfferQuery(sort="per-gpu-hour").sort == "per_gpu_hour"
    assert OfferQuery(sort="per_gpu_hour").sort == "per_gpu_hour"


# --- estimate -----------------------------------------------------------------------------------


def offer() -> runctl.Offer:
    price = runctl.Price(per_hour=runctl.Money("3.60"), billing_increment=timedelta(minutes=1))
    return runctl.Offer(provider="x", instance_type="t", gpu=None, gpu_count=0, price=price)


def test_estimate_takes_seconds_like_ttl_does():
    assert runctl.estimate(offer(), 10800) == runctl.Money(Decimal("10.80"))
    assert runctl.estimate(offer(), 10800) == runctl.estimate(offer(), timedelta(hours=3))


@pytest.mark.parametrize("bad", ["3h", None, -1, float("nan")])
def test_estimate_with_a_bad_duration_names_it(bad):
    with pytest.raises(runctl.ValidationError) as caught:
        runctl.estimate(offer(), bad)  # type: ignore[arg-type]
    assert caught.value.field == "duration" and "timedelta" in (caught.value.allowed or "")


def test_estimate_of_nothing_names_the_offer():
    with pytest.raises(runctl.ValidationError) as caught:
        runctl.estimate(None, timedelta(hours=1))  # type: ignore[arg-type]
    assert caught.value.field == "offer"


def test_estimate_says_when_the_disk_is_not_in_it():
    with pytest.warns(StorageNotPricedWarning, match="disk_gb=100 is not in the estimate"):
        total = runctl.estimate(offer(), timedelta(hours=1), disk_gb=100)
    assert total == runctl.Money("3.60")
    priced = runctl.Price(per_hour=runctl.Money("3.60"), storage_per_gb_month=runctl.Money("0.1"))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        runctl.estimate(priced, timedelta(hours=1), disk_gb=100)


# --- config and home ----------------------------------------------------------------------------


def test_a_read_only_home_makes_catalog_refresh_a_clear_error(capsys, runctl_home: Path):
    # A regular file where the catalog directory goes can never be written into,
    # whoever runs the test (root too, for whom permissions do not count).
    (runctl_home / "catalog").write_text("")
    code, _, err = cli(capsys, "catalog", "refresh")
    assert code == 1
    assert "cannot write the price snapshot to" in err and "RUNCTL_HOME" in err


def test_a_misspelt_config_key_is_warned_about_when_read(runctl_home: Path, caplog):
    (runctl_home / "config.toml").write_text('defualt_provider = "local"\n')
    runctl.load_settings()
    assert "unknown key 'defualt_provider' ignored (did you mean 'default_provider'?)" in caplog.text
