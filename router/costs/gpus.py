"""GPU catalogue for the article's formulas: dense BF16 tensor throughput and rent per GPU-hour.

Throughput is the *dense* BF16 tensor-core figure (FP32 accumulate) from each vendor datasheet.
NVIDIA's headline numbers for Hopper and Ada are "with sparsity" (2:4 structured sparsity), which
LLM inference and training do not use; the dense figure is half of it.

Rents are per GPU-hour list prices (no commitment unless said), each with the page it was read
from. They move every few months, so every entry can be overridden in ``config.yaml``::

    gpus:
      h100: {usd_per_hour: 2.10, note: "our reserved price"}   # override the rent only
      mi300x: {tflops: 1307.4, usd_per_hour: 3.50}             # a new GPU needs both

Names are case-insensitive.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from router.config import Config


@dataclass(frozen=True, slots=True)
class Gpu:
    """One accelerator: ``tflops`` dense BF16 (10^12 FLOP/s) and ``usd_per_hour`` rent."""

    name: str
    tflops: float
    usd_per_hour: float
    source: str

    @property
    def flops_per_s(self) -> float:
        return self.tflops * 1e12


BUILTIN_GPUS: dict[str, Gpu] = {
    # The article's constants, unchanged so that its figures come out: 312 TFLOP/s is the A100's
    # dense BF16/FP16 tensor figure (NVIDIA A100 datasheet; 624 with sparsity); $2.2659/hour is
    # the price the article read from Azure's Linux VM pricing page for an A100 on a 3-year term.
    "a100": Gpu(
        "a100",
        312.0,
        2.2659,
        "article: A100 datasheet 312 TFLOP/s dense BF16; Azure 3-year rent $2.2659/h",
    ),
    # NVIDIA H100 datasheet (SXM5): BF16 tensor 1,979 TFLOP/s with sparsity -> 989 dense.
    # Rent: RunPod Pods, H100 SXM on-demand (runpod.io/pricing, read 2026-10-07): $3.49/h.
    "h100": Gpu(
        "h100",
        989.0,
        3.49,
        "H100 SXM datasheet 1,979 sparse -> 989 TFLOP/s dense BF16; RunPod H100 SXM $3.49/h",
    ),
    # NVIDIA H200 datasheet (SXM): BF16 tensor 1,979 TFLOP/s with sparsity -> 989 dense (same
    # Hopper compute as H100, more and faster memory). Rent: RunPod Pods, H200 on-demand
    # (runpod.io/pricing, read 2026-10-07): $4.59/h.
    "h200": Gpu(
        "h200",
        989.0,
        4.59,
        "H200 SXM datasheet 1,979 sparse -> 989 TFLOP/s dense BF16; RunPod H200 $4.59/h",
    ),
    # NVIDIA L40S datasheet: BF16 tensor 362.05 TFLOP/s dense (733 with sparsity).
    # Rent: AWS EC2 g6e.xlarge (1x L40S, 4 vCPU), on-demand Linux, us-east-1: $1.861/h.
    "l40s": Gpu(
        "l40s",
        362.05,
        1.861,
        "L40S datasheet 362.05 TFLOP/s dense BF16; AWS g6e.xlarge on-demand us-east-1 $1.861/h",
    ),
    # NVIDIA L4 datasheet: BF16 tensor 242 TFLOP/s with sparsity -> 121 dense.
    # Rent: AWS EC2 g6.xlarge (1x L4, 4 vCPU), on-demand Linux, us-east-1: $0.8048/h.
    "l4": Gpu(
        "l4",
        121.0,
        0.8048,
        "L4 datasheet 242 sparse -> 121 TFLOP/s dense BF16; AWS g6.xlarge on-demand us-east-1 "
        "$0.8048/h",
    ),
    # NVIDIA A10 datasheet: BF16 tensor 125 TFLOP/s dense (250 with sparsity). AWS only offers
    # the A10G (a different part), so the rent is Lambda's 1x A10 on-demand instance
    # (lambda.ai/instances, read 2026-09-20): $1.29/h.
    "a10": Gpu(
        "a10",
        125.0,
        1.29,
        "A10 datasheet 125 TFLOP/s dense BF16; Lambda 1x A10 on-demand $1.29/h",
    ),
    # NVIDIA Ada Lovelace architecture whitepaper (GeForce RTX 4090): BF16 tensor with FP32
    # accumulate 165.2 TFLOP/s dense (330.3 with sparsity; the 330/660 figures need FP16
    # accumulate). No hyperscaler rents it; RunPod Secure Cloud on-demand: $0.69/h.
    "rtx4090": Gpu(
        "rtx4090",
        165.2,
        0.69,
        "Ada whitepaper RTX 4090 165.2 TFLOP/s dense BF16 (FP32 acc.); RunPod Secure Cloud $0.69/h",
    ),
}

#: Other spellings accepted on the command line and in config (normalised before lookup).
ALIASES: Mapping[str, str] = {
    "4090": "rtx4090",
    "rtx-4090": "rtx4090",
    "rtx_4090": "rtx4090",
    "h100-sxm": "h100",
    "h200-sxm": "h200",
    "a100-80gb": "a100",
}


def normalise_gpu_name(name: str) -> str:
    key = name.strip().lower()
    return ALIASES.get(key, key)


def gpu_catalogue(cfg: Config | None = None) -> dict[str, Gpu]:
    """The built-in GPUs with ``cfg.gpus`` applied on top (a field left out keeps the built-in)."""
    out = dict(BUILTIN_GPUS)
    if cfg is None:
        return out
    for raw_name, g in cfg.gpus.items():
        name = normalise_gpu_name(raw_name)
        base = out.get(name)
        tflops = g.tflops if g.tflops is not None else (base.tflops if base else None)
        rent = (
            g.usd_per_hour if g.usd_per_hour is not None else (base.usd_per_hour if base else None)
        )
        if tflops is None or rent is None:  # the config cross-check refuses this before we run
            raise ValueError(f"GPU {raw_name!r} needs tflops and usd_per_hour")
        note = g.note or (f"config (over {base.source})" if base else "config")
        out[name] = Gpu(name, tflops, rent, note)
    return out


def lookup_gpu(name: str, catalogue: Mapping[str, Gpu] | None = None) -> Gpu:
    """A GPU by (case-insensitive) name; ValueError listing the known names otherwise."""
    cat = BUILTIN_GPUS if catalogue is None else catalogue
    gpu = cat.get(normalise_gpu_name(name))
    if gpu is None:
        raise ValueError(f"unknown GPU {name!r} (known: {', '.join(sorted(cat))})")
    return gpu
