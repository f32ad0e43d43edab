"""Cost-aware node budget: how many draft nodes to verify, from measured costs and draft confidence.

Verification cost grows with the number of tree tokens, slowly on a GPU and quickly on a CPU. Once per
(model, draft head, device, dtype, CFG rows) we time one target forward for a range of tree sizes and one
draft-head expansion for a range of widths, and cache both profiles (in memory and on disk). Each round,
after the drafter has scored its candidates, the budget is the n that maximises

    expected committed tokens / round time  =  (1 + sum_{i<=n} exp(score_i)) / (t_draft(D, K) + t_verify(n + 1))

where score_i are the candidates' cumulative draft log-probs in descending order (EAGLE-2's observation:
the draft's path probability approximates the chance that the node is accepted) and t_draft(D, K) is the
profiled cost of drafting a depth-D, width-K tree. Only profiled costs enter, never this round's clock, so
the same seed gives the same trees and tokens once the profiles exist.
"""
import hashlib
import json
import math
import os
import time
from bisect import bisect_left
from typing import Callable, Dict, List, Sequence

import torch

TREE_SIZES = (1, 2, 4, 6, 8, 12, 16, 24, 32, 48, 64)
DRAFT_WIDTHS = (1, 2, 4, 8, 16)
_MEMORY: Dict[str, "CostModel"] = {}


def cache_dir() -> str:
    return os.environ.get("ADT_TREE_CACHE", os.path.join(os.path.expanduser("~"), ".cache", "adt-tree"))


class CostModel:
    """Seconds as a piecewise-linear function of a size (tree tokens, or draft width)."""

    def __init__(self, sizes: Sequence[int], seconds: Sequence[float]):
        self.sizes, self.seconds = list(sizes), list(seconds)

    def __call__(self, n: int) -> float:
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


def _median_time(fn: Callable[[], None], device, repeats: int) -> float:
    times = []
    for _ in range(repeats + 1):  # the first call warms up and is dropped
        t0 = time.perf_counter()
        fn()
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        times.append(time.perf_counter() - t0)
    rest = sorted(times[1:])
    return rest[len(rest) // 2]


@torch.inference_mode()
def measure_verify(target, rows: int, repeats: int = 5) -> CostModel:
    """Time a tree forward (+ logits) at mid-image context for each tree size."""
    dev = target.device
    target.setup(rows, extra_slots=max(TREE_SIZES) + 1)
    target.prefill(target.condition_batch(target.placeholder_condition(), rows == 2))
    half = torch.zeros((1, target.n_tokens // 2), dtype=torch.long, device=dev)
    target.forward(half)
    target.commit(half.shape[1])
    out: List[float] = []
    for n in TREE_SIZES:
        toks = torch.zeros((1, n), dtype=torch.long, device=dev)
        flat = torch.zeros(n, dtype=torch.long, device=dev)  # a flat tree: cost depends on n, not shape
        eye = torch.eye(n, dtype=torch.bool, device=dev)
        out.append(_median_time(lambda: target.logits(target.forward(toks, flat, eye)), dev, repeats))
    target.release()
    return CostModel(TREE_SIZES, out)


@torch.inference_mode()
def measure_draft(drafter, rows: int, repeats: int = 5) -> CostModel:
    """Time one draft expansion (head forward + guided scores + top-k) for each width."""
    target, dev = drafter.target, drafter.target.device
    drafter.setup(rows, scratch=max(DRAFT_WIDTHS) + 1)
    hidden = drafter.head.config.hidden_size
    prefix = target.prefix_len + target.n_tokens // 2
    root = drafter.extend(torch.zeros(rows, prefix, hidden, device=dev), [0] * prefix)
    out: List[float] = []
    for k in DRAFT_WIDTHS:
        toks = torch.zeros(k, dtype=torch.long, device=dev)
        eye = torch.eye(k, dtype=torch.bool, device=dev)

        def step():
            drafter.cache.discard()
            drafter.log_probs(drafter.expand(root.expand(-1, k, -1), toks, eye, 1), 2).topk(k, dim=-1)
        out.append(_median_time(step, dev, repeats))
    drafter.release()
    return CostModel(DRAFT_WIDTHS, out)


def _key(parts: list) -> str:
    return hashlib.sha1(json.dumps(parts).encode()).hexdigest()[:16]


def _device_name(dev) -> str:
    return torch.cuda.get_device_name(dev) if dev.type == "cuda" else f"{dev.type}-{torch.get_num_threads()}t"


def cached_profile(kind: str, parts: list, measure: Callable[[], CostModel], use_disk: bool = True) -> CostModel:
    """A cost profile measured once per key; kept in memory and under the cache dir."""
    key = _key([kind] + parts + [torch.__version__])
    if key in _MEMORY:
        return _MEMORY[key]
    path = os.path.join(cache_dir(), "cost", f"{kind}-{key}.json")
    if use_disk and os.path.isfile(path):
        with open(path) as f:
            d = json.load(f)
        model = CostModel(d["sizes"], d["seconds"])
    else:
        model = measure()
        if use_disk:
            os.makedirs(os.path.dirname(path), exist_ok=True)
            with open(path, "w") as f:
                json.dump(model.to_dict(), f)
    _MEMORY[key] = model
    return model


def verify_profile(target, rows: int) -> CostModel:
    parts = target.cost_signature() + [str(target.dtype), rows, _device_name(target.device)]
    return cached_profile("verify", parts, lambda: measure_verify(target, rows))


def draft_profile(drafter, rows: int) -> CostModel:
    c = drafter.head.config
    parts = drafter.target.cost_signature() + [c.hidden_size, c.intermediate_size, c.num_hidden_layers,
                                               str(drafter.target.dtype), rows, _device_name(drafter.target.device)]
    return cached_profile("draft", parts, lambda: measure_draft(drafter, rows))


class AutoBudget:
    """Callable used by the tree builder: sorted candidate scores -> number of nodes to verify.

    `verify` is measured when the policy is built; `draft` is attached by the engine once a drafter exists
    (`profile_drafter`). Before that, drafting cost counts as zero."""

    def __init__(self, verify: CostModel, cap: int = 64):
        self.verify, self.cap = verify, cap
        self.draft = None
        self.sunk = 0.0

    def profile_drafter(self, drafter, rows: int) -> None:
        self.draft = draft_profile(drafter, rows)

    def start_round(self, depth: int, width: int) -> None:
        """Profiled cost of drafting this round's tree: the prefix pass plus depth-1 expansions."""
        self.sunk = 0.0 if self.draft is None else self.draft(1) + (depth - 1) * self.draft(width)

    def __call__(self, scores_desc: Sequence[float]) -> int:
        best_n, best_rate, expected = 1, -1.0, 1.0
        for n, s in enumerate(scores_desc[: self.cap], start=1):
            expected += math.exp(s)
            rate = expected / (self.sunk + self.verify(n + 1))
            if rate > best_rate:
                best_n, best_rate = n, rate
        return best_n
