"""Small shared training utilities: warmup + cosine learning rate, bf16 autocast choice, and a loss log."""
import json
import math
import time
from typing import Optional

import torch


def lr_at(step: int, total: int, peak: float, warmup: int) -> float:
    if step < warmup:
        return peak * (step + 1) / warmup
    t = (step - warmup) / max(total - warmup, 1)
    return peak * (0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * min(t, 1.0))))


def set_lr(optimizer, lr: float) -> None:
    for g in optimizer.param_groups:
        g["lr"] = lr


class LossLog:
    """Appends one JSON line per logged step (stage, step, losses, seconds) to a file, if given."""

    def __init__(self, path: Optional[str], stage: str):
        self.path, self.stage, self.t0 = path, stage, time.perf_counter()

    def __call__(self, step: int, **values) -> None:
        if self.path is None:
            return
        rec = {"stage": self.stage, "step": step, "seconds": round(time.perf_counter() - self.t0, 1)}
        rec.update({k: round(float(v), 5) for k, v in values.items()})
        with open(self.path, "a") as f:
            f.write(json.dumps(rec) + "\n")


def fast_bf16(device) -> bool:
    """Whether bf16 autocast speeds training up here: CUDA with bf16, or a CPU with bf16 dot-product
    instructions (AVX512-BF16 / AMX), where it halves the time of the matmuls. Elsewhere fp32 is kept,
    because emulated bf16 is slower."""
    device = torch.device(device)
    if device.type == "cuda":
        return torch.cuda.is_bf16_supported()
    if device.type != "cpu":
        return False
    try:
        with open("/proc/cpuinfo") as f:
            flags = f.read()
    except OSError:
        return False
    return " avx512_bf16" in flags or " amx_bf16" in flags
