"""Recorded HTTP exchanges for provider tests (vcrpy), with credentials scrubbed.

Tests replay cassettes and never touch the network. ``RUNCTL_RECORD=1`` (with the
provider's real credentials, in its live test) records them again::

    with cassette_vcr(CASSETTES).use_cassette("lifecycle.yaml") as cassette:
        ...                                  # replays; fails on a request not recorded
    with record_to(CASSETTES, "live-lifecycle.yaml"):
        ...                                  # records only when RUNCTL_RECORD=1
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from pathlib import Path

import vcr

__all__ = ["cassette_vcr", "record_to", "recording"]


def recording() -> bool:
    """Whether this run re-records cassettes (``RUNCTL_RECORD=1``)."""
    return os.environ.get("RUNCTL_RECORD") == "1"


def cassette_vcr(folder: Path, *, record: bool = False) -> vcr.VCR:
    """A VCR for the cassettes in ``folder``: replay only, or (``record``) overwrite them.

    Auth and cookie headers are never written; requests match on method and the
    whole URL (query included).
    """
    return vcr.VCR(
        cassette_library_dir=str(folder),
        record_mode="all" if record else "none",
        filter_headers=["authorization", "cookie", "set-cookie"],
        match_on=("method", "scheme", "host", "port", "path", "query"),
        decode_compressed_response=True,
    )


@contextlib.contextmanager
def record_to(folder: Path, name: str) -> Iterator[None]:
    """Record the exchanges inside to ``folder/name`` when :func:`recording`; else do nothing."""
    if not recording():
        yield
        return
    with cassette_vcr(folder, record=True).use_cassette(name):
        yield
