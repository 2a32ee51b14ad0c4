"""The offline price snapshot: what providers charged when it was built, with provenance.

runctl ships a compact snapshot of published prices (``runctl/data/snapshot.json.gz``)
so that ``offers()`` answers without credentials and a provider that is down
still shows its last known prices. Every offer from it carries
``Price.source == "snapshot"`` and the date the figures were observed.

- :func:`load_snapshot` reads the user's refreshed copy (``<runctl home>/catalog/
  snapshot.json.gz``) if there is one, else the packaged copy. It is cached in-process
  and warns with :class:`StaleSnapshotWarning` (a :class:`UserWarning`, so
  ``warnings.filterwarnings`` can silence or escalate it) when the snapshot is older
  than ``Settings.max_snapshot_age_days``.
- :func:`refresh` asks each given provider for live offers and writes the user's copy,
  falling back per provider to the snapshot's rows.
- :func:`build` (``python -m runctl.catalog build SRC_DIR``) rebuilds the packaged
  snapshot from the published catalog files in ``SRC_DIR``.

The file is gzip'd JSON in columns: a string table; a table of the distinct
*kinds* of offer (provider, machine type, GPU, GPU count, vCPUs, RAM, GPU memory,
spot, price source), a few hundred for 10,000s of offers; and one array per offer
field (its kind, region, zone and price, as numbers). Loading parses it and
indexes the columns for search; an :class:`~runctl.models.Offer` is built only
when it is looked at (``snapshot.offers`` is a lazy
:class:`~runctl.offers.OfferList`).
"""

from __future__ import annotations

import functools
import gzip
import json
import os
import sys
import tempfile
import warnings
from collections.abc import Iterable, Iterator, Mapping, Sequence
from datetime import datetime, timedelta, timezone
from decimal import Decimal
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING, Any

import attrs

from . import clock
from .cost import BillingRule, Money, Price
from .errors import ConfigurationError
from .gpus import gpu_for_instance_type, normalize_gpu
from .models import Gpu, Offer

if TYPE_CHECKING:
    from .config import Settings
    from .offers import OfferList
    from .provider import Provider

__all__ = [
    "BILLING_RULES",
    "BillingRule",
    "ProviderProvenance",
    "Snapshot",
    "StaleSnapshotWarning",
    "load_snapshot",
    "refresh",
    "snapshot_path",
]

FORMAT = 2
#: The fields of one offer, in the order :class:`_Writer` takes them.
COLUMNS = (
    "provider", "instance_type", "gpu", "gpu_count", "vcpus", "memory_gb", "gpu_memory_gb",
    "region", "zone", "per_hour", "spot", "source",
)
#: Columns of the file's table of distinct kinds of offer.
KIND_COLUMNS = (
    "provider", "instance_type", "gpu", "gpu_count", "vcpus", "memory_gb", "gpu_memory_gb",
    "spot", "source",
)
#: The file's per-offer arrays.
OFFER_COLUMNS = ("kind", "region", "zone", "per_hour")
_PACKAGED = "data/snapshot.json.gz"


class StaleSnapshotWarning(UserWarning):
    """The price snapshot is older than ``Settings.max_snapshot_age_days``.

    Refresh it with ``runctl.catalog.refresh(...)`` (live prices where you have
    credentials), or raise the limit in the config file.
    """


class _SourceRules(Mapping[str, BillingRule]):
    """The billing rule of each provider the snapshot holds, read from the data file once."""

    def _rules(self) -> Mapping[str, BillingRule]:
        return _sources()[0]

    def __getitem__(self, name: str) -> BillingRule:
        return self._rules()[name]

    def __iter__(self) -> Iterator[str]:
        return iter(self._rules())

    def __len__(self) -> int:
        return len(self._rules())


@functools.cache
def _sources() -> tuple[Mapping[str, BillingRule], Mapping[str, str]]:
    """Billing rules and row notes per provider, from ``data/snapshot_sources.json``."""
    text = resources.files("runctl").joinpath("data/snapshot_sources.json").read_text("utf-8")
    rules: dict[str, BillingRule] = {}
    notes: dict[str, str] = {}
    for name, facts in json.loads(text)["providers"].items():
        billing = facts.get("billing")
        if billing:
            rules[name] = BillingRule(
                increment=timedelta(seconds=billing["increment_s"]),
                minimum=timedelta(seconds=billing.get("minimum_s", 0)),
                source=billing.get("source", ""),
                note=billing.get("note", ""),
            )
        if facts.get("accelerator_rows_note"):
            notes[name] = facts["accelerator_rows_note"]
    return rules, notes


#: Billing rules put into the snapshot's prices (data: ``runctl/data/snapshot_sources.json``).
#: Where the provider's own page could not be confirmed, the rule is the conservative one
#: and says so. A provider's live prices use the rule its class declares (``billing_rule``).
BILLING_RULES: Mapping[str, BillingRule] = _SourceRules()
_S = timedelta(seconds=1)
_DEFAULT_RULE = BillingRule(increment=_S, note="no documented rule known; per second assumed")


@attrs.frozen(kw_only=True)
class ProviderProvenance:
    """Where one provider's prices in a snapshot came from.

    Attributes:
        provider: the provider.
        source: ``"snapshot"`` (published catalog figures) or ``"live"`` (its API).
        origin: the repository and path of the figures (or ``"<provider> API"``).
        commit: the commit of the file that was read, when it came from a repository.
        observed_at: when the figures were read.
        rows: offers kept.
        skipped: rows left out, by reason.
        billing: the billing rule applied to these prices.
        note: anything a reader of these prices should know.
    """

    provider: str
    source: str
    origin: str
    commit: str | None = None
    observed_at: datetime
    rows: int = 0
    skipped: Mapping[str, int] = attrs.field(factory=dict)
    billing: str = ""
    note: str = ""


@attrs.frozen(kw_only=True)
class Snapshot:
    """A loaded price snapshot.

    Attributes:
        offers: every offer in it (prices per instance-hour, in USD), as an
            :class:`~runctl.offers.OfferList` indexed for search; offers are built
            when looked at.
        observed_at: when its oldest provider's figures were observed.
        built_at: when the file was written.
        provenance: per provider, where its figures came from.
        path: the file it was read from.
    """

    offers: Sequence[Offer]
    observed_at: datetime
    built_at: datetime
    provenance: Mapping[str, ProviderProvenance]
    path: str

    def age(self, now: datetime | None = None) -> timedelta:
        """How old the oldest figures in the snapshot are."""
        return (now or clock.now()) - self.observed_at

    def is_stale(self, settings: Settings, now: datetime | None = None) -> bool:
        """Whether the snapshot is older than ``settings.max_snapshot_age_days``."""
        return self.age(now) > timedelta(days=settings.max_snapshot_age_days)


# --- reading -----------------------------------------------------------------------------------


def snapshot_path(settings: Settings) -> Path:
    """Where :func:`refresh` writes the user's copy of the snapshot."""
    return settings.home / "catalog" / "snapshot.json.gz"


def load_snapshot(settings: Settings, *, warn: bool = True) -> Snapshot:
    """The price snapshot: the user's refreshed copy if present, else the packaged one.

    Parsed once per file version per process.

    Args:
        settings: runctl settings (the home, the staleness limit).
        warn: emit :class:`StaleSnapshotWarning` when the snapshot is too old.
    """
    user = snapshot_path(settings)
    try:
        stat = user.stat()
    except OSError:
        snapshot = _load_packaged()
    else:
        snapshot = _load_file(str(user), stat.st_mtime_ns)
    if warn and snapshot.is_stale(settings):
        days = snapshot.age().days
        warnings.warn(
            f"runctl's price snapshot is {days} days old (observed "
            f"{snapshot.observed_at:%Y-%m-%d}, limit {settings.max_snapshot_age_days:g} days); "
            "snapshot prices may be out of date. Refresh with runctl.catalog.refresh().",
            StaleSnapshotWarning,
            stacklevel=2,
        )
    return snapshot


@functools.cache
def _load_packaged() -> Snapshot:
    ref = resources.files("runctl").joinpath(_PACKAGED)
    return _parse(ref.read_bytes(), str(ref))


@functools.lru_cache(maxsize=4)
def _load_file(path: str, mtime_ns: int) -> Snapshot:
    # mtime is part of the cache key so a refresh in another process is picked up.
    return _parse(Path(path).read_bytes(), path)


def _parse(blob: bytes, path: str) -> Snapshot:
    data = json.loads(gzip.decompress(blob))
    if data.get("format") == 1:
        data = _from_format_1(data)
    elif data.get("format") != FORMAT:
        raise ValueError(f"{path}: unsupported snapshot format {data.get('format')!r}")
    provenance = {
        name: ProviderProvenance(
            provider=name,
            source=p["source"],
            origin=p["origin"],
            commit=p.get("commit"),
            observed_at=datetime.fromisoformat(p["observed_at"]),
            rows=p.get("rows", 0),
            skipped=p.get("skipped", {}),
            billing=p.get("billing", ""),
            note=p.get("note", ""),
        )
        for name, p in data["providers"].items()
    }
    offers = decode(data["strings"], data["kinds"], data["offers"], data["providers"], provenance)
    observed = min((p.observed_at for p in provenance.values()), default=_EPOCH)
    return Snapshot(
        offers=offers,
        observed_at=observed,
        built_at=datetime.fromisoformat(data["built_at"]),
        provenance=provenance,
        path=path,
    )


_EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)


def _from_format_1(data: dict[str, Any]) -> dict[str, Any]:
    """A format 1 file (one array per offer), as format 2's tables."""
    writer = _Writer()
    writer.strings = list(data["strings"])
    for row in data["rows"]:
        writer.add(row)
    return {**data, "kinds": writer.kinds, "offers": writer.columns}


def decode(
    strings: Sequence[str],
    kinds: Sequence[Sequence[Any]],
    columns: Mapping[str, Sequence[int]],
    providers: Mapping[str, Mapping[str, Any]],
    provenance: Mapping[str, ProviderProvenance],
) -> OfferList:
    """The offers of a snapshot file's tables, indexed for search, built when looked at.

    The per-offer columns are used as parsed: nothing is done per offer until a
    search or a reader asks for it. Each kind's GPU is normalised once, and equal
    prices of one kind are built once and shared. Prices are filled in directly
    rather than through their validating constructors: the rows were validated
    when the file was built, and validation would be most of the cost of an offer.
    """
    from .offer_index import _Index, _Kinds
    from .offers import OfferList

    kind_col, region_col, zone_col, price_col = (columns[c] for c in OFFER_COLUMNS)
    gpus: dict[tuple[int, int, int, float | None], Gpu | None] = {}
    index_kinds = _Kinds()
    # Per kind, what all its offers share: the machine, and how it is billed.
    machines: list[tuple[str, str, Gpu | None, int, int | None, float | None]] = []
    billing: list[tuple[timedelta, timedelta, bool, datetime, str]] = []
    for p, it, g, n, vcpus, mem, gmem, spot, src in kinds:
        gkey = (p, it, g, gmem)
        gpu = gpus.get(gkey, _MISSING)
        if gpu is _MISSING:
            gpu = gpus[gkey] = _row_gpu(strings[p], strings[it], strings[g], gmem)
        provider = strings[p]
        rule = providers.get(provider, {})
        machines.append((provider, strings[it], gpu, n, vcpus, mem))
        billing.append((
            timedelta(seconds=rule.get("increment_s", 1)),
            timedelta(seconds=rule.get("minimum_s", 0)),
            bool(spot),
            provenance[provider].observed_at,
            "live" if src else "snapshot",
        ))
        index_kinds.add(provider, gpu, n, vcpus, mem, bool(spot), "USD")
    amounts = {at: Decimal(strings[at]) for at in set(price_col)}
    prices: dict[int, Price] = {}
    width = len(strings)

    def make(row: int) -> Offer:
        k = kind_col[row]
        at = price_col[row]
        provider, instance_type, gpu, n, vcpus, mem = machines[k]
        price = prices.get(k * width + at)
        if price is None:
            increment, minimum, spot, observed_at, source = billing[k]
            price = prices[k * width + at] = _price(
                amounts[at], n, increment, minimum, spot, observed_at, source
            )
        return Offer(
            provider=provider, instance_type=instance_type, gpu=gpu, gpu_count=n, price=price,
            vcpus=vcpus, memory_gb=mem, region=strings[region_col[row]] or None,
            zone=strings[zone_col[row]] or None, note=_note(provider, instance_type),
        )

    index = _Index(
        kind=kind_col,
        region=region_col,
        region_names=strings,
        amount=list(map(amounts.__getitem__, price_col)),
        kinds=index_kinds,
        make=make,
        shared=True,
    )
    return OfferList._of_index(index)


#: Some catalogs price accelerators alone (rows like ``H100:8``); the data file says which.
ACCELERATORS_ONLY = "accelerators only: the VM they attach to is billed on top"


def _note(provider: str, instance_type: str) -> str | None:
    if ":" in instance_type:
        return _sources()[1].get(provider)
    return None


def _price(
    amount: Decimal,
    gpu_count: int,
    increment: timedelta,
    minimum: timedelta,
    spot: bool,
    observed_at: datetime,
    source: str,
) -> Price:
    # Every field of Money and Price is set here; test_catalog checks the result
    # equals one built through the validating constructor. A bound object.__setattr__
    # is what attrs' own __init__ uses for frozen classes: the fastest way to fill one.
    money = _new(Money)
    put = _bind(money)
    put("amount", amount)
    put("currency", "USD")
    price = _new(Price)
    put = _bind(price)
    put("per_hour", money)
    put("gpu_count", gpu_count)
    put("billing_increment", increment)
    put("minimum_duration", minimum)
    put("spot", spot)
    put("storage_per_gb_month", None)
    put("egress_per_gb", None)
    put("observed_at", observed_at)
    put("source", source)
    return price


_MISSING: Any = object()
_new = object.__new__
_bind = object.__setattr__.__get__


def _row_gpu(
    provider: str, instance_type: str, raw: str, gpu_memory_gb: float | None
) -> Gpu | None:
    if not raw and not instance_type:
        return None
    # The machine type is the most specific name (Lambda's gpu_1x_a100 is PCIe,
    # gpu_8x_a100 SXM), so it wins over the bare accelerator name.
    found = (
        gpu_for_instance_type(instance_type, provider=provider, memory_gb=gpu_memory_gb)
        if instance_type
        else None
    )
    if found is not None and found[0].known:
        return attrs.evolve(found[0], raw=raw or instance_type)
    if not raw:
        return None
    return normalize_gpu(raw, provider=provider, memory_gb=gpu_memory_gb)


# --- writing -----------------------------------------------------------------------------------


class _Writer:
    """Accumulates offers as the file's tables: strings, distinct kinds, per-offer columns."""

    def __init__(self) -> None:
        self.strings: list[str] = []
        self._index: dict[str, int] = {}
        self.kinds: list[list[Any]] = []
        self._kind_of: dict[tuple[Any, ...], int] = {}
        self.columns: dict[str, list[int]] = {name: [] for name in OFFER_COLUMNS}
        self._seen: set[tuple[Any, ...]] = set()

    def s(self, value: str | None) -> int:
        value = value or ""
        found = self._index.get(value)
        if found is None:
            found = self._index[value] = len(self.strings)
            self.strings.append(value)
        return found

    def __len__(self) -> int:
        return len(self.columns["kind"])

    def add(self, row: Sequence[Any]) -> bool:
        """Add an offer (fields as in :data:`COLUMNS`) unless an identical one is there."""
        key = tuple(row)
        if key in self._seen:
            return False
        self._seen.add(key)
        p, it, g, n, vcpus, mem, gmem, region, zone, per_hour, spot, src = row
        kind = [p, it, g, n, vcpus, mem, gmem, spot, src]
        # Keyed by type too: 2048 and 2048.0 are equal but are not the same value to keep.
        kind_key = tuple((type(v), v) for v in kind)
        k = self._kind_of.get(kind_key)
        if k is None:
            k = self._kind_of[kind_key] = len(self.kinds)
            self.kinds.append(kind)
        for name, value in zip(OFFER_COLUMNS, (k, region, zone, per_hour), strict=True):
            self.columns[name].append(value)
        return True


def _write(path: Path, writer: _Writer, providers: Mapping[str, Any], built_at: datetime) -> Path:
    payload = {
        "format": FORMAT,
        "built_at": built_at.isoformat(),
        "currency": "USD",
        "unit": "per instance-hour",
        "providers": providers,
        "strings": writer.strings,
        "kind_columns": list(KIND_COLUMNS),
        "kinds": writer.kinds,
        "offer_columns": list(OFFER_COLUMNS),
        "offers": writer.columns,
    }
    text = json.dumps(payload, separators=(",", ":"), sort_keys=False)
    path.parent.mkdir(parents=True, exist_ok=True)
    # mtime=0 keeps a rebuild from unchanged inputs byte-identical (clean diffs).
    blob = gzip.compress(text.encode(), compresslevel=9, mtime=0)
    # Write then rename, so a reader never sees half a file.
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".snapshot-")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(blob)
        os.chmod(tmp, 0o644)  # mkstemp makes it private; a price list is not a secret
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path












def _plain(amount: Decimal) -> str:
    text = format(amount.normalize(), "f")
    return text


def _packaged_path() -> Path:
    return Path(__file__).parent / "data" / "snapshot.json.gz"


# --- refreshing --------------------------------------------------------------------------------


async def refresh(
    providers: Iterable[Provider],
    settings: Settings,
    *,
    timeout: float | None = None,
) -> Snapshot:
    """Rebuild the user's copy of the snapshot from live offers where possible.

    Each provider is asked for all its offers (``await provider.offers(OfferQuery())``)
    at the same time; a provider that fails or takes longer than ``timeout`` keeps
    its rows from the current snapshot. Providers not given keep theirs too.

    Args:
        providers: provider objects to ask (typically those with credentials here).
        settings: runctl settings; the copy goes to ``<home>/catalog/snapshot.json.gz``.
        timeout: seconds per provider (default ``settings.offer_timeout``).

    Returns:
        The new snapshot. Its provenance says, per provider, ``"live"`` or ``"snapshot"``.
    """
    import anyio

    from .models import OfferQuery

    current = load_snapshot(settings, warn=False)
    limit = settings.offer_timeout if timeout is None else timeout
    live: dict[str, Sequence[Offer]] = {}
    failed: dict[str, str] = {}
    declared: dict[str, BillingRule] = {}

    async def ask(provider: Provider) -> None:
        try:
            with clock.fail_after(limit):
                offers = list(await provider.offers(OfferQuery()))
            # Only market prices belong in the snapshot: a provider whose offers are all
            # fixed ("static", such as this machine at no cost) is not a price source.
            priced = [o for o in offers if o.price.source == "live"]
            if priced or not offers:
                live[provider.name] = priced
        except Exception as e:  # any failure means "use the snapshot for this one"
            failed[provider.name] = f"{type(e).__name__}: {e}"

    async with anyio.create_task_group() as tg:
        for provider in providers:
            rule = getattr(provider, "billing_rule", None)
            if isinstance(rule, BillingRule):
                declared[provider.name] = rule
            tg.start_soon(ask, provider)

    now = clock.now().replace(microsecond=0)
    writer = _Writer()
    meta: dict[str, Any] = {}
    by_provider: dict[str, list[Offer]] = {}
    for offer in current.offers:
        if offer.provider not in live:
            by_provider.setdefault(offer.provider, []).append(offer)
    for name, offers in live.items():
        by_provider[name] = list(offers)
    for name, offers in by_provider.items():
        is_live = name in live
        old = current.provenance.get(name)
        rule = declared.get(name) or BILLING_RULES.get(name, _DEFAULT_RULE)
        increment = offers[0].price.billing_increment if offers else rule.increment
        minimum = offers[0].price.minimum_duration if offers else rule.minimum
        kept = 0
        for offer in offers:
            if offer.price.currency != "USD":
                # The file holds one currency; never store a EUR price as dollars.
                continue
            gpu = offer.gpu
            raw = "" if gpu is None else (gpu.raw or gpu.name)
            kept += writer.add([
                writer.s(name), writer.s(offer.instance_type), writer.s(raw), offer.gpu_count,
                offer.vcpus, offer.memory_gb, None if gpu is None else gpu.memory_gb,
                writer.s(offer.region), writer.s(offer.zone),
                writer.s(_plain(offer.price.per_hour.amount)), int(offer.spot),
                int(is_live and offer.price.source == "live"),
            ])
        meta[name] = {
            "source": "live" if is_live else "snapshot",
            "origin": f"{name} API" if is_live else (old.origin if old else name),
            "commit": None if is_live or old is None else old.commit,
            "observed_at": (now if is_live or old is None else old.observed_at).isoformat(),
            "rows": kept,
            "skipped": {},
            "increment_s": increment.total_seconds(),
            "minimum_s": minimum.total_seconds(),
            "billing": rule.source,
            "note": failed.get(name, "") if not is_live else "",
        }
    target = snapshot_path(settings)
    try:
        path = _write(target, writer, meta, now)
    except OSError as e:
        raise ConfigurationError(
            f"cannot write the price snapshot to {target}: {e.strerror or e}; make the "
            "runctl home writable, or point RUNCTL_HOME at a writable directory"
        ) from e
    return _load_file(str(path), path.stat().st_mtime_ns)




if __name__ == "__main__":  # pragma: no cover - the builder, run as python -m runctl.catalog
    from .catalog_build import _main

    raise SystemExit(_main(sys.argv[1:]))
