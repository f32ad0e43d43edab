"""Draft trees: the structure verified in one target forward, and static tree shapes.

A tree is a list of nodes in topological order (node 0 is the root, i.e. the last committed token, whose
logits are verified too). Each node stores its token, parent and depth. The target attends with the
ancestor closure `mask` and RoPE positions `length + depth`.
"""
import heapq
from dataclasses import dataclass, field
from functools import cached_property
from typing import Dict, List, Sequence, Tuple

import numpy as np
import torch

from ..errors import InputError


@dataclass
class Tree:
    tokens: List[int]
    parents: List[int]
    depths: List[int] = field(default_factory=list)
    scores: List[float] = field(default_factory=list)  # draft path log-probs (dynamic trees; root 0)

    def __post_init__(self):
        if not self.depths:
            d = [0] * len(self.parents)
            for i, p in enumerate(self.parents):
                if i == 0:
                    if p != -1:
                        raise InputError("node 0 must be the root (parent -1)")
                elif not 0 <= p < i:
                    raise InputError(f"node {i}: parent {p} must precede it")
                else:
                    d[i] = d[p] + 1
            self.depths = d

    @property
    def size(self) -> int:
        return len(self.tokens)

    @property
    def max_depth(self) -> int:
        return max(self.depths)

    @cached_property
    def children(self) -> List[List[int]]:
        ch: List[List[int]] = [[] for _ in self.tokens]
        for i, p in enumerate(self.parents[1:], start=1):
            ch[p].append(i)
        return ch

    @cached_property
    def mask_np(self) -> np.ndarray:
        return ancestor_mask(self.parents)

    def mask(self, device) -> torch.Tensor:
        return torch.from_numpy(self.mask_np).to(device)


def ancestor_mask(parents: Sequence[int]) -> np.ndarray:
    """[n, n] bool: row i is True at i and at all its ancestors."""
    n = len(parents)
    m = np.eye(n, dtype=bool)
    for i in range(1, n):
        m[i] |= m[parents[i]]
    return m


# --- static tree shapes ------------------------------------------------------------------------------
def choices_from_spec(spec: str) -> List[Tuple[int, ...]]:
    """`auto-N`: the N paths with the highest prior acceptance (below); or a JSON list of rank paths."""
    if spec.startswith("auto-"):
        return auto_choices(int(spec[5:]))
    import json
    paths = [tuple(int(r) for r in p) for p in json.loads(spec)]
    if not paths or any(len(p) == 0 for p in paths):
        raise InputError(f"static tree {spec!r}: expected a non-empty list of non-empty rank paths")
    return paths


def auto_choices(n: int, rank_decay: float = 0.35, first: float = 0.55) -> List[Tuple[int, ...]]:
    """The n rank paths with the largest product of per-rank acceptance priors.

    Prior for the r-th ranked child: first * rank_decay**r (a rough fit to EAGLE's measured rank
    acceptance on LLMs). Products shrink along paths and across ranks, so the chosen set is closed under
    prefixes and lower sibling ranks: always a valid tree. Data-free and deterministic.
    """
    prior = lambda r: first * rank_decay ** r  # noqa: E731
    heap = [(-prior(0), (0,))]
    out: List[Tuple[int, ...]] = []
    while heap and len(out) < n:
        neg, path = heapq.heappop(heap)
        out.append(path)
        heapq.heappush(heap, (neg * prior(0), path + (0,)))                        # first child
        heapq.heappush(heap, (neg / prior(path[-1]) * prior(path[-1] + 1), path[:-1] + (path[-1] + 1,)))
    return out


@dataclass
class StaticShape:
    """A static tree (EAGLE-1 style) precomputed for drafting level by level.

    Node i > 0 is the `ranks[i]`-th best child of `parents[i]`. At each level, only nodes with children are
    fed to the draft head; `fed[l]` lists them and `topk[l]` is how many children their expansion needs.
    """
    parents: List[int]
    ranks: List[int]
    depths: List[int]
    fed: Dict[int, List[int]]
    topk: Dict[int, int]

    @classmethod
    def from_choices(cls, choices: Sequence[Sequence[int]], max_depth: int = 10 ** 9) -> "StaticShape":
        paths = sorted({tuple(p) for p in choices if len(p) <= max_depth}, key=lambda p: (len(p), p))
        index = {(): 0}
        parents, ranks, depths = [-1], [0], [0]
        for p in paths:
            if p[:-1] not in index:
                raise InputError(f"static tree path {list(p)} has no parent path {list(p[:-1])}")
            index[p] = len(parents)
            parents.append(index[p[:-1]])
            ranks.append(p[-1])
            depths.append(len(p))
        fed: Dict[int, List[int]] = {}
        topk: Dict[int, int] = {}
        for i in range(1, len(parents)):
            topk[depths[i]] = max(topk.get(depths[i], 0), ranks[i] + 1)
            par = parents[i]
            if par > 0 and par not in fed.setdefault(depths[par], []):
                fed[depths[par]].append(par)
        return cls(parents, ranks, depths, fed, topk)

    @property
    def size(self) -> int:
        return len(self.parents)

    @property
    def max_depth(self) -> int:
        return max(self.depths)
