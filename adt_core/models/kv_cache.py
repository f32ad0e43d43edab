"""Static KV cache with tree attention (gpt-fast style: preallocated, written in place).

Slots are storage positions, not RoPE positions. `length` slots are committed; a forward writes at `cursor`
(== length unless earlier scratch tokens of the same round are still needed, as in draft-tree expansion).
A verification forward writes its N tree tokens into scratch slots while each token's RoPE position is
`length + depth`; afterwards `keep()` moves the accepted path to [length, length+k) and commits it.
Scratch past `length` is never cleaned: the next forward simply overwrites it.
"""
from typing import List, Optional

import torch


class KVCache:
    def __init__(self, n_layers: int, rows: int, n_kv_heads: int, head_dim: int, max_len: int,
                 dtype: torch.dtype, device):
        # one buffer for every layer's keys and values, so compaction is a single gather and copy
        self.buf = torch.zeros((n_layers, 2, rows, n_kv_heads, max_len, head_dim), dtype=dtype, device=device)
        self.k = list(self.buf[:, 0].unbind(0))
        self.v = list(self.buf[:, 1].unbind(0))
        self.max_len = max_len
        self.length = 0
        self.cursor = 0
        # Optional [rows, P] bool: which of the first P (condition) keys each row may attend to.
        self.prefix_mask: Optional[torch.Tensor] = None

    def reset(self) -> None:
        self.length = self.cursor = 0
        self.prefix_mask = None

    def write(self, layer: int, k: torch.Tensor, v: torch.Tensor):
        """Store k, v [R, Hkv, n, D] at the cursor; return all keys/values up to and including them."""
        end = self.cursor + k.shape[2]
        if end > self.max_len:
            raise RuntimeError(f"KV cache overflow: need {end} slots, have {self.max_len}")
        self.k[layer][:, :, self.cursor:end] = k
        self.v[layer][:, :, self.cursor:end] = v
        return self.k[layer][:, :, :end], self.v[layer][:, :, :end]

    def mask(self, n: int, scratch_mask: Optional[torch.Tensor] = None, causal_new: bool = False):
        """Attention mask for n tokens about to be written at the cursor.

        Committed keys are always visible. Scratch keys (from `length` up to and including the new tokens)
        follow `scratch_mask` [n, cursor - length + n] (tree ancestry incl. self), or plain causality among
        the new tokens. Returns None when every key is visible (the fast SDPA path).
        """
        end = self.cursor + n
        if scratch_mask is None and not causal_new and self.prefix_mask is None:
            return None
        device = self.k[0].device
        m = torch.ones(n, end, dtype=torch.bool, device=device)
        if scratch_mask is not None:
            m[:, self.length:] = scratch_mask
        elif causal_new:
            m[:, self.cursor:] = torch.ones(n, n, dtype=torch.bool, device=device).tril()
        m = m[None, None]
        if self.prefix_mask is not None:
            p = min(self.prefix_mask.shape[1], end)
            m = m.expand(self.prefix_mask.shape[0], 1, n, end).clone()
            m[:, 0, :, :p] &= self.prefix_mask[:, None, :p]
            for i in range(n):  # a padded condition row still sees itself (upstream forces the diagonal)
                if self.cursor + i < p:
                    m[:, 0, i, self.cursor + i] = True
        return m

    def advance(self, n: int) -> None:
        """Keep the last n tokens as scratch for the rest of this round."""
        self.cursor += n

    def commit(self, n: int) -> None:
        """Commit the n tokens just written at `length` (plain decoding)."""
        self.length += n
        self.cursor = self.length

    def keep(self, slots: List[int]) -> None:
        """Commit the tokens at these scratch offsets (relative to `length`), in this order."""
        if slots != list(range(len(slots))):
            src = torch.tensor(slots, device=self.buf.device) + self.length
            self.buf[:, :, :, :, self.length:self.length + len(slots)] = self.buf.index_select(4, src)
        self.length += len(slots)
        self.cursor = self.length

    def discard(self) -> None:
        """Drop all scratch tokens."""
        self.cursor = self.length
