"""moto as a real EC2 server on loopback, with the few things moto cannot do injected in-process.

The server is moto's ``ThreadedMotoServer`` in this process (one per test session,
state reset between tests through ``POST /moto-api/reset``), so boto3 talks real
HTTP to it, and the tests can still reach moto's backend objects to do what moto
does not model:

- publish the images AWS publishes (the Deep Learning AMIs belong to account
  898082745236; moto's own images are off, ``MOTO_EC2_LOAD_DEFAULT_AMIS=false``);
- record what ``RunInstances`` received, and refuse it as EC2 would (no capacity in a
  zone, throttling) or carry it out and then cut the connection (a lost answer);
- interrupt a spot instance, or end one that powered itself off;
- give an instance's serial console what the machine printed: moto's
  ``GetConsoleOutput`` answers a fixed Linux boot log, so the text is set per instance.

Instance-type and AMI validation are on, so bad input is refused as AWS would.
"""

from __future__ import annotations

import os
import socket
import subprocess
import urllib.parse
from collections.abc import Callable, Iterator
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import pytest

from runctl.config import ProviderConfig
from tests.support.fake_sleep import Sleeps

REGION = "us-east-1"
#: Made-up credentials: tests assert they never show in errors or reprs.
FAKE_KEY_ID = "AKIATESTFAKE00000001"
FAKE_SECRET = "fake/secret/0123456789abcdefghijklmnopqrstuv"
DLAMI_OWNER = "898082745236"

_MOTO_ENV = {
    "MOTO_EC2_ENABLE_INSTANCE_TYPE_VALIDATION": "1",
    "MOTO_ENABLE_AMI_VALIDATION": "1",
    "MOTO_EC2_LOAD_DEFAULT_AMIS": "false",
}


class MotoEc2:
    """The running moto server and handles on its EC2 backend."""

    def __init__(self, url: str) -> None:
        self.url = url
        #: What each RunInstances call received (moto's parsed parameters).
        self.run_calls: list[dict[str, Any]] = []
        #: ... and its request parameters as sent (``ClientToken``, ``SpotOptions`` ...).
        self.run_requests: list[dict[str, str]] = []
        #: Per zone, the error RunInstances raises there (``None``: no placement asked;
        #: ``"*"``: everywhere).
        self.refuse: dict[str | None, tuple[str, str]] = {}
        #: Throttle the next N calls of RunInstances.
        self.throttle = 0
        #: Carry out the next N RunInstances, then cut the connection before answering.
        self.lose_answers = 0
        #: Called with each instance RunInstances made (e.g. to run its user data).
        self.on_run: Callable[[Any], None] | None = None
        #: What each instance printed on its serial console.
        self.consoles: dict[str, str] = {}

    def backend(self, region: str = REGION) -> Any:
        from moto.core import DEFAULT_ACCOUNT_ID
        from moto.ec2.models import ec2_backends

        return ec2_backends[DEFAULT_ACCOUNT_ID][region]

    def reset(self) -> None:
        import urllib.request

        urllib.request.urlopen(urllib.request.Request(f"{self.url}/moto-api/reset", method="POST"))
        self.run_calls.clear()
        self.run_requests.clear()
        self.refuse.clear()
        self.consoles.clear()
        self.throttle = self.lose_answers = 0
        self.on_run = None

    def publish_image(
        self, name: str, *, owner: str = DLAMI_OWNER, architecture: str = "x86_64",
        created: datetime | None = None, region: str = REGION,
    ) -> str:
        """An AMI as its publisher registered it (moto's register_image makes them ours)."""
        from moto.ec2.models.amis import Ami
        from moto.ec2.utils import random_ami_id

        backend = self.backend(region)
        ami = Ami(
            backend, random_ami_id(), name=name, owner_id=owner, architecture=architecture,
            creation_date=created or datetime.now(timezone.utc), root_device_name="/dev/sda1",
            region_name=region,
        )
        backend.amis[ami.id] = ami
        return str(ami.id)

    def instance(self, instance_id: str, region: str = REGION) -> Any:
        return self.backend(region).get_instance(instance_id)

    def user_data(self, instance_id: str, region: str = REGION) -> str:
        """The user data script the instance received, decoded."""
        return str(self.instance(instance_id, region).user_data.decode())

    def interrupt_spot(self, instance_id: str, region: str = REGION) -> None:
        """What EC2 does when it takes a spot instance back."""
        from moto.ec2.models.instances import StateReason

        backend = self.backend(region)
        backend.terminate_instances([instance_id])
        inst = backend.get_instance(instance_id)
        inst.state_reason = StateReason(
            "Server.SpotInstanceTermination: Spot instance termination",
            "Server.SpotInstanceTermination",
        )
        inst._reason = "Service initiated"

    def power_off(self, instance_id: str, region: str = REGION) -> None:
        """The machine ran ``poweroff``; InstanceInitiatedShutdownBehavior=terminate ends it."""
        from moto.ec2.models.instances import StateReason

        backend = self.backend(region)
        inst = backend.get_instance(instance_id)
        assert inst.instance_initiated_shutdown_behavior == "terminate"
        backend.terminate_instances([instance_id])
        inst.state_reason = StateReason(
            "Client.InstanceInitiatedShutdown: Instance initiated shutdown",
            "Client.InstanceInitiatedShutdown",
        )
        inst._reason = "Client.InstanceInitiatedShutdown: Instance initiated shutdown"


def _install_hooks(moto: MotoEc2) -> Callable[[], None]:
    """Wrap moto's RunInstances and GetConsoleOutput; returns the undo."""
    import flask
    from moto.ec2.exceptions import EC2ClientError
    from moto.ec2.models import EC2Backend
    from moto.ec2.responses.general import General
    from moto.ec2.utils import Base64EncodedString

    original_run = EC2Backend.run_instances
    original_console = General.get_console_output

    def run_instances(self: Any, *args: Any, **kwargs: Any) -> Any:
        moto.run_calls.append(dict(kwargs, image_id=args[0] if args else kwargs.get("image_id")))
        # What went over the wire, as the query parameters EC2 receives.
        sent = {**flask.request.args.to_dict(), **flask.request.form.to_dict()}
        if not sent:
            sent = dict(urllib.parse.parse_qsl(flask.request.get_data(as_text=True)))
        moto.run_requests.append(sent)
        if moto.throttle > 0:
            moto.throttle -= 1
            raise EC2ClientError("RequestLimitExceeded", "Request limit exceeded.")
        zone = kwargs.get("placement")
        # A zone name, None (no placement asked) or "*" (everywhere).
        refused = moto.refuse.get(zone, moto.refuse.get("*"))
        if refused is not None:
            raise EC2ClientError(*refused)
        reservation = original_run(self, *args, **kwargs)
        for inst in reservation.instances:
            if moto.on_run is not None:
                moto.on_run(inst)
        if moto.lose_answers > 0:
            moto.lose_answers -= 1
            # Carried out, and the answer never arrives: the socket goes away under it.
            sock = flask.request.environ.get("werkzeug.socket")
            assert sock is not None, "werkzeug no longer exposes the socket"
            sock.shutdown(socket.SHUT_RDWR)
        return reservation

    def get_console_output(self: Any) -> Any:
        instance_id = self._get_param("InstanceId")
        if instance_id not in moto.consoles:
            return original_console(self)
        instance = self.ec2_backend.get_instance(instance_id)
        from moto.core.responses import ActionResult
        from moto.core.utils import utcnow

        return ActionResult({
            "InstanceId": instance.id,
            "Timestamp": utcnow(),
            "Output": Base64EncodedString.from_raw_string(moto.consoles[instance_id]),
        })

    EC2Backend.run_instances = run_instances  # type: ignore[method-assign]
    General.get_console_output = get_console_output  # type: ignore[method-assign]

    def undo() -> None:
        EC2Backend.run_instances = original_run  # type: ignore[method-assign]
        General.get_console_output = original_console  # type: ignore[method-assign]

    return undo


@pytest.fixture(scope="session")
def moto_server() -> Iterator[MotoEc2]:
    for key, value in _MOTO_ENV.items():
        os.environ[key] = value  # read by moto when it is imported
    from moto.server import ThreadedMotoServer

    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    moto = MotoEc2(f"http://{host}:{port}")
    undo = _install_hooks(moto)
    try:
        yield moto
    finally:
        undo()
        server.stop()


def aws_environ(moto: MotoEc2, **extra: str) -> dict[str, str]:
    return {
        "AWS_ACCESS_KEY_ID": FAKE_KEY_ID,
        "AWS_SECRET_ACCESS_KEY": FAKE_SECRET,
        "AWS_REGION": REGION,
        "AWS_ENDPOINT_URL_EC2": moto.url,
        "AWS_CONFIG_FILE": "/nonexistent/aws-config",
        "AWS_SHARED_CREDENTIALS_FILE": "/nonexistent/aws-credentials",
        "AWS_EC2_METADATA_DISABLED": "true",
        **extra,
    }


@pytest.fixture
def moto(moto_server: MotoEc2, monkeypatch: pytest.MonkeyPatch) -> Iterator[MotoEc2]:
    """The moto server, emptied, with a default GPU image published; fake credentials in env."""
    moto_server.reset()
    # boto3 also reads the process environment: make sure it finds only fakes there.
    for key, value in aws_environ(moto_server).items():
        monkeypatch.setenv(key, value)
    monkeypatch.delenv("AWS_SESSION_TOKEN", raising=False)
    monkeypatch.delenv("AWS_ENDPOINT_URL", raising=False)
    moto_server.publish_image(
        "Deep Learning Base OSS Nvidia Driver GPU AMI (Ubuntu 22.04) 20260101",
        created=datetime(2026, 1, 1, tzinfo=timezone.utc),
    )
    yield moto_server
    moto_server.reset()


class Clock:
    """A monotonic clock the tests move by hand."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def sleeps() -> Sleeps:
    return Sleeps(cap=0.0)


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def make_provider(
    moto: MotoEc2, tmp_path: Path, sleeps: Sleeps, clock: Clock
) -> Iterator[Callable[..., Any]]:
    from runctl.providers.aws import AwsProvider

    made: list[AwsProvider] = []

    def make(environ: dict[str, str] | None = None, **kw: Any) -> AwsProvider:
        config = ProviderConfig(
            name="aws", home=tmp_path, environ=environ or aws_environ(moto),
            settings=kw.pop("settings", {}),
        )
        kw.setdefault("sleep", sleeps)
        kw.setdefault("clock", clock)
        provider = AwsProvider(config, **kw)
        made.append(provider)
        return provider

    yield make
    for provider in made:
        for client in provider._clients.values():
            client.close()


@pytest.fixture
def provider(make_provider: Callable[..., Any]) -> Any:
    return make_provider()


def run_user_data(
    script: str, tmp_path: Path, *, timeout: float = 30.0, cloud_dir: Path | None = None
) -> tuple[str, list[str]]:
    """Run a user data script here as cloud-init would, with the machine's own commands stubbed.

    ``poweroff`` and ``shutdown`` are stand-ins on ``PATH`` that record their calls; the
    serial console is a file (``RUNCTL_CONSOLE``), and cloud-init's directory
    ``cloud_dir`` (``RUNCTL_CLOUD_DIR``) when given. Returns (console text, power calls).
    """
    bin_dir = tmp_path / "machine-bin"
    bin_dir.mkdir(parents=True, exist_ok=True)
    calls = tmp_path / "power-calls"
    for command in ("poweroff", "shutdown"):
        stub = bin_dir / command
        stub.write_text(f'#!/bin/sh\necho "{command} $*" >> {calls}\n')
        stub.chmod(0o755)
    console = tmp_path / "console"
    console.write_text("[    0.000000] Linux version 6.8.0-1015-aws\ncloud-init: running modules\n")
    env = {
        "PATH": f"{bin_dir}:{os.environ.get('PATH', '/usr/bin:/bin')}",
        "RUNCTL_CONSOLE": str(console),
    }
    if cloud_dir is not None:
        env["RUNCTL_CLOUD_DIR"] = str(cloud_dir)
    subprocess.run(
        ["/bin/sh", "-c", script], env=env, timeout=timeout, check=True,
        start_new_session=True, cwd=tmp_path,
    )
    text = console.read_text() + "[  100.000000] reboot: Power down\n"
    power = [c.strip() for c in calls.read_text().splitlines()] if calls.exists() else []
    return text, power
