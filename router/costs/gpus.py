"""GPU catalogue for the article's formulas (dense BF16/FP16 tensor throughput, rent per hour)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Gpu:
    name: str
    tflops: float
    usd_per_hour: float
    source: str


#: The article's constants: A100 at 312 TFLOP/s, Azure 3-year rent $2.2659/hour.
BUILTIN_GPUS: dict[str, Gpu] = {
    "a100": Gpu("a100", 312.0, 2.2659, "article: NVIDIA A100 datasheet 312 TFLOPS BF16; Azure 3y rent"),
    "l4": Gpu("l4", 121.0, 0.80, "NVIDIA L4 datasheet: 242 TFLOPS BF16 with sparsity, 121 dense"),
}
