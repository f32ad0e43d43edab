"""Per-image generation statistics: what was generated, how many forwards it took, and where drafts held.

`accepted_length_grid` [rows, cols] stores, at the first cell of each run of tokens committed by one target
forward, the run's length (0 elsewhere), so the grid sums to the number of generated tokens. The heatmap
paints every cell of a run with that run's length.
"""
import time
from dataclasses import dataclass, field
from typing import Dict, List

import torch


@dataclass
class RoundTrace:
    pos: int            # image index of the round's root token (the last committed token)
    depth: int          # draft levels in the tree actually built
    width: int          # branching used to build it (0 for static trees)
    nodes: int          # draft nodes verified (excluding the root)
    accepted: int       # tokens committed by this target forward (accepted drafts + bonus)


@dataclass
class ImageStats:
    method: str
    rows: int
    cols: int
    settings: Dict = field(default_factory=dict)
    target_forwards: int = 0
    draft_forwards: int = 0
    tokens: int = 0
    rounds: List[RoundTrace] = field(default_factory=list)
    grid: List[int] = field(default_factory=list)
    wall_seconds: float = 0.0
    _t0: float = 0.0

    def __post_init__(self):
        self.grid = [0] * (self.rows * self.cols)

    def start(self) -> None:
        self._t0 = time.perf_counter()

    def committed(self, first_index: int, count: int) -> None:
        """One target forward committed `count` tokens starting at image index `first_index`."""
        self.target_forwards += 1
        self.grid[first_index] += count
        self.tokens += count

    def stop(self, device) -> None:
        if torch.device(device).type == "cuda":
            torch.cuda.synchronize(device)
        self.wall_seconds = time.perf_counter() - self._t0

    @property
    def mean_accepted_length(self) -> float:
        """Mean tokens committed per speculative round (τ+1, as LANTERN/EAGLE report); 1.0 for vanilla."""
        if not self.rounds:
            return 1.0
        return sum(r.accepted for r in self.rounds) / len(self.rounds)

    def grid_2d(self) -> List[List[int]]:
        return [self.grid[r * self.cols:(r + 1) * self.cols] for r in range(self.rows)]

    def to_dict(self) -> Dict:
        wall = max(self.wall_seconds, 1e-9)
        return {
            **self.settings,
            "method": self.method,
            "tokens": self.tokens,
            "target_forwards": self.target_forwards,
            "draft_forwards": self.draft_forwards,
            "rounds": len(self.rounds),
            "mean_accepted_length": round(self.mean_accepted_length, 4),
            "tokens_per_target_forward": round(self.tokens / max(self.target_forwards, 1), 4),
            "accepted_length_grid": self.grid_2d(),
            "wall_seconds": round(self.wall_seconds, 4),
            "tokens_per_second": round(self.tokens / wall, 2),
            "trace": [[r.pos, r.depth, r.width, r.nodes, r.accepted] for r in self.rounds],
            "trace_fields": ["pos", "depth", "width", "nodes", "accepted"],
        }
