"""A real Slurm cluster for the Slurm provider's tests: the one ``cluster/up.sh`` starts.

The tests that need it take the ``cluster`` fixture (session-scoped): it reads the
``cluster.env`` that up.sh writes and checks that slurmctld answers. Without a cluster
the tests skip and say why; with ``RUNCTL_REQUIRE_SLURM=1`` (``.ci/run`` sets it) they
fail instead, so a CI machine whose set-up broke cannot pass by skipping.

Every transport reaches the same cluster: ``local`` (the Slurm commands here), ``ssh``
(the same over the sshd up.sh runs on 127.0.0.1) and ``rest`` (slurmrestd with a JWT),
plus ``socket`` (slurmrestd's unix socket) where a test wants it.
"""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator, Mapping
from pathlib import Path

import attrs
import pytest

from runctl.config import ProviderConfig
from runctl.providers.slurm import SlurmProvider

HERE = Path(__file__).parent
UP = HERE / "cluster" / "up.sh"
CLUSTER_ENV = Path(os.environ.get("RUNCTL_SLURM_DIR", "/tmp/runctl-slurm")) / "cluster.env"
TRANSPORTS = ("local", "ssh", "rest")


@attrs.frozen
class Cluster:
    """The running test cluster, as up.sh describes it in cluster.env."""

    env: Mapping[str, str]

    @property
    def job_dir(self) -> str:
        return self.env["SLURM_JOB_DIR"]

    def settings(self, transport: str, **extra: str) -> dict[str, str]:
        """``[providers.slurm]`` settings that reach this cluster through ``transport``."""
        base = {"log_poll_seconds": "0.2", "state_poll_seconds": "1", **extra}
        if transport == "local":
            return {"transport": "local", "output_dir": self.job_dir, **base}
        if transport == "ssh":
            return {
                "transport": "ssh",
                "ssh_host": self.env["SLURM_SSH_HOST"],
                "ssh_config": self.env["SLURM_SSH_CONFIG"],
                "output_dir": self.job_dir,
                **base,
            }
        if transport == "rest":
            return {
                "transport": "rest",
                "rest_url": self.env["SLURMRESTD_URL"],
                "jwt": self.env["SLURM_JWT"],
                "user": self.env["SLURM_USER_NAME"],
                "output_dir": self.job_dir,
                **base,
            }
        if transport == "socket":
            return {
                "transport": "rest",
                "rest_socket": self.env["SLURMRESTD_SOCKET"],
                "output_dir": self.job_dir,
                **base,
            }
        raise ValueError(transport)

    def env_vars(self, transport: str, **extra: str) -> dict[str, str]:
        """The same settings as ``RUNCTL_SLURM_*`` environment variables (for Client, CLI)."""
        settings = self.settings(transport, **extra)
        env = {"SLURM_JWT": settings.pop("jwt")} if "jwt" in settings else {}
        return env | {f"RUNCTL_SLURM_{k.upper()}": v for k, v in settings.items()}

    def provider(self, transport: str, home: Path, **extra: str) -> SlurmProvider:
        config = ProviderConfig(
            name="slurm", home=home, settings=self.settings(transport, **extra),
            environ=dict(os.environ),
        )
        return SlurmProvider(config)

    def scontrol(self, *args: str) -> str:
        return subprocess.run(["scontrol", *args], capture_output=True, text=True, check=True,
                              timeout=30).stdout


def _unavailable(reason: str) -> None:
    if os.environ.get("RUNCTL_REQUIRE_SLURM") == "1":
        pytest.fail(f"RUNCTL_REQUIRE_SLURM=1 but the Slurm test cluster is not up: {reason}")
    pytest.skip(f"no Slurm test cluster ({reason}); start one with {UP} (as root)")


def _read_env(path: Path) -> dict[str, str]:
    env = {}
    for line in path.read_text().splitlines():
        key, sep, value = line.partition("=")
        if sep:
            env[key.strip()] = value.strip()
    return env


@pytest.fixture(scope="session")
def cluster() -> Iterator[Cluster]:
    """The cluster up.sh started; skips (or fails, under RUNCTL_REQUIRE_SLURM=1) without it."""
    if not CLUSTER_ENV.exists():
        _unavailable(f"{CLUSTER_ENV} does not exist")
    try:
        ping = subprocess.run(["scontrol", "ping"], capture_output=True, text=True, timeout=20)
    except (OSError, subprocess.TimeoutExpired) as e:
        _unavailable(f"scontrol ping failed: {e}")
    if ping.returncode != 0 or "UP" not in ping.stdout:
        _unavailable(f"slurmctld does not answer: {ping.stdout.strip() or ping.stderr.strip()}")
    yield Cluster(env=_read_env(CLUSTER_ENV))


@pytest.fixture(params=TRANSPORTS)
def transport(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def slurm_env(cluster: Cluster, transport: str, monkeypatch: pytest.MonkeyPatch) -> str:
    """The environment makes ``slurm`` reach the cluster through ``transport``; returns it."""
    for key, value in cluster.env_vars(transport).items():
        monkeypatch.setenv(key, value)
    return transport


CURRENT_ENV = (
    Path(os.environ.get("RUNCTL_SLURM_TRIXIE_DIR", "/tmp/runctl-slurm-trixie")) / "cluster.env"
)
TRIXIE_UP = HERE / "cluster" / "trixie-up.sh"


@pytest.fixture(scope="session")
def current_cluster() -> Iterator[dict[str, str]]:
    """Slurm 24.11's slurmrestd, from cluster/trixie-up.sh (nox -s slurm_current).

    Skips without it; fails instead under ``RUNCTL_REQUIRE_SLURM_CURRENT=1``.
    """
    problem = None
    if not CURRENT_ENV.exists():
        problem = f"{CURRENT_ENV} does not exist"
    else:
        env = _read_env(CURRENT_ENV)
        import httpx

        try:
            httpx.get(f"{env['SLURMRESTD_URL']}/openapi/v3", timeout=10,
                      headers={"X-SLURM-USER-NAME": env["SLURM_USER_NAME"],
                               "X-SLURM-USER-TOKEN": env["SLURM_JWT"]}).raise_for_status()  # fmt: skip
        except httpx.HTTPError as e:
            problem = f"slurmrestd does not answer: {type(e).__name__}"
    if problem is not None:
        if os.environ.get("RUNCTL_REQUIRE_SLURM_CURRENT") == "1":
            pytest.fail(f"RUNCTL_REQUIRE_SLURM_CURRENT=1 but Slurm 24.11 is not up: {problem}")
        pytest.skip(f"no Slurm 24.11 test cluster ({problem}); `nox -s slurm_current` starts one")
    yield env


def current_provider(env: Mapping[str, str], home: Path, **extra: str) -> SlurmProvider:
    """A provider for the 24.11 cluster's slurmrestd (job output is read from the chroot)."""
    settings = {
        "transport": "rest", "rest_url": env["SLURMRESTD_URL"], "jwt": env["SLURM_JWT"],
        "user": env["SLURM_USER_NAME"], "output_dir": env["SLURM_JOB_DIR"],
        "local_output_dir": env["SLURM_JOB_DIR_HERE"], "log_poll_seconds": "0.2", **extra,
    }  # fmt: skip
    return SlurmProvider(ProviderConfig(name="slurm", home=home, settings=settings, environ={}))
