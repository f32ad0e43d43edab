"""LANTERN relaxed acceptance (arXiv 2410.03355) and LANTERN++'s relative budget (arXiv 2502.06352).

Visual AR models spread probability over many interchangeable tokens, so exact verification rejects drafts
that are "close enough". LANTERN lets a draft token x claim the probability of its nearest codebook
neighbours n_1, n_2, ... (closest first): with c_j = p(n_1) + ... + p(n_j), the largest prefix m with
c_m <= budget is aggregated, A(x) = {x, n_1..n_m}, and x is accepted as if it had probability p(A(x)).
Moving c_m of mass onto x changes the distribution by total variation c_m.

Stochastic rule (ours; sampling with deterministic drafts): siblings are tried in order; x is accepted with
probability min(1, p~(x) / Z) over the current residual of mass Z; on rejection A(x) is removed from the
residual (the m+1 aggregated tokens, not k+1). The absolute budget delta is *shared* by all siblings of one
step (each moves c_m, the remaining budget shrinks by it), so the committed token's distribution is within
TVD delta of the target's at every step — a bound the tests check. LANTERN++ (lambda > 1) instead caps each
candidate's extra mass at (lambda - 1) * p(x) (no global bound). `legacy` reproduces upstream exactly:
per-candidate delta on the renormalised residual and zeroing x's first k+1 neighbours on rejection.
Greedy rule (upstream): accept x when p~(x) >= every other token's probability under the guided softmax.

Neighbours are computed on the L2-normalised codebook rows that LlamaGen's quantiser uses (upstream used
raw rows), keeping only k_max columns, and cached on disk (the full 16384^2 table would be 0.5 GB).
"""
import hashlib
import os
from typing import List, Optional, Tuple

import torch
import torch.nn.functional as F

from ..cache import cache_dir
from ..errors import InputError
from .tree import Tree


@torch.no_grad()
def neighbour_table(codebook: torch.Tensor, k_max: int, chunk: int = 2048) -> torch.Tensor:
    """[V, d] codes (already as the quantiser sees them) -> [V, k_max] nearest other codes, closest first."""
    e = codebook.float()
    v = e.shape[0]
    k_max = min(k_max, v - 1)
    sq = (e * e).sum(1)
    out = []
    for i in range(0, v, chunk):
        d = sq[i:i + chunk, None] + sq[None] - 2 * e[i:i + chunk] @ e.t()
        d[torch.arange(d.shape[0]), torch.arange(i, i + d.shape[0])] = float("inf")
        out.append(d.topk(k_max, dim=1, largest=False).indices)
    return torch.cat(out)


def cached_neighbour_table(codebook: torch.Tensor, k_max: int) -> torch.Tensor:
    """neighbour_table, stored under the cache dir keyed by the codebook's bytes."""
    data = codebook.detach().float().cpu().contiguous()
    key = hashlib.sha1(data.numpy().tobytes()).hexdigest()[:16]
    path = os.path.join(cache_dir(), "neighbours", f"{key}_k{k_max}.pt")
    if os.path.isfile(path):
        return torch.load(path, weights_only=True).long()
    table = neighbour_table(data, k_max)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    small = table.to(torch.int16 if data.shape[0] <= 32767 else torch.int32)
    torch.save(small, path)
    return table


class Lantern:
    def __init__(self, neighbours: torch.Tensor, k: int, delta: float = 0.1, lam: float = 0.0,
                 legacy: bool = False):
        if k < 1:
            raise InputError("LANTERN needs k >= 1 neighbours")
        if delta < 0 or (lam and lam <= 1):
            raise InputError(f"LANTERN needs delta >= 0 and lambda > 1 when set (got {delta}, {lam})")
        self.k = min(k, neighbours.shape[1])
        self.table = neighbours[:, : self.k + (1 if legacy else 0)]
        self.delta, self.lam, self.legacy = delta, lam, legacy

    def _m(self, cum: List[float], budget: float) -> int:
        m = 0
        while m < len(cum) and cum[m] <= budget:
            m += 1
        return m

    # --- greedy -------------------------------------------------------------------------------------------
    def greedy_ok(self, tree: Tree, guided: torch.Tensor) -> List[bool]:
        """Per node: accepted under relaxed greedy verification against its parent's guided softmax."""
        if tree.size == 1:
            return [False]
        dev = guided.device
        probs = F.softmax(guided.float(), dim=-1)
        par = torch.tensor(tree.parents[1:], device=dev)
        tok = torch.tensor(tree.tokens[1:], device=dev)
        p = probs[par]                                            # [n-1, V]
        px = p.gather(1, tok[:, None]).squeeze(1)
        cum = p.gather(1, self.table[tok, : self.k]).cumsum(1)    # [n-1, k]
        budget = (self.lam - 1) * px if self.lam else torch.full_like(px, self.delta)
        m = (cum <= budget[:, None]).long().cumprod(1).sum(1)
        gained = torch.where(m > 0, cum.gather(1, (m - 1).clamp(min=0)[:, None]).squeeze(1), torch.zeros_like(px))
        top2 = p.topk(min(2, p.shape[1]), dim=1)
        best_other = torch.where(top2.indices[:, 0] == tok, top2.values[:, -1], top2.values[:, 0])
        ok = (px + gained >= best_other).tolist()
        return [False] + ok

    # --- stochastic -------------------------------------------------------------------------------------
    def try_children(self, p: torch.Tensor, tokens: List[int], u: List[float]) -> Tuple[Optional[int], torch.Tensor]:
        """Try sibling drafts in order against the distribution p (modified in place into the residual).
        Returns (index of the accepted sibling or None, residual)."""
        z = float(p.sum())
        budget = self.delta
        for j, x in enumerate(tokens):
            nb = self.table[x]
            vals = p[nb[: self.k]].tolist()
            px = float(p[x])
            cum, acc = [], 0.0
            for v in vals:
                acc += v
                cum.append(acc)
            if self.legacy:
                m = self._m([c / z for c in cum], self.delta if not self.lam else (self.lam - 1) * px / z)
            elif self.lam:
                m = self._m(cum, (self.lam - 1) * px)
            else:
                m = self._m(cum, budget)
            gained = cum[m - 1] if m else 0.0
            if u[j] * z < px + gained:
                return j, p
            if not self.lam and not self.legacy:
                budget -= gained
            p[x] = 0.0
            if self.legacy:
                if m:
                    p[nb] = 0.0
            elif m:
                p[nb[:m]] = 0.0
            z = float(p.sum())
            if z <= 0:
                break
        return None, p
