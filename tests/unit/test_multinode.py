"""Multi-node launches in the model: nodes, their price, their addresses, the rendezvous env."""

from __future__ import annotations

import pytest

import runctl
from runctl import LaunchSpec, Money, Price, Resource, ResourceState, ValidationError
from runctl.errors import UnsupportedOperationError
from runctl.models import Gpu, Offer


def _offer() -> Offer:
    price = Price(per_hour=Money("2.50"), gpu_count=2)
    return Offer(provider="local", instance_type="x2", gpu=Gpu(model="H100"), gpu_count=2, price=price)


def test_a_launch_is_one_node_unless_asked() -> None:
    assert LaunchSpec(command=["true"]).nodes == 1


@pytest.mark.parametrize("bad", [0, -1, 1.5, True, "2", None])
def test_nodes_must_be_a_positive_int(bad: object) -> None:
    with pytest.raises(ValidationError) as info:
        LaunchSpec(command=["true"], nodes=bad)  # type: ignore[arg-type]
    assert info.value.field == "nodes"


def test_the_expected_price_covers_every_node() -> None:
    spec = LaunchSpec(command=["true"], offer=_offer(), nodes=4)
    assert spec.expected_price is not None
    assert spec.expected_price.per_hour == Money("10.00")
    assert spec.expected_price.gpu_count == 8
    # Per GPU-hour is the same whatever the number of nodes.
    assert spec.expected_price.per_gpu_hour == Money("1.25")
    assert LaunchSpec(command=["true"], offer=_offer()).expected_price == _offer().price
    assert LaunchSpec(command=["true"]).expected_price is None


def test_price_scaled_keeps_the_billing_rules() -> None:
    from datetime import timedelta

    price = Price(per_hour=Money("3"), billing_increment=timedelta(minutes=1),
                  minimum_duration=timedelta(minutes=10))
    both = price.scaled(2)
    assert both.billing_increment == price.billing_increment
    assert both.minimum_duration == price.minimum_duration
    assert both.compute_cost(timedelta(seconds=1)) == price.compute_cost(timedelta(seconds=1)) * 2
    with pytest.raises(ValidationError):
        price.scaled(0)


def test_a_resource_reports_every_node_address_and_round_trips() -> None:
    res = Resource(id="j1", provider="slurm", state=ResourceState.RUNNING, nodes=2,
                   address="n1", addresses=["n1", "n2"])
    assert res.addresses == ("n1", "n2")
    assert runctl.from_json(runctl.to_json(res), Resource) == res


def test_the_rendezvous_environment_is_what_torchrun_reads() -> None:
    env = runctl.rendezvous_env(["10.0.0.1", "10.0.0.2"], 1)
    assert env == {
        "MASTER_ADDR": "10.0.0.1",
        "MASTER_PORT": "29500",
        "WORLD_SIZE": "2",
        "NODE_RANK": "1",
        "RUNCTL_NUM_NODES": "2",
        "RUNCTL_NODE_RANK": "1",
        "RUNCTL_NODE_ADDRS": "10.0.0.1,10.0.0.2",
    }
    assert tuple(env) == runctl.RENDEZVOUS_VARIABLES
    assert runctl.rendezvous_env(["a"], 0, port=1234)["MASTER_PORT"] == "1234"


@pytest.mark.parametrize(
    ("args", "kwargs", "field"),
    [
        (([], 0), {}, "addresses"),
        ((["a", ""], 0), {}, "addresses"),
        ((["a,b"], 0), {}, "addresses"),
        ((["a", "b"], 2), {}, "node_rank"),
        ((["a", "b"], -1), {}, "node_rank"),
        ((["a"], 0), {"port": 0}, "port"),
        ((["a"], 0), {"port": 70000}, "port"),
    ],
)
def test_a_bad_rendezvous_is_refused_naming_the_argument(
    args: tuple[object, ...], kwargs: dict[str, object], field: str
) -> None:
    with pytest.raises(ValidationError) as info:
        runctl.rendezvous_env(*args, **kwargs)  # type: ignore[arg-type]
    assert info.value.field == field


def test_a_provider_without_multi_node_refuses_nodes_above_one() -> None:
    spec = LaunchSpec(command=["true"], provider="local", nodes=2)
    with runctl.Client() as rc, pytest.raises(UnsupportedOperationError) as info:
        rc.launch(spec).__enter__()
    assert "multi_node" in str(info.value)
    assert "nodes=2" in str(info.value)
    with runctl.Client() as rc:
        assert rc.list(providers=["local"]) == []


def test_the_cli_takes_nodes_and_refuses_them_where_the_provider_cannot(capsys):
    from runctl.cli import main

    assert main(["launch", "--provider", "local", "--nodes", "2", "--", "true"]) == 1
    err = capsys.readouterr().err
    assert "multi_node" in err and "nodes=2" in err
    try:
        main(["launch", "--nodes", "0", "--", "true"])
    except SystemExit as e:
        assert e.code == 2
    assert "--nodes" in capsys.readouterr().err
