"""Tasks: `nox -s tests lint typing docs bench reliability`."""

from __future__ import annotations

import re
from pathlib import Path

import nox

nox.options.default_venv_backend = "venv"
nox.options.error_on_missing_interpreters = False
nox.options.sessions = ["tests", "lint", "typing"]

ROOT = Path(__file__).parent


def _pythons() -> list[str]:
    """The supported Pythons, read from the classifiers (one place to change)."""
    text = (ROOT / "pyproject.toml").read_text()
    return re.findall(r'"Programming Language :: Python :: (3\.\d+)"', text)


@nox.session(python=_pythons())
def tests(session: nox.Session) -> None:
    """The test suite; every async test runs under asyncio and trio."""
    session.install("-e", ".[test]")
    session.run("python", "-m", "pytest", *session.posargs)


@nox.session
def lint(session: nox.Session) -> None:
    """ruff."""
    session.install("ruff>=0.6")
    session.run("ruff", "check", "runctl", "tests", "noxfile.py")


@nox.session
def typing(session: nox.Session) -> None:
    """mypy --strict on the package."""
    session.install("-e", ".[lint]")
    session.run("mypy", "--strict", "runctl")


@nox.session
def docs(session: nox.Session) -> None:
    """Build the docs, failing on any warning."""
    session.install("-e", ".[docs]")
    session.run("mkdocs", "build", "--strict", "-f", "docs/mkdocs.yml")


@nox.session
def bench(session: nox.Session) -> None:
    """Benchmarks; results are written to docs/benchmarks.md."""
    session.install("-e", ".[test]")
    session.run("python", "tests/benchmarks/run.py", *session.posargs)


@nox.session
def reliability(session: nox.Session) -> None:
    """Figures for docs/reliability.md: 1,000 faulty cycles, 100 cancellations, machine faults."""
    session.install("-e", ".[test]")
    report = Path(session.create_tmp()) / "reliability.jsonl"
    report.unlink(missing_ok=True)
    session.run(
        "python", "-m", "pytest", "-q", "-s", "-m", "slow or not slow", "tests/reliability",
        env={"RUNCTL_RELIABILITY_REPORT": str(report)},
    )
    print(report.read_text())


@nox.session
def slurm_current(session: nox.Session) -> None:
    """The Slurm provider's REST transport against Slurm 24.11 (slurmrestd v0.0.40-42).

    Builds (once, about 4 min: debootstrap) and starts Debian trixie's Slurm in a chroot
    with tests/providers/slurm/cluster/trixie-up.sh (root, Debian host), runs
    tests/providers/slurm/test_slurm_current.py, which must not skip, and stops it.
    """
    session.install("-e", ".[test]")
    cluster = ROOT / "tests" / "providers" / "slurm" / "cluster"
    session.run("bash", str(cluster / "trixie-up.sh"), external=True)
    try:
        session.run(
            "python", "-m", "pytest", "-q", "tests/providers/slurm/test_slurm_current.py",
            *session.posargs, env={"RUNCTL_REQUIRE_SLURM_CURRENT": "1"},
        )
    finally:
        session.run("bash", str(cluster / "trixie-down.sh"), external=True)
