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

from ..cache import cache_dir

TREE_SIZES = (1, 2, 4, 6, 8, 12, 16, 24, 32, 48, 64)
DRAFT_WIDTHS = (1, 2, 4, 8, 16)
_MEMORY: Dict[str, "CostModel"] = {}


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
            drafter.top(drafter.expand(root.expand(-1, k, -1), toks, eye, 1), 2, k)
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


class FixedBudget:
    """A constant node budget (EAGLE-2's total_tokens); never stops an expansion early."""

    def __init__(self, nodes: int):
        self.cap = nodes

    def start_round(self, width: int) -> None:
        pass

    def expanded(self, width: int) -> None:
        pass

    def worth_expanding(self, scores, depths, fed_scores, level: int, width: int) -> bool:
        return True

    def __call__(self, scores_desc: Sequence[float], depths: Sequence[int]) -> int:
        return self.cap

    def observe(self, tree, accepted: int) -> None:
        pass

    def describe(self):
        return self.cap


class AutoBudget:
    """Cost-aware: the node count that maximises expected tokens per second, and whether to draft deeper.

    A node's chance of acceptance is estimated from its draft path probability exp(score), calibrated per
    tree level by what verification actually accepted so far in this run: c_d = (accepted_d + c_{d-1}) /
    (predicted_d + 1), with c_0 = 1 (each level's prior is the level above, so a level never drafted yet
    inherits what was learned above it instead of being ruled out forever). When sampling, draft probabilities are roughly calibrated already (c ~ 1); greedy
    verification accepts any draft that is the target's argmax, far more often than its probability says,
    and c grows accordingly. `verify` is measured when the policy is built; `draft` is attached by the
    engine once a drafter exists (`profile_drafter`); before that, drafting counts as free. A round's
    drafting time is the profiled prefix pass plus one profiled expansion per level actually expanded."""

    def __init__(self, verify: CostModel, cap: int = 64, max_depth: int = 64):
        self.verify, self.cap = verify, cap
        self.draft = None
        self.sunk = 0.0
        self.accepted = [0.0] * (max_depth + 2)
        self.predicted = [0.0] * (max_depth + 2)

    def profile_drafter(self, drafter, rows: int) -> None:
        self.draft = draft_profile(drafter, rows)

    def _draft_cost(self, width: int) -> float:
        return 0.0 if self.draft is None else self.draft(width)

    def start_round(self, width: int) -> None:
        self.sunk = self._draft_cost(1)

    def expanded(self, width: int) -> None:
        self.sunk += self._draft_cost(width)

    def _calibration(self, depth: int) -> float:
        c = 1.0
        for d in range(1, min(depth, len(self.accepted) - 1) + 1):
            c = (self.accepted[d] + c) / (self.predicted[d] + 1.0)
        return c

    def _p(self, score: float, depth: int) -> float:
        """Estimated acceptance probability of a node at this level with this draft path log-prob."""
        return min(1.0, math.exp(score) * self._calibration(depth))

    def _best(self, scores_desc: Sequence[float], depths: Sequence[int]):
        """(n, expected tokens, rate) of the best prefix of the candidates."""
        best = (1, 1.0, -1.0)
        expected = 1.0
        for n, (s, d) in enumerate(zip(scores_desc[: self.cap], depths), start=1):
            expected += self._p(s, d)
            rate = expected / (self.sunk + self.verify(n + 1))
            if rate > best[2]:
                best = (n, expected, rate)
        return best

    def worth_expanding(self, scores: torch.Tensor, depths: torch.Tensor, fed_scores: torch.Tensor, level: int,
                        width: int) -> bool:
        """Expand one more level only if, even optimistically, it raises tokens per second: the new level's
        nodes carry at most the probability of the nodes fed to it (a child's path probability never
        exceeds its parent's), and cost one more draft pass plus their verification."""
        ranked, order = scores.sort(descending=True)
        finite = torch.isfinite(ranked)
        n, expected, rate = self._best(ranked[finite].tolist(), depths[order[finite]].tolist())
        gain = sum(self._p(s, level) for s in fed_scores.tolist())
        step = self._draft_cost(width)
        return (expected + gain) / (self.sunk + step + self.verify(n + 1 + width)) > rate

    def __call__(self, scores_desc: Sequence[float], depths: Sequence[int]) -> int:
        return self._best(scores_desc, depths)[0]

    def observe(self, tree, accepted: int) -> None:
        """Calibration: verified draft mass per level against the nodes actually accepted there."""
        for i in range(1, tree.size):
            d = min(tree.depths[i], len(self.predicted) - 1)
            self.predicted[d] += math.exp(tree.scores[i])
        for d in range(1, min(accepted, len(self.accepted) - 1) + 1):
            self.accepted[d] += 1.0

    def describe(self):
        return "auto"
