"""Cost-aware node budget: how many draft nodes to verify, from measured cost and draft confidence.

Verification cost grows with the number of tree tokens, slowly on a GPU and quickly on a CPU. We time one
target forward for a range of tree sizes once per (model, device, dtype, CFG rows) and cache the profile.
Each round, after the drafter has scored its candidates, the budget is the n that maximises

    expected committed tokens / round time  =  (1 + sum_{i<=n} exp(score_i)) / (t_draft + t_verify(n + 1))

where score_i are the candidates' cumulative draft log-probs in descending order (EAGLE-2's observation:
the draft's path probability approximates the chance that the node is accepted) and t_draft is the time
already spent drafting this round.
"""
import hashlib
import json
import os
import time
from bisect import bisect_left
from typing import List, Sequence

import torch

SIZES = (1, 2, 4, 6, 8, 12, 16, 24, 32, 48, 64)


def cache_dir() -> str:
    return os.environ.get("ADT_TREE_CACHE", os.path.join(os.path.expanduser("~"), ".cache", "adt-tree"))


class CostModel:
    def __init__(self, sizes: Sequence[int], seconds: Sequence[float]):
        self.sizes, self.seconds = list(sizes), list(seconds)

    def verify(self, n: int) -> float:
        """Seconds for one target forward over n tree tokens (linear interpolation, clamped)."""
        i = bisect_left(self.sizes, n)
        if i == 0:
            return self.seconds[0]
        if i >= len(self.sizes):
            a, b = self.sizes[-2], self.sizes[-1]
            return self.seconds[-1] + (n - b) * (self.seconds[-1] - self.seconds[-2]) / (b - a)
        a, b = self.sizes[i - 1], self.sizes[i]
        return self.seconds[i - 1] + (n - a) * (self.seconds[i] - self.seconds[i - 1]) / (b - a)

    def to_dict(self) -> dict:
        return {"sizes": self.sizes, "seconds": self.seconds}


def _key(target, rows: int) -> str:
    c = target.gpt.config
    dev = target.device
    name = torch.cuda.get_device_name(dev) if dev.type == "cuda" else f"{dev.type}-{torch.get_num_threads()}t"
    raw = json.dumps([c.dim, c.n_layer, c.n_head, c.vocab_size, c.image_tokens, str(target.dtype), rows, name,
                      torch.__version__])
    return hashlib.sha1(raw.encode()).hexdigest()[:16]


@torch.inference_mode()
def measure(target, rows: int, sizes: Sequence[int] = SIZES, repeats: int = 5) -> CostModel:
    """Time a tree forward at mid-image context for each size (median of `repeats`)."""
    target.setup(rows, extra_slots=max(sizes) + 1)
    dev = target.device
    target.prefill(target.condition_batch(torch.zeros(1, dtype=torch.long), rows == 2))
    half = torch.zeros((1, target.n_tokens // 2), dtype=torch.long, device=dev)
    target.forward(half)
    target.commit(half.shape[1])
    out: List[float] = []
    for n in sizes:
        toks = torch.zeros((1, n), dtype=torch.long, device=dev)
        depth = torch.zeros(n, dtype=torch.long, device=dev)  # a flat tree: cost depends on n, not shape
        mask = torch.eye(n, dtype=torch.bool, device=dev)
        times = []
        for _ in range(repeats + 1):
            t0 = time.perf_counter()
            target.logits(target.forward(toks, depth, mask))
            if dev.type == "cuda":
                torch.cuda.synchronize(dev)
            times.append(time.perf_counter() - t0)
        out.append(sorted(times[1:])[len(times[1:]) // 2])
    target.setup(rows, extra_slots=1)
    return CostModel(sizes, out)


def cost_model(target, rows: int, use_disk: bool = True) -> CostModel:
    """Measured once per (model, device, dtype, rows); cached in memory and on disk."""
    key = _key(target, rows)
    mem = getattr(target, "_cost_models", {})
    if key in mem:
        return mem[key]
    path = os.path.join(cache_dir(), "cost", key + ".json")
    model = None
    if use_disk and os.path.isfile(path):
        with open(path) as f:
            d = json.load(f)
        model = CostModel(d["sizes"], d["seconds"])
    if model is None:
        model = measure(target, rows)
        if use_disk:
            os.makedirs(os.path.dirname(path), exist_ok=True)
            with open(path, "w") as f:
                json.dump(model.to_dict(), f)
    mem[key] = model
    target._cost_models = mem
    return model


class AutoBudget:
    """Callable used by the tree builder: sorted candidate scores -> number of nodes to verify."""

    def __init__(self, cost: CostModel, cap: int = 64):
        self.cost, self.cap = cost, cap
        self.draft_started = time.perf_counter()

    def start_round(self) -> None:
        self.draft_started = time.perf_counter()

    def __call__(self, scores_desc: Sequence[float]) -> int:
        import math
        sunk = time.perf_counter() - self.draft_started
        best_n, best_rate, expected = 1, -1.0, 1.0
        for n, s in enumerate(scores_desc[: self.cap], start=1):
            expected += math.exp(s)
            rate = expected / (sunk + self.cost.verify(n + 1))
            if rate > best_rate:
                best_n, best_rate = n, rate
        return best_n
