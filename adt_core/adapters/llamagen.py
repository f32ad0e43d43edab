"""LlamaGen (c2i, and t2i through the same GPT) as a speculative-decoding target."""
from typing import List, Optional

import torch

from ..errors import InputError
from ..models.gpt import GPT
from ..models.kv_cache import KVCache
from ..models.rope import rope_table_2d

DRAFT_ROPE_PAD = 32  # zero rows past the grid: scratch positions never index out of the table


class LlamaGenTarget:
    family = "llamagen"

    def __init__(self, gpt: GPT):
        self.gpt = gpt
        c = gpt.config
        self.vocab_size, self.hidden_size = c.vocab_size, c.dim
        self.grid = (c.grid_rows, c.grid_cols)
        self.n_tokens = c.grid_rows * c.grid_cols
        self.prefix_len = c.cls_token_num
        self.cache: Optional[KVCache] = None
        self.cfg_rows = 2

    @property
    def device(self):
        return self.gpt.output.weight.device

    @property
    def dtype(self):
        return self.gpt.output.weight.dtype

    # --- conditions ---------------------------------------------------------------------------------
    def validate_condition(self, cond) -> torch.Tensor:
        if self.gpt.config.model_type != "c2i":
            raise InputError("text-to-image models need a prompt encoding, not class labels")
        labels = torch.as_tensor(cond, dtype=torch.long).reshape(-1)
        n = self.gpt.config.num_classes
        bad = [int(x) for x in labels if not 0 <= int(x) < n]
        if bad:
            raise InputError(f"class label(s) {bad} out of range: this model has classes 0..{n - 1}")
        return labels

    def condition_batch(self, labels: torch.Tensor, use_cfg: bool) -> torch.Tensor:
        labels = labels.to(self.device)
        if not use_cfg:
            return labels
        return torch.cat([labels, torch.full_like(labels, self.gpt.null_class)])

    # --- cache lifecycle ----------------------------------------------------------------------------
    def setup(self, rows: int, extra_slots: int) -> None:
        need = self.prefix_len + self.n_tokens + extra_slots
        if self.cache is None or self.cache.k[0].shape[0] != rows or self.cache.max_len < need:
            self.cache = None  # free the old one first
            self.cache = self.gpt.new_cache(rows, need)
        self.cache.reset()

    def release(self) -> None:
        self.cache = None

    def prefill(self, cond_batch: torch.Tensor) -> torch.Tensor:
        """Run the condition prefix; returns final-normed hidden [R, T, H] (committed)."""
        x = self.gpt.embed_condition(cond_batch)
        t = x.shape[1]
        h = self.gpt(x, torch.arange(t, device=self.device), self.cache,
                     self.cache.mask(t, causal_new=True) if t > 1 else self.cache.mask(t))
        self.cache.commit(t)
        return h

    def forward(self, tokens: torch.Tensor, depths: Optional[torch.Tensor] = None,
                tree_mask: Optional[torch.Tensor] = None) -> torch.Tensor:
        """tokens [B, n] (one row per image; CFG rows are duplicated here) -> hidden [R, n, H] (scratch).

        Token i sits at RoPE position `length + depths[i]` (or `length + i` without depths).
        """
        n = tokens.shape[1]
        rows = self.cache.k[0].shape[0]
        if rows != tokens.shape[0]:
            tokens = tokens.repeat(rows // tokens.shape[0], 1)
        offs = depths if depths is not None else torch.arange(n, device=self.device)
        pos = self.cache.length + offs
        return self.gpt(self.gpt.tok_embeddings(tokens), pos, self.cache, self.cache.mask(n, tree_mask))

    def commit(self, n: int) -> None:
        self.cache.commit(n)

    def keep(self, slots: List[int]) -> None:
        self.cache.keep(slots)

    def logits(self, hidden: torch.Tensor) -> torch.Tensor:
        return self.gpt.logits(hidden)

    # --- what a draft head needs --------------------------------------------------------------------
    def head(self, hidden: torch.Tensor) -> torch.Tensor:
        """The target's output head, shared by EAGLE draft heads."""
        return self.gpt.logits(hidden)

    def draft_rope(self, head_dim: int) -> torch.Tensor:
        """Drafter position j pairs hidden f_j with token j+1, so it takes the RoPE of that token's cell:
        T-1 zero rows, then the grid (LANTERN's cls_token_num = 119 for t2i, 0 for c2i)."""
        c = self.gpt.config
        return rope_table_2d(c.grid_rows, c.grid_cols, head_dim, c.rope_base,
                             prefix=self.prefix_len - 1, pad=DRAFT_ROPE_PAD).to(self.device)

    def draft_prefix_tokens(self) -> List[int]:
        """Placeholder ids paired with the condition positions (LANTERN feeds id 0)."""
        return [0] * (self.prefix_len - 1)

    def draft_embed(self, tokens: torch.Tensor):
        return None  # the draft head's own embed_tokens is used


def teacher_features(target: LlamaGenTarget, cond_batch: torch.Tensor, tokens: torch.Tensor) -> torch.Tensor:
    """Final-normed hidden states [R, T+N, H] of a full teacher-forced pass (draft-head training data).

    `tokens` [R, N] are the image tokens per row (the same for the cond and uncond rows of one image).
    """
    gpt = target.gpt
    x = torch.cat([gpt.embed_condition(cond_batch), gpt.tok_embeddings(tokens)], dim=1)
    return gpt(x, torch.arange(x.shape[1], device=x.device), None, "causal")
