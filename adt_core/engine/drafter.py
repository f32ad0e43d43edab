"""Runs an EAGLE draft head beside a target: its KV cache, RoPE positions and guided draft scores.

Sequence alignment (LANTERN): drafter position j pairs the target's hidden state f_j with token j+1. After
the target commits a path, `extend` feeds the committed hidden states with the next tokens; the drafter's
committed length then equals the target's, and its last output predicts the token after the root.
Tree expansion feeds draft nodes of level l (all at drafter position length-1+l) as scratch, with the same
tree-ancestry masking as the target; the next `extend` overwrites that scratch.
CFG: the drafter runs on the same (cond, uncond) rows as the target; its logits are guided and filtered
exactly like the target's before scoring (as LANTERN does), so trees follow the processed distribution.
"""
from typing import List, Optional

import torch

from ..models.draft_head import DraftHead
from .sampling import SamplingConfig, draft_top, guide


class Drafter:
    def __init__(self, head: DraftHead, target, sampling: SamplingConfig):
        self.head, self.target, self.sampling = head, target, sampling
        self.rope = target.draft_rope(head.config.head_dim)
        self.cache = None
        self.forwards = 0
        self.root_index = 0  # image index of the current root token

    def setup(self, rows: int, scratch: int) -> None:
        need = self.target.prefix_len + self.target.n_tokens + scratch
        if self.cache is None or self.cache.k[0].shape[0] != rows or self.cache.max_len < need:
            self.cache = None
            self.cache = self.head.new_cache(rows, need)
        self.cache.reset()
        self.forwards = 0

    def release(self) -> None:
        self.cache = None

    def _run(self, features, tokens: torch.Tensor, positions: torch.Tensor, mask):
        rows = features.shape[0]
        if tokens.shape[0] != rows:
            tokens = tokens.expand(rows, -1)
        self.forwards += 1
        return self.head(features, tokens, self.rope[positions], self.cache, mask,
                         self.target.draft_embed(tokens))

    def extend(self, features: torch.Tensor, next_tokens: List[int]) -> torch.Tensor:
        """Commit drafter positions for target hidden states [R, m, H] paired with the m next tokens.

        Returns the output at the last position [R, 1, H] (it predicts the token after the root)."""
        c = self.cache
        c.discard()
        m = len(next_tokens)
        tokens = torch.tensor([next_tokens], device=features.device)
        positions = torch.arange(c.length, c.length + m, device=features.device)
        out = self._run(features.to(self.head.fc.weight.dtype), tokens, positions,
                        c.mask(m, causal_new=True) if m > 1 else None)
        c.commit(m)
        self.root_index = c.length - self.target.prefix_len
        return out[:, -1:]

    def expand(self, features: torch.Tensor, tokens: torch.Tensor, scratch_mask: torch.Tensor,
               level: int) -> torch.Tensor:
        """Feed k draft nodes of tree level `level` (tokens [k], parent outputs [R, k, H]) as scratch."""
        c = self.cache
        k = tokens.shape[0]
        positions = torch.full((k,), c.length - 1 + level, device=features.device, dtype=torch.long)
        out = self._run(features, tokens[None], positions, c.mask(k, scratch_mask))
        c.advance(k)
        return out

    def top(self, out: torch.Tensor, level: int, k: int):
        """(log-probs, tokens), each [n, k]: the k best drafts after each of the n outputs [R, n, H], which
        predict tree level `level`, under the guided, filtered draft distribution."""
        logits = self.target.head(out)
        s = self.sampling
        if s.use_cfg:
            logits = guide(logits, s.cfg_scale, s.cfg_active(self.root_index + level))
        return draft_top(logits[0], s, k)

    def scratch_capacity(self) -> Optional[int]:
        return None if self.cache is None else self.cache.max_len - self.cache.length
