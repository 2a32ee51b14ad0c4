"""Canonical accelerators and the mapping from each provider's spelling to them.

Every provider names the same GPU differently: ``"NVIDIA H100 80GB HBM3"``
(nvidia-smi, RunPod), ``"H100 SXM"`` (Vast), ``"gpu_8x_h100_sxm5"`` (Lambda),
``"nvidia-h100-80gb"`` (GCP), ``"H100_NVLINK_80GB"`` (CoreWeave),
``"NVIDIA-H100-80GB-HBM3"`` (the Kubernetes ``nvidia.com/gpu.product`` label), or
only the machine: ``p5.48xlarge``, ``a3-highgpu-8g``, ``Standard_ND96isr_H100_v5``.
:func:`normalize_gpu` and :func:`gpu_for_instance_type` map all of them to one
:class:`~runctl.models.Gpu` with the vendor's figures (memory, dense BF16 and
FP32 TFLOPS) from ``runctl/data/gpus.json``, where each figure names its source.

A name runctl does not know never raises: it becomes ``Gpu(model="unknown",
raw=...)``, so an offer still shows, and says what it could not recognise.

A provider's own spellings (RunPod's bare ``"H100"`` is the PCIe card, Lambda's
``gpu_1x_a100`` the 40 GB PCIe one) live with the provider, as a
:class:`GpuSpellings` it passes to :func:`normalize_gpu`; the spellings of the
published catalogs the price snapshot was built from are data, in
``runctl/data/snapshot_sources.json``, used when ``provider=`` names one of them.

:func:`gpu_matches` is the one matcher every offer filter uses: exact on canonical
models (``"A10"`` never matches an A100, ``"H200"`` never a GH200, ``"L4"`` never an
L40S), narrowed by variant or memory; never by substring or prefix. A short name
that names one model only (``"4090"``, ``"A6000"``) is that model.

The table is read once, on first use, and lookups are cached, so providers can
normalise every row of a large price list cheaply.
"""

from __future__ import annotations

import functools
import json
import re
from collections.abc import Mapping, Sequence
from importlib import resources
from typing import Any

import attrs

from .models import Gpu

__all__ = [
    "GpuSpellings",
    "gpu_for_instance_type",
    "gpu_matches",
    "gpu_query_model",
    "known_gpus",
    "normalize_gpu",
]

#: Product-line words that never tell two accelerators apart, dropped before comparing
#: names (with the vendors of the table's entries, read from the data file).
_PRODUCT_WORDS = frozenset({"tesla", "geforce", "instinct"})
_SPLIT = re.compile(r"[^a-z0-9]+")
_UNKNOWN = "unknown"


@functools.cache
def _noise() -> frozenset[str]:
    vendors = {str(e.get("vendor", "nvidia")).lower() for e in _data()["gpus"]}
    return _PRODUCT_WORDS | vendors


def _tokens(name: str) -> list[str]:
    noise = _noise()
    return [t for t in _SPLIT.split(name.lower()) if t and t not in noise]


def _key(name: str) -> str:
    """The spelling-independent form of a name: lowercase, no separators, no vendor words."""
    return "".join(_tokens(name))


class GpuSpellings:
    """A provider's own names for GPUs and machine types, where runctl's table does not know them.

    Declared by a provider module (``gpu_spellings`` on its class) and passed to
    :func:`normalize_gpu` / :func:`gpu_for_instance_type`; they are tried before
    runctl's canonical names. Ids are those of ``runctl/data/gpus.json``
    (:func:`known_gpus` lists them as ``Gpu`` objects; ``"h100-pcie"`` ...).

    Args:
        aliases: a provider spelling -> the GPU id it means (``{"H100": "h100-pcie"}``).
        instance_types: a machine type -> ``(GPU id, count)``.
        patterns: regular expressions tried on machine types after ``instance_types``:
            group ``gpu`` is a name resolved with these aliases, group ``count`` the
            GPU count (``cores``: TensorCores, two per chip).

    Raises:
        ValueError: an id that is not in runctl's table (a mistake in the declaration).
    """

    def __init__(
        self,
        *,
        aliases: Mapping[str, str] | None = None,
        instance_types: Mapping[str, tuple[str, int]] | None = None,
        patterns: Sequence[str] = (),
    ) -> None:
        self.aliases = dict(aliases or {})
        self.instance_types = {k: (g, int(n)) for k, (g, n) in (instance_types or {}).items()}
        self.patterns = tuple(patterns)
        known = _table().entries
        for gpu_id in (*self.aliases.values(), *(g for g, _ in self.instance_types.values())):
            if gpu_id not in known:
                raise ValueError(f"GpuSpellings: {gpu_id!r} is not a GPU id of runctl's table")
        self._aliases = {_key(name): gpu_id for name, gpu_id in self.aliases.items()}
        self._types = {k.lower(): v for k, v in self.instance_types.items()}
        self._patterns = tuple(re.compile(p, re.IGNORECASE) for p in self.patterns)

    def normalize(self, raw: str, *, memory_gb: float | None = None) -> Gpu:
        """:func:`normalize_gpu` with these spellings."""
        return normalize_gpu(raw, memory_gb=memory_gb, spellings=self)

    def for_instance_type(
        self, instance_type: str, *, memory_gb: float | None = None
    ) -> tuple[Gpu, int] | None:
        """:func:`gpu_for_instance_type` with these spellings."""
        return gpu_for_instance_type(instance_type, memory_gb=memory_gb, spellings=self)

    def __repr__(self) -> str:
        return (
            f"<GpuSpellings {len(self.aliases)} aliases, {len(self.instance_types)} machine "
            f"types, {len(self.patterns)} patterns>"
        )


@attrs.frozen
class _Table:
    entries: Mapping[str, Mapping[str, Any]]
    gpus: Mapping[str, Gpu]
    aliases: Mapping[str, str]
    patterns: tuple[re.Pattern[str], ...]


def _gpu_from_entry(entry: Mapping[str, Any]) -> Gpu:
    def number(name: str) -> float | None:
        value = entry.get(name)
        return None if value is None else float(value)

    return Gpu(
        model=entry["model"],
        vendor=entry.get("vendor", "nvidia"),
        variant=entry.get("variant"),
        memory_gb=number("memory_gb"),
        bf16_tflops=number("bf16_tflops"),
        fp32_tflops=number("fp32_tflops"),
        kind=entry.get("kind", "gpu"),
    )


@functools.cache
def _data() -> Mapping[str, Any]:
    text = resources.files("runctl").joinpath("data/gpus.json").read_text("utf-8")
    data: Mapping[str, Any] = json.loads(text)
    return data


@functools.cache
def _table() -> _Table:
    data = _data()
    entries = {e["id"]: e for e in data["gpus"]}
    aliases: dict[str, str] = {}
    for gpu_id, entry in entries.items():
        for name in (gpu_id, *entry.get("aliases", ())):
            # The first entry to claim a spelling keeps it; the data file lists
            # specific names before families so that never hides a variant.
            aliases.setdefault(_key(name), gpu_id)
    for gpu_id in (g for e in entries.values() for g in e.get("by_memory", {}).values()):
        if gpu_id not in entries:  # pragma: no cover - guards the data file itself
            raise RuntimeError(f"runctl/data/gpus.json refers to unknown GPU id {gpu_id!r}")
    return _Table(
        entries=entries,
        gpus={gpu_id: _gpu_from_entry(e) for gpu_id, e in entries.items()},
        aliases=aliases,
        patterns=tuple(
            re.compile(p, re.IGNORECASE) for p in data["instance_type_patterns"]["*"]
        ),
    )


@functools.cache
def _source_spellings() -> Mapping[str, GpuSpellings]:
    """The spellings of the catalogs the price snapshot holds, by provider name (data)."""
    text = resources.files("runctl").joinpath("data/snapshot_sources.json").read_text("utf-8")
    found: dict[str, GpuSpellings] = {}
    for name, facts in json.loads(text)["providers"].items():
        table = facts.get("gpu_spellings")
        if table:
            found[name] = GpuSpellings(
                aliases=table.get("aliases"),
                instance_types={k: (g, n) for k, (g, n) in table.get("instance_types", {}).items()},
                patterns=table.get("patterns", ()),
            )
    return found


def _spellings(provider: str | None, spellings: GpuSpellings | None) -> GpuSpellings | None:
    if spellings is not None:
        return spellings
    return _source_spellings().get(provider) if provider is not None else None


def _by_name(name: str, spell: GpuSpellings | None) -> str | None:
    key = _key(name)
    if not key:
        return None
    if spell is not None:
        found = spell._aliases.get(key)
        if found:
            return found
    return _table().aliases.get(key)


def _by_instance_type(
    name: str, spell: GpuSpellings | None, *, any_source: bool = False
) -> tuple[str, int] | None:
    lowered = name.strip().lower()
    sources = [spell] if spell is not None else []
    if any_source and spell is None:
        sources = list(_source_spellings().values())
    for source in sources:
        found = source._types.get(lowered)
        if found:
            return found
    # A provider's own patterns are too loose to try on other providers' names
    # (Paperspace's "H100" is a machine type), so without a provider only the
    # generic "8x H100" form is tried.
    pattern_sets = [spell._patterns] if spell is not None else []
    pattern_sets.append(_table().patterns)
    for patterns in pattern_sets:
        for pattern in patterns:
            match = pattern.match(name.strip())
            if not match:
                continue
            gpu_id = _by_name(match["gpu"], spell)
            if gpu_id is None:
                continue
            groups = match.groupdict()
            if groups.get("count"):
                count = int(groups["count"])
            elif groups.get("cores"):
                # Cloud TPU v2-v4 and v5p slice names count TensorCores, two per chip.
                count = max(int(groups["cores"]) // 2, 1)
            else:
                count = 1
            return gpu_id, count
    return None


def _resolve(gpu_id: str, memory_gb: float | None) -> str:
    """Follow a family to the member whose memory matches what the provider reported."""
    table = _table()
    for _ in range(4):  # families nest at most a few levels (A100 -> A100 SXM -> 80GB SXM)
        by_memory = table.entries[gpu_id].get("by_memory")
        if not by_memory or memory_gb is None:
            break
        nxt = next(
            (member for size, member in by_memory.items()
             if abs(float(size) - memory_gb) <= 0.1 * float(size)),
            None,
        )
        if nxt is None:
            break
        gpu_id = nxt
    return gpu_id


def _make(gpu_id: str | None, raw: str, memory_gb: float | None) -> Gpu:
    if gpu_id is None:
        return Gpu(model=_UNKNOWN, vendor=_UNKNOWN, memory_gb=memory_gb, raw=raw)
    gpu = _table().gpus[_resolve(gpu_id, memory_gb)]
    if gpu.memory_gb is None and memory_gb is not None:
        # A family with several sizes: the provider's figure is the best we have.
        return attrs.evolve(gpu, memory_gb=float(round(memory_gb)), raw=raw)
    return attrs.evolve(gpu, raw=raw)


@functools.lru_cache(maxsize=8192)
def normalize_gpu(
    raw: str,
    *,
    provider: str | None = None,
    memory_gb: float | None = None,
    spellings: GpuSpellings | None = None,
) -> Gpu:
    """Map a provider's accelerator name to runctl's canonical :class:`~runctl.models.Gpu`.

    Accepts product names (``"NVIDIA H100 80GB HBM3"``), provider short names
    (``"H100-SXM"``, ``"A100-80GB"``), Kubernetes product labels
    (``"NVIDIA-H100-80GB-HBM3"``), GCP accelerator types (``"nvidia-h100-80gb"``)
    and instance types that imply the GPU (``"p5.48xlarge"``, ``"gpu_8x_h100_sxm5"``).

    Args:
        raw: the name as the provider spells it.
        provider: the name of a provider whose published catalog the price snapshot
            holds: its catalog's spellings are tried first (some names mean
            different GPUs at different providers: AWS's ``"H100"`` is SXM).
        memory_gb: memory per device the provider reports, if any; picks the member
            of a family (``"A100"`` with 80 GB is the 80 GB A100).
        spellings: a provider's own spellings, tried first (instead of ``provider``'s).

    Returns:
        The canonical GPU, with ``raw`` set to the given name. Never raises for an
        unknown name: returns ``Gpu(model="unknown", raw=raw)`` instead.
    """
    if not isinstance(raw, str) or not raw.strip():
        return Gpu(model=_UNKNOWN, vendor=_UNKNOWN, memory_gb=memory_gb, raw=str(raw))
    spell = _spellings(provider, spellings)
    gpu_id = _by_name(raw, spell)
    if gpu_id is None:
        found = _by_instance_type(raw, spell, any_source=provider is None)
        gpu_id = found[0] if found else None
    if gpu_id is None:
        # Trailing words (", 80GB", " MIG 1g.10gb", " (Secure Cloud)") rarely change
        # the GPU; drop them one at a time before giving up.
        tokens = _tokens(raw)
        while gpu_id is None and len(tokens) > 1:
            tokens.pop()
            gpu_id = _by_name(" ".join(tokens), spell)
    return _make(gpu_id, raw, memory_gb)


@functools.lru_cache(maxsize=4096)
def gpu_for_instance_type(
    instance_type: str,
    *,
    provider: str | None = None,
    memory_gb: float | None = None,
    spellings: GpuSpellings | None = None,
) -> tuple[Gpu, int] | None:
    """The accelerator and how many of them a provider's machine type carries.

    Knows AWS (``"p5.48xlarge"`` -> 8 x H100 SXM), GCP (``"a3-highgpu-8g"``, TPU
    slices such as ``"v5p-8"`` -> 4 chips), Azure (``"Standard_ND96isr_H100_v5"``),
    Lambda (``"gpu_8x_h100_sxm5"``), RunPod, Vast, Paperspace and DigitalOcean
    names, and the generic ``"8x H100"``.

    Args:
        instance_type: the provider's machine type.
        provider: the name of a provider the price snapshot holds (without it, and
            without ``spellings``, every snapshot catalog's machine types are tried).
        memory_gb: memory per device the provider reports, if any (as for
            :func:`normalize_gpu`).
        spellings: a provider's own spellings, tried first (instead of ``provider``'s).

    Returns:
        ``(gpu, count)``, or ``None`` when the machine type is not known to carry
        accelerators runctl recognises.
    """
    if not isinstance(instance_type, str) or not instance_type.strip():
        return None
    spell = _spellings(provider, spellings)
    found = _by_instance_type(instance_type, spell, any_source=provider is None)
    if found is None:
        return None
    gpu_id, count = found
    return _make(gpu_id, instance_type, memory_gb), count


def known_gpus() -> tuple[Gpu, ...]:
    """Every accelerator in runctl's table (families included), in table order."""
    return tuple(_table().gpus.values())


def _models() -> Mapping[str, str]:
    """Each canonical model's name key -> the id of its top entry (the family, if any)."""
    table = _table()
    models: dict[str, str] = {}
    for gpu_id, gpu in table.gpus.items():
        models.setdefault(_key(gpu.model), gpu_id)
    return models


@functools.cache
def _short_name(key: str) -> str | None:
    """The one model whose name ends with the words of ``key`` (``"4090"``), if just one."""
    found = set()
    for gpu in _table().gpus.values():
        words = _tokens(gpu.model)
        for start in range(1, len(words)):
            if "".join(words[start:]) == key:
                found.add(gpu.model)
    if len(found) != 1:
        return None
    return _models()[_key(found.pop())]


def _query_target(query: str) -> tuple[str, frozenset[str]] | None:
    gpu_id = _by_name(query, None)
    if gpu_id is None:
        gpu_id = _short_name(_key(query))
    if gpu_id is None:
        return None
    gpu = _table().gpus[gpu_id]
    return gpu.model, frozenset(_tokens(gpu.variant or ""))


@functools.lru_cache(maxsize=1024)
def _matcher(query: str) -> tuple[str, frozenset[str]] | str:
    target = _query_target(query)
    return target if target is not None else _key(query)


def gpu_query_model(query: str) -> str | None:
    """The canonical model a user asking for ``query`` means (``"4090"`` -> ``"RTX 4090"``).

    ``None`` for a name runctl does not know, or a short name shared by several
    models (``"6000"``).
    """
    target = _matcher(query)
    return None if isinstance(target, str) else target[0]


@functools.lru_cache(maxsize=8192)
def gpu_matches(query: str, gpu: Gpu) -> bool:
    """Whether ``gpu`` is what a user asking for ``query`` means. Exact, never by prefix.

    The query names a canonical model (any spelling: ``"h100"``, ``"NVIDIA H100"``,
    or a short name that names one model only: ``"4090"``, ``"A6000"``), and
    matches that model only: ``"A10"`` never matches an A100, ``"H200"`` never a
    GH200, ``"L4"`` never an L40S. It matches all the model's variants
    (``"H100"``: SXM, PCIe and NVL); a variant or memory size narrows it
    (``"A100-80GB"``, ``"H100 SXM"``). A name runctl does not know matches only a
    GPU spelled exactly so (one runctl could not recognise either).
    """
    target = _matcher(query)
    if isinstance(target, str):
        return bool(target) and (
            _key(gpu.name) == target or (gpu.raw is not None and _key(gpu.raw) == target)
        )
    model, wanted = target
    if gpu.model != model:
        return False
    have = set(_tokens(gpu.variant or ""))
    if gpu.memory_gb is not None:
        have.add(f"{round(gpu.memory_gb)}gb")
    return wanted <= have
