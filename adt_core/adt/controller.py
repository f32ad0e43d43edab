"""The ADT-Tree controller: each round's draft depth and width from the image's own neighbourhood.

Design (spec §6.3; the paper's exact rules are not public, this is our concrete version). Every committed
token is stamped with the (depth D, width K, acceptance α) of the round that committed it. A round whose
root sits at grid cell s = (y, x):
  1. initialises (D, K, α) from the left neighbour s-1 (the last token of the previous round); in column 0
     from the cell above; at the very first token from (D0, K0, β) — neutral;
  2. adapts by bisection towards the bounds: α >= β ("easy", positive) -> deeper and narrower,
     D = ceil((D + Dmax)/2), K = floor((K + Kmin)/2); α < β ("hard") -> shallower and wider,
     D = floor((D + Dmin)/2), K = ceil((K + Kmax)/2);
  3. clamps D to the tokens remaining, so no tree position lies past the image.
After verification, α = τ / D_eff (accepted drafts over the depth actually built) is stamped on cells
s .. s+τ. Flat regions thus saturate at deep, narrow trees; textured ones at shallow, wide ones.

Variants (for ablation): "bisect" (default, above); "step" (D±1, K∓2); "binary" (per-dimension search
interval, reset at row starts and when the status flips twice in a row); "length" (α = τ, threshold
β·D0 tokens); "window" (α = mean over the last `window` committed cells); "2d" (α also looks at the row
above the tokens the next tree will draft — beyond the paper); "none" (stateless: always D0, K0 = EAGLE-2).
"""
import math
from dataclasses import dataclass
from typing import List, Optional, Tuple

from ..errors import InputError

VARIANTS = ("bisect", "step", "binary", "length", "window", "2d", "none")


@dataclass
class ADTParams:
    depth_min: int = 2
    depth_max: int = 8
    width_min: int = 2
    width_max: int = 16
    beta: float = 0.5
    depth_init: int = 5
    width_init: int = 10
    variant: str = "bisect"
    window: int = 8
    step_width: int = 2

    def __post_init__(self):
        if self.variant not in VARIANTS:
            raise InputError(f"ADT-Tree variant {self.variant!r} is not one of {', '.join(VARIANTS)}")
        if not 1 <= self.depth_min <= self.depth_max or not 1 <= self.width_min <= self.width_max:
            raise InputError(f"ADT-Tree bounds must satisfy 1 <= min <= max (depth {self.depth_min}..."
                             f"{self.depth_max}, width {self.width_min}..{self.width_max})")
        if not 0.0 <= self.beta <= 1.0:
            raise InputError(f"ADT-Tree beta must be in [0, 1], got {self.beta}")
        self.depth_init = min(max(self.depth_init, self.depth_min), self.depth_max)
        self.width_init = min(max(self.width_init, self.width_min), self.width_max)


class ADTController:
    def __init__(self, params: ADTParams):
        self.p = params
        self.reset((1, 1))

    def reset(self, grid: Tuple[int, int]) -> None:
        self.rows, self.cols = grid
        n = self.rows * self.cols
        self.depth: List[Optional[int]] = [None] * n
        self.width: List[Optional[int]] = [None] * n
        self.alpha: List[float] = [0.0] * n
        self.accepted: List[int] = [0] * n       # τ of the stamping round ("length" variant)
        self.interval = {}                       # "binary": cell -> (dlo, dhi, klo, khi, last, flips)
        self.filled: List[int] = []              # stamped cells in order ("window" variant)

    # --- planning --------------------------------------------------------------------------------------
    def _source(self, s: int) -> Optional[int]:
        if s % self.cols > 0 and self.depth[s - 1] is not None:
            return s - 1
        if s >= self.cols and self.depth[s - self.cols] is not None:
            return s - self.cols
        return None

    def _alpha(self, s: int, src: int, depth: int) -> float:
        p = self.p
        if p.variant == "window":
            recent = self.filled[-p.window:]
            return sum(self.alpha[c] for c in recent) / len(recent)
        if p.variant == "2d":
            ahead = [c - self.cols for c in range(s + 1, min(s + 1 + depth, self.rows * self.cols))
                     if c - self.cols >= 0 and self.depth[c - self.cols] is not None]
            if ahead:
                up = sum(self.alpha[c] for c in ahead) / len(ahead)
                return 0.5 * (self.alpha[src] + up)
        return self.alpha[src]

    def _positive(self, s: int, src: int, depth: int) -> bool:
        p = self.p
        if p.variant == "length":
            return self.accepted[src] >= p.beta * p.depth_init
        return self._alpha(s, src, depth) >= p.beta

    def plan(self, s: int, remaining: int) -> Tuple[int, int]:
        """(depth, width) for the round whose root is cell s, with `remaining` tokens after it."""
        p = self.p
        src = None if p.variant == "none" else self._source(s)
        if src is None:
            d, k = p.depth_init, p.width_init
        else:
            d, k = self.depth[src], self.width[src]
            pos = self._positive(s, src, d)
            if p.variant == "step":
                d, k = (d + 1, k - p.step_width) if pos else (d - 1, k + p.step_width)
            elif p.variant == "binary":
                d, k = self._binary(s, src, d, k, pos)
            elif pos:
                d, k = math.ceil((d + p.depth_max) / 2), (k + p.width_min) // 2
            else:
                d, k = (d + p.depth_min) // 2, math.ceil((k + p.width_max) / 2)
        d = min(max(d, p.depth_min), p.depth_max)
        k = min(max(k, p.width_min), p.width_max)
        return max(min(d, remaining), 1), k

    def _binary(self, s: int, src: int, d: int, k: int, pos: bool) -> Tuple[int, int]:
        p = self.p
        iv = self.interval.get(src)
        if iv is None or s % self.cols == 0:
            iv = (p.depth_min, p.depth_max, p.width_min, p.width_max, pos, 0)
        dlo, dhi, klo, khi, last, flips = iv
        flips = flips + 1 if pos != last else 0
        if flips >= 2:
            dlo, dhi, klo, khi, flips = p.depth_min, p.depth_max, p.width_min, p.width_max, 0
        if pos:
            dlo, d = d, math.ceil((d + dhi) / 2)
            khi, k = k, (klo + k) // 2
        else:
            dhi, d = d, (dlo + d) // 2
            klo, k = k, math.ceil((k + khi) / 2)
        self._next_interval = (dlo, dhi, klo, khi, pos, flips)
        return d, k

    # --- learning ----------------------------------------------------------------------------------------
    def stamp(self, s: int, depth: int, width: int, accepted: int, depth_built: int) -> None:
        """After verification: cells s..s+accepted get this round's (depth, width, α = τ / D_eff)."""
        alpha = accepted / max(depth_built, 1)
        iv = getattr(self, "_next_interval", None)
        for c in range(s, min(s + accepted + 1, self.rows * self.cols)):
            self.depth[c], self.width[c], self.alpha[c], self.accepted[c] = depth, width, alpha, accepted
            self.filled.append(c)
            if iv is not None:
                self.interval[c] = iv
        self._next_interval = None
