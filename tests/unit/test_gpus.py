"""normalize_gpu and gpu_for_instance_type: every provider's spelling maps to one canonical GPU."""

from __future__ import annotations

import json
from importlib import resources

import pytest

from runctl.gpus import gpu_for_instance_type, gpu_matches, known_gpus, normalize_gpu
from runctl.models import Gpu

# (raw name, provider, expected display name)
SPELLINGS = [
    # H100 SXM, as every provider spells it
    ("NVIDIA H100 80GB HBM3", "runpod", "H100 SXM"),
    ("H100 SXM", "vast", "H100 SXM"),
    ("H100-SXM", "runpod", "H100 SXM"),
    ("gpu_8x_h100_sxm5", "lambda", "H100 SXM"),
    ("nvidia-h100-80gb", "gcp", "H100 SXM"),
    ("nvidia-h100-mega-80gb", "gcp", "H100 SXM"),
    ("H100_NVLINK_80GB", "coreweave", "H100 SXM"),
    ("NVIDIA-H100-80GB-HBM3", "kubernetes", "H100 SXM"),
    ("p5.48xlarge", "aws", "H100 SXM"),
    ("a3-highgpu-8g", "gcp", "H100 SXM"),
    ("Standard_ND96isr_H100_v5", "azure", "H100 SXM"),
    ("H100", "aws", "H100 SXM"),
    # H100 PCIe and NVL
    ("NVIDIA H100 PCIe", "runpod", "H100 PCIe"),
    ("H100", "runpod", "H100 PCIe"),  # RunPod's bare "H100" is the PCIe card
    ("gpu_1x_h100_pcie", "lambda", "H100 PCIe"),
    ("NVIDIA H100 NVL", None, "H100 NVL"),
    ("H100-NVL", "runpod", "H100 NVL"),
    ("Standard_NC40ads_H100_v5", "azure", "H100 NVL"),
    # Other current accelerators
    ("NVIDIA B200", "runpod", "B200"),
    ("gpu_8x_b200_sxm6", "lambda", "B200"),
    ("p6-b200.48xlarge", "aws", "B200"),
    ("NVIDIA H200", "runpod", "H200 SXM"),
    ("p5en.48xlarge", "aws", "H200 SXM"),
    ("NVIDIA GH200 480GB", None, "GH200"),
    ("NVIDIA A100-SXM4-80GB", "runpod", "A100 80GB SXM"),
    ("NVIDIA A100 80GB PCIe", "runpod", "A100 80GB PCIe"),
    ("A100-80GB", "runpod", "A100 80GB PCIe"),
    ("A100-80GB-SXM", "runpod", "A100 80GB SXM"),
    ("nvidia-tesla-a100", "gcp", "A100 40GB SXM"),
    ("p4d.24xlarge", "aws", "A100 40GB SXM"),
    ("p4de.24xlarge", "aws", "A100 80GB SXM"),
    ("a2-ultragpu-8g", "gcp", "A100 80GB SXM"),
    ("NVIDIA-A100-PCIE-40GB", "kubernetes", "A100 40GB PCIe"),
    ("gpu_1x_a100", "lambda", "A100 40GB PCIe"),
    ("NVIDIA A10", None, "A10"),
    ("gpu_1x_a10", "lambda", "A10"),
    ("NVIDIA-A10G", "kubernetes", "A10G"),
    ("g5.xlarge", "aws", "A10G"),
    ("NVIDIA L4", None, "L4"),
    ("nvidia-l4", "gcp", "L4"),
    ("g2-standard-8", "gcp", "L4"),
    ("NVIDIA L40", None, "L40"),
    ("NVIDIA L40S", "runpod", "L40S"),
    ("g6e.xlarge", "aws", "L40S"),
    ("NVIDIA RTX 6000 Ada Generation", "runpod", "RTX 6000 Ada"),
    ("RTX_6000Ada", "vast", "RTX 6000 Ada"),
    ("NVIDIA RTX A6000", "runpod", "RTX A6000"),
    ("RTX_A6000", "vast", "RTX A6000"),
    ("gpu_1x_a6000", "lambda", "RTX A6000"),
    ("NVIDIA RTX A5000", None, "RTX A5000"),
    ("RTXA4000", "runpod", "RTX A4000"),
    ("NVIDIA GeForce RTX 4090", "runpod", "RTX 4090"),
    ("RTX_4090", "vast", "RTX 4090"),
    ("NVIDIA GeForce RTX 3090", None, "RTX 3090"),
    ("Tesla V100-SXM2-16GB", None, "V100 16GB SXM2"),
    ("nvidia-tesla-v100", "gcp", "V100 16GB SXM2"),
    ("p3.2xlarge", "aws", "V100 16GB SXM2"),
    ("p3dn.24xlarge", "aws", "V100 32GB SXM2"),
    ("Tesla T4", None, "T4"),
    ("nvidia-tesla-t4", "gcp", "T4"),
    ("g4dn.xlarge", "aws", "T4"),
    ("Standard_NC4as_T4_v3", "azure", "T4"),
    ("nvidia-tesla-p100", "gcp", "P100"),
    ("AMD Instinct MI300X OAM", "runpod", "MI300X"),
    ("Standard_ND96isr_MI300X_v5", "azure", "MI300X"),
    ("tpu-v5litepod-8", "gcp", "TPU v5e"),
    ("ct5lp-hightpu-4t", "gcp", "TPU v5e"),
    ("tpu-v5p-8", "gcp", "TPU v5p"),
    ("v6e-8", "gcp", "TPU v6e"),
    ("trn1.32xlarge", "aws", "Trainium"),
]


@pytest.mark.parametrize(("raw", "provider", "expected"), SPELLINGS)
def test_each_provider_spelling_maps_to_the_canonical_gpu(
    raw: str, provider: str | None, expected: str
) -> None:
    gpu = normalize_gpu(raw, provider=provider)
    assert gpu.name == expected
    assert gpu.raw == raw


def test_the_same_gpu_spelled_differently_is_equal() -> None:
    spellings = ["NVIDIA H100 80GB HBM3", "H100 SXM", "NVIDIA-H100-80GB-HBM3", "nvidia-h100-80gb"]
    gpus = {normalize_gpu(s) for s in spellings}
    assert len(gpus) == 1
    (gpu,) = gpus
    assert (gpu.memory_gb, gpu.bf16_tflops, gpu.fp32_tflops) == (80.0, 989.5, 67.0)


@pytest.mark.parametrize("raw", ["", "   ", "Quantum Flux 9000", "gpu_8x_zz99", "xyz.48xlarge"])
def test_an_unknown_name_never_raises_and_says_what_it_was(raw: str) -> None:
    gpu = normalize_gpu(raw, provider="aws")
    assert gpu.model == "unknown"
    assert not gpu.known
    assert gpu.raw == raw
    assert gpu.bf16_tflops is None


def test_unknown_gpu_keeps_the_memory_the_provider_reported() -> None:
    gpu = normalize_gpu("Quantum Flux 9000", memory_gb=64)
    assert gpu.memory_gb == 64
    assert "Quantum Flux 9000" in gpu.name


@pytest.mark.parametrize(
    ("raw", "memory_gb", "expected"),
    [
        ("A100", 80, "A100 80GB"),
        ("A100", 40, "A100 40GB"),
        ("A100 SXM4", 80, "A100 80GB SXM"),
        ("A100_PCIE", 40, "A100 40GB PCIe"),
        ("H100", 94, "H100 NVL"),
        ("RTX 6000", 48, "RTX 6000 Ada"),
        ("V100", 32, "V100 32GB"),
    ],
)
def test_reported_memory_picks_the_member_of_a_family(
    raw: str, memory_gb: float, expected: str
) -> None:
    assert normalize_gpu(raw, memory_gb=memory_gb).name == expected


def test_a_bare_family_name_without_memory_stays_a_family_with_no_guessed_figures() -> None:
    gpu = normalize_gpu("H100")
    assert (gpu.model, gpu.variant) == ("H100", None)
    # SXM and PCIe differ by 30 %: runctl will not pick one for you.
    assert gpu.bf16_tflops is None


@pytest.mark.parametrize(
    ("instance_type", "provider", "expected", "count"),
    [
        ("p5.48xlarge", "aws", "H100 SXM", 8),
        ("p4d.24xlarge", "aws", "A100 40GB SXM", 8),
        ("g5.48xlarge", "aws", "A10G", 8),
        ("g6.xlarge", "aws", "L4", 1),
        ("a3-highgpu-8g", "gcp", "H100 SXM", 8),
        ("a2-highgpu-1g", "gcp", "A100 40GB SXM", 1),
        ("g2-standard-96", "gcp", "L4", 8),
        ("tpu-v5p-8", "gcp", "TPU v5p", 4),  # v5p names count TensorCores, two per chip
        ("tpu-v5litepod-16", "gcp", "TPU v5e", 16),
        ("Standard_ND96isr_H100_v5", "azure", "H100 SXM", 8),
        ("Standard_NC24ads_A100_v4", "azure", "A100 80GB PCIe", 1),
        ("gpu_8x_h100_sxm5", "lambda", "H100 SXM", 8),
        ("gpu_2x_a6000", "lambda", "RTX A6000", 2),
        ("8x_H100-SXM_SECURE", "runpod", "H100 SXM", 8),
        ("4x-RTX_4090-32-65536", "vast", "RTX 4090", 4),
        ("A100-80Gx8", "paperspace", "A100 80GB", 8),
        ("gpu-h100x8-640gb", "do", "H100", 8),
        ("8x H100 SXM", None, "H100 SXM", 8),
    ],
)
def test_instance_type_gives_gpu_and_count(
    instance_type: str, provider: str | None, expected: str, count: int
) -> None:
    found = gpu_for_instance_type(instance_type, provider=provider)
    assert found is not None
    gpu, n = found
    assert (gpu.name, n) == (expected, count)


@pytest.mark.parametrize("instance_type", ["m5.large", "c3-standard-4", "", "NVIDIA H100 80GB HBM3"])
def test_machine_types_without_a_known_accelerator_give_none(instance_type: str) -> None:
    assert gpu_for_instance_type(instance_type, provider="aws") is None


@pytest.mark.parametrize(
    ("query", "raw", "matches"),
    [
        ("H100", "H100 SXM", True),
        ("H100", "H100 PCIe", True),
        ("H100", "H100 NVL", True),
        ("H100", "GH200", False),
        ("h100 sxm", "NVIDIA H100 80GB HBM3", True),
        ("H100 SXM", "H100 PCIe", False),
        ("A100-80GB", "NVIDIA A100-SXM4-80GB", True),
        ("A100-80GB", "NVIDIA A100 80GB PCIe", True),
        ("A100-80GB", "nvidia-tesla-a100", False),
        ("A100", "nvidia-tesla-a100", True),
        ("L40", "L40S", False),
        ("L40S", "L40S", True),
        # Exact on canonical models: never by substring or prefix (issue 9: "A10"
        # launched an A100, "H200" a GH200, "L4" an L40S).
        ("A10", "NVIDIA A100 80GB PCIe", False),
        ("A10", "A10", True),
        ("A10", "A10G", False),
        ("H200", "GH200", False),
        ("H200", "NVIDIA H200", True),
        ("L4", "L40S", False),
        ("L4", "L40", False),
        ("L4", "NVIDIA L4", True),
        ("TPU", "tpu-v5p", False),
        ("RTX", "RTX 4090", False),
        # Short names that name one model only are that model.
        ("4090", "NVIDIA GeForce RTX 4090", True),
        ("A6000", "NVIDIA RTX A6000", True),
        ("5090", "RTX 5090", True),
        ("4090", "RTX 4070", False),
        ("6000", "RTX 6000 Ada", False),  # three models end in "6000": ambiguous
    ],
)
def test_query_names_match_models_and_families(query: str, raw: str, matches: bool) -> None:
    assert gpu_matches(query, normalize_gpu(raw)) is matches


def test_every_required_accelerator_is_in_the_table_with_memory() -> None:
    names = {g.name for g in known_gpus()}
    required = {
        "B200", "H200 SXM", "H100 SXM", "H100 PCIe", "H100 NVL", "GH200", "A100 40GB SXM",
        "A100 80GB SXM", "A100 40GB PCIe", "A100 80GB PCIe", "A10", "A10G", "L4", "L40",
        "L40S", "RTX 6000 Ada", "RTX A6000", "RTX A5000", "RTX A4000", "RTX 4090",
        "RTX 3090", "V100 16GB SXM2", "T4", "P100", "MI300X", "TPU v5e", "TPU v5p", "TPU v6e",
    }
    assert required <= names
    for gpu in known_gpus():
        if gpu.name in required:
            assert gpu.memory_gb, gpu.name
    tpus = [g for g in known_gpus() if g.model.startswith("TPU")]
    assert tpus
    assert all(g.kind == "tpu" and g.vendor == "google" for g in tpus)


def test_every_figure_in_the_data_file_names_a_known_source() -> None:
    data = json.loads(resources.files("runctl").joinpath("data/gpus.json").read_text())
    for entry in data["gpus"]:
        assert entry["source"] in data["sources"], entry["id"]


def test_dense_not_sparse_figures_are_used() -> None:
    # The H100 SXM datasheet prints 1,979 BF16 TFLOPS "with sparsity"; dense is half.
    assert normalize_gpu("H100 SXM").bf16_tflops == pytest.approx(1979 / 2)
    assert normalize_gpu("L4").bf16_tflops == pytest.approx(242 / 2)
    assert normalize_gpu("A100 80GB SXM").bf16_tflops == 312


def test_normalisation_is_cached_and_fast() -> None:
    import time

    names = [raw for raw, _, _ in SPELLINGS]
    for raw in names:
        normalize_gpu(raw)
    start = time.perf_counter()
    for _ in range(100):
        for raw in names:
            normalize_gpu(raw)
    per_call = (time.perf_counter() - start) / (100 * len(names))
    assert per_call < 20e-6


def test_gpu_round_trips_through_json() -> None:
    from runctl._convert import from_json, to_json

    gpu = normalize_gpu("NVIDIA H100 80GB HBM3")
    back = from_json(to_json(gpu), Gpu)
    assert back == gpu
    assert back.raw == gpu.raw


def test_a_query_names_its_canonical_model():
    from runctl.gpus import gpu_query_model

    assert gpu_query_model("4090") == "RTX 4090"
    assert gpu_query_model("a6000") == "RTX A6000"
    assert gpu_query_model("nvidia h100") == "H100"
    assert gpu_query_model("6000") is None
    assert gpu_query_model("NOTAGPU") is None


def test_a_provider_s_own_spellings_are_tried_first():
    from runctl.gpus import GpuSpellings

    mine = GpuSpellings(aliases={"H100": "h100-pcie"}, instance_types={"big-8": ("h100-sxm", 8)},
                        patterns=[r"^(?P<gpu>[a-z0-9]+)-x(?P<count>\d+)$"])
    assert mine.normalize("H100").name == "H100 PCIe"
    assert normalize_gpu("H100").name == "H100"  # the family, without the provider's word
    assert mine.for_instance_type("big-8") is not None
    gpu, count = mine.for_instance_type("big-8")
    assert (gpu.name, count) == ("H100 SXM", 8)
    gpu, count = mine.for_instance_type("l40s-x4")
    assert (gpu.name, count) == ("L40S", 4)


def test_spellings_refuse_an_id_runctl_does_not_know():
    from runctl.gpus import GpuSpellings

    with pytest.raises(ValueError, match="h100-pcei"):
        GpuSpellings(aliases={"H100": "h100-pcei"})
