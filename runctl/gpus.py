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

The table is read once, on first use, and lookups are cached, so providers can
normalise every row of a large price list cheaply.
"""

from __future__ import annotations

import functools
import json
import re
from collections.abc import Mapping
from importlib import resources
from typing import Any

import attrs

from .models import Gpu

__all__ = ["gpu_for_instance_type", "gpu_matches", "known_gpus", "normalize_gpu"]

#: Words that never tell two accelerators apart, dropped before comparing names.
_NOISE = frozenset({"nvidia", "tesla", "geforce", "amd", "instinct", "google", "aws", "intel"})
_SPLIT = re.compile(r"[^a-z0-9]+")
_UNKNOWN = "unknown"


def _tokens(name: str) -> list[str]:
    return [t for t in _SPLIT.split(name.lower()) if t and t not in _NOISE]


def _key(name: str) -> str:
    """The spelling-independent form of a name: lowercase, no separators, no vendor words."""
    return "".join(_tokens(name))


@attrs.frozen
class _Table:
    entries: Mapping[str, Mapping[str, Any]]
    gpus: Mapping[str, Gpu]
    aliases: Mapping[str, str]
    provider_aliases: Mapping[str, Mapping[str, str]]
    instance_types: Mapping[str, Mapping[str, tuple[str, int]]]
    patterns: Mapping[str, tuple[re.Pattern[str], ...]]


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
def _table() -> _Table:
    text = resources.files("runctl").joinpath("data/gpus.json").read_text("utf-8")
    data = json.loads(text)
    entries = {e["id"]: e for e in data["gpus"]}
    aliases: dict[str, str] = {}
    for gpu_id, entry in entries.items():
        for name in (gpu_id, *entry.get("aliases", ())):
            # The first entry to claim a spelling keeps it; the data file lists
            # specific names before families so that never hides a variant.
            aliases.setdefault(_key(name), gpu_id)
    provider_aliases = {
        provider: {_key(name): gpu_id for name, gpu_id in table.items()}
        for provider, table in data["provider_aliases"].items()
    }
    instance_types = {
        provider: {name.lower(): (gpu_id, int(count)) for name, (gpu_id, count) in table.items()}
        for provider, table in data["instance_types"].items()
    }
    patterns = {
        provider: tuple(re.compile(p, re.IGNORECASE) for p in found)
        for provider, found in data["instance_type_patterns"].items()
        if provider != "about"
    }
    for gpu_id in (
        *(g for t in provider_aliases.values() for g in t.values()),
        *(g for t in instance_types.values() for g, _ in t.values()),
        *(g for e in entries.values() for g in e.get("by_memory", {}).values()),
    ):
        if gpu_id not in entries:  # pragma: no cover - guards the data file itself
            raise RuntimeError(f"runctl/data/gpus.json refers to unknown GPU id {gpu_id!r}")
    return _Table(
        entries=entries,
        gpus={gpu_id: _gpu_from_entry(e) for gpu_id, e in entries.items()},
        aliases=aliases,
        provider_aliases=provider_aliases,
        instance_types=instance_types,
        patterns=patterns,
    )


def _by_name(name: str, provider: str | None) -> str | None:
    table = _table()
    key = _key(name)
    if not key:
        return None
    if provider is not None:
        found = table.provider_aliases.get(provider, {}).get(key)
        if found:
            return found
    return table.aliases.get(key)


def _by_instance_type(name: str, provider: str | None) -> tuple[str, int] | None:
    table = _table()
    lowered = name.strip().lower()
    providers = [provider] if provider is not None else list(table.instance_types)
    for p in providers:
        found = table.instance_types.get(p, {}).get(lowered)
        if found:
            return found
    # A provider's own patterns are too loose to try on other providers' names
    # (Paperspace's "H100" is a machine type), so without a provider only the
    # generic "8x H100" form is tried.
    pattern_sets = [table.patterns.get(provider, ())] if provider is not None else []
    pattern_sets.append(table.patterns.get("*", ()))
    for patterns in pattern_sets:
        for pattern in patterns:
            match = pattern.match(name.strip())
            if not match:
                continue
            gpu_id = _by_name(match["gpu"], provider)
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
def normalize_gpu(raw: str, *, provider: str | None = None, memory_gb: float | None = None) -> Gpu:
    """Map a provider's accelerator name to runctl's canonical :class:`~runctl.models.Gpu`.

    Accepts product names (``"NVIDIA H100 80GB HBM3"``), provider short names
    (``"H100-SXM"``, ``"A100-80GB"``), Kubernetes product labels
    (``"NVIDIA-H100-80GB-HBM3"``), GCP accelerator types (``"nvidia-h100-80gb"``)
    and instance types that imply the GPU (``"p5.48xlarge"``, ``"gpu_8x_h100_sxm5"``).

    Args:
        raw: the name as the provider spells it.
        provider: the provider's name; some names mean different GPUs at different
            providers (RunPod's ``"H100"`` is the PCIe card, AWS's is SXM).
        memory_gb: memory per device the provider reports, if any; picks the member
            of a family (``"A100"`` with 80 GB is the 80 GB A100).

    Returns:
        The canonical GPU, with ``raw`` set to the given name. Never raises for an
        unknown name: returns ``Gpu(model="unknown", raw=raw)`` instead.
    """
    if not isinstance(raw, str) or not raw.strip():
        return Gpu(model=_UNKNOWN, vendor=_UNKNOWN, memory_gb=memory_gb, raw=str(raw))
    gpu_id = _by_name(raw, provider)
    if gpu_id is None:
        found = _by_instance_type(raw, provider)
        gpu_id = found[0] if found else None
    if gpu_id is None:
        # Trailing words (", 80GB", " MIG 1g.10gb", " (Secure Cloud)") rarely change
        # the GPU; drop them one at a time before giving up.
        tokens = _tokens(raw)
        while gpu_id is None and len(tokens) > 1:
            tokens.pop()
            gpu_id = _by_name(" ".join(tokens), provider)
    return _make(gpu_id, raw, memory_gb)


@functools.lru_cache(maxsize=4096)
def gpu_for_instance_type(
    instance_type: str, *, provider: str | None = None, memory_gb: float | None = None
) -> tuple[Gpu, int] | None:
    """The accelerator and how many of them a provider's machine type carries.

    Knows AWS (``"p5.48xlarge"`` -> 8 x H100 SXM), GCP (``"a3-highgpu-8g"``, TPU
    slices such as ``"v5p-8"`` -> 4 chips), Azure (``"Standard_ND96isr_H100_v5"``),
    Lambda (``"gpu_8x_h100_sxm5"``), RunPod, Vast, Paperspace and DigitalOcean
    names, and the generic ``"8x H100"``.

    Args:
        instance_type: the provider's machine type.
        provider: the provider's name (without it every provider's table is tried).
        memory_gb: memory per device the provider reports, if any (as for
            :func:`normalize_gpu`).

    Returns:
        ``(gpu, count)``, or ``None`` when the machine type is not known to carry
        accelerators runctl recognises.
    """
    if not isinstance(instance_type, str) or not instance_type.strip():
        return None
    found = _by_instance_type(instance_type, provider)
    if found is None:
        return None
    gpu_id, count = found
    return _make(gpu_id, instance_type, memory_gb), count


def known_gpus() -> tuple[Gpu, ...]:
    """Every accelerator in runctl's table (families included), in table order."""
    return tuple(_table().gpus.values())


def _query_target(query: str) -> tuple[str, frozenset[str]] | None:
    gpu_id = _by_name(query, None)
    if gpu_id is None:
        return None
    gpu = _table().gpus[gpu_id]
    return gpu.model, frozenset(_tokens(gpu.variant or ""))


@functools.lru_cache(maxsize=1024)
def _matcher(query: str) -> tuple[str, frozenset[str]] | str:
    target = _query_target(query)
    return target if target is not None else _key(query)


@functools.lru_cache(maxsize=8192)
def gpu_matches(query: str, gpu: Gpu) -> bool:
    """Whether ``gpu`` is what a user asking for ``query`` means.

    A model matches all its variants (``"H100"`` matches H100 SXM, PCIe and NVL);
    a variant or memory size narrows it (``"A100-80GB"``, ``"H100 SXM"``). A name
    runctl does not know matches GPUs whose display name starts with it
    (``"RTX"``, ``"TPU"``).
    """
    target = _matcher(query)
    if isinstance(target, str):
        return bool(target) and (
            _key(gpu.name).startswith(target) or (gpu.raw is not None and _key(gpu.raw) == target)
        )
    model, wanted = target
    if gpu.model != model:
        return False
    have = set(_tokens(gpu.variant or ""))
    if gpu.memory_gb is not None:
        have.add(f"{round(gpu.memory_gb)}gb")
    return wanted <= have
