"""LlamaGen GPT (class-conditional; the caption path is added for t2i) in the official key layout.

Key names, fused `wqkv`, SwiGLU sizes, fp32 RMSNorm, interleaved 2D RoPE with zero condition rows, the
null class for CFG and `.float()` logits all follow FoundationVision/LlamaGen `autoregressive/models/gpt.py`
so official `.pt` files load with no missing or unexpected keys.

The forward is flat (gpt-fast style): the caller passes embeddings, RoPE positions, an optional KVCache and
a mask, and gets the final-normed hidden states back. Those hidden states are what EAGLE draft heads
consume, and `logits()` turns them into vocabulary scores.
"""
from dataclasses import asdict, dataclass, field
from typing import Optional

import torch
import torch.nn as nn
import torch.nn.functional as F

from .kv_cache import KVCache
from .layers import RMSNorm, attend, swiglu
from .rope import apply_rope, rope_table_2d


def find_multiple(n: int, k: int) -> int:
    return n if n % k == 0 else n + k - (n % k)


@dataclass
class GPTConfig:
    dim: int = 768
    n_layer: int = 12
    n_head: int = 12
    n_kv_head: Optional[int] = None
    ffn_hidden: Optional[int] = None      # None: LlamaGen's find_multiple(int(8*dim/3), multiple_of)
    multiple_of: int = 256
    rope_base: float = 10000.0
    norm_eps: float = 1e-5
    vocab_size: int = 16384
    num_classes: int = 1000
    class_dropout_prob: float = 0.1       # > 0 means the null class row exists
    model_type: str = "c2i"               # "c2i" | "t2i"
    cls_token_num: int = 1
    caption_dim: int = 2048
    grid_rows: int = 16
    grid_cols: int = 16
    extra: dict = field(default_factory=dict)  # free-form metadata carried with custom models

    def __post_init__(self):
        if self.n_kv_head is None:
            self.n_kv_head = self.n_head
        if self.ffn_hidden is None:
            self.ffn_hidden = find_multiple(int(2 * 4 * self.dim / 3), self.multiple_of)

    @property
    def head_dim(self) -> int:
        return self.dim // self.n_head

    @property
    def image_tokens(self) -> int:
        return self.grid_rows * self.grid_cols

    def to_dict(self) -> dict:
        return asdict(self)


class LabelEmbedder(nn.Module):
    def __init__(self, num_classes: int, dim: int, with_null: bool):
        super().__init__()
        self.embedding_table = nn.Embedding(num_classes + int(with_null), dim)

    def forward(self, labels: torch.Tensor) -> torch.Tensor:
        return self.embedding_table(labels).unsqueeze(1)


class CaptionEmbedder(nn.Module):
    """LlamaGen t2i: T5 features [B, 120, caption_dim] -> MLP -> [B, 120, dim]; learned null caption."""

    def __init__(self, caption_dim: int, dim: int, token_num: int):
        super().__init__()
        self.cap_proj = nn.Module()
        self.cap_proj.fc1 = nn.Linear(caption_dim, dim, bias=False)
        self.cap_proj.fc2 = nn.Linear(dim, dim, bias=False)
        self.register_buffer("uncond_embedding", torch.zeros(token_num, caption_dim))

    def forward(self, caption: torch.Tensor) -> torch.Tensor:
        return self.cap_proj.fc2(F.gelu(self.cap_proj.fc1(caption), approximate="tanh"))


class Attention(nn.Module):
    def __init__(self, c: GPTConfig):
        super().__init__()
        self.n_head, self.n_kv_head, self.head_dim = c.n_head, c.n_kv_head, c.head_dim
        self.wqkv = nn.Linear(c.dim, (c.n_head + 2 * c.n_kv_head) * c.head_dim, bias=False)
        self.wo = nn.Linear(c.dim, c.dim, bias=False)

    def forward(self, x, rope, layer: int, cache: Optional[KVCache], mask):
        b, n, _ = x.shape
        kv = self.n_kv_head * self.head_dim
        qk, v = self.wqkv(x).split([self.n_head * self.head_dim + kv, kv], dim=-1)
        qk = apply_rope(qk.reshape(b, n, self.n_head + self.n_kv_head, self.head_dim), rope).transpose(1, 2)
        q, k = qk.split([self.n_head, self.n_kv_head], dim=1)
        v = v.view(b, n, self.n_kv_head, self.head_dim).transpose(1, 2)
        if cache is not None:
            k, v = cache.write(layer, k, v)
        out = attend(q, k, v, mask)
        return self.wo(out.transpose(1, 2).reshape(b, n, -1))


class FeedForward(nn.Module):
    def __init__(self, c: GPTConfig):
        super().__init__()
        self.w1 = nn.Linear(c.dim, c.ffn_hidden, bias=False)
        self.w3 = nn.Linear(c.dim, c.ffn_hidden, bias=False)
        self.w2 = nn.Linear(c.ffn_hidden, c.dim, bias=False)

    def forward(self, x):
        return swiglu(x, self.w1, self.w3, self.w2)


class TransformerBlock(nn.Module):
    def __init__(self, c: GPTConfig):
        super().__init__()
        self.attention = Attention(c)
        self.feed_forward = FeedForward(c)
        self.attention_norm = RMSNorm(c.dim, c.norm_eps)
        self.ffn_norm = RMSNorm(c.dim, c.norm_eps)

    def forward(self, x, rope, layer, cache, mask):
        h = x + self.attention(self.attention_norm(x), rope, layer, cache, mask)
        return h + self.feed_forward(self.ffn_norm(h))


class GPT(nn.Module):
    def __init__(self, config: GPTConfig):
        super().__init__()
        c = self.config = config
        if c.model_type == "c2i":
            self.cls_embedding = LabelEmbedder(c.num_classes, c.dim, c.class_dropout_prob > 0)
        elif c.model_type == "t2i":
            self.cls_embedding = CaptionEmbedder(c.caption_dim, c.dim, c.cls_token_num)
        else:
            raise ValueError(f"unknown model_type {c.model_type!r} (expected 'c2i' or 't2i')")
        self.tok_embeddings = nn.Embedding(c.vocab_size, c.dim)
        self.layers = nn.ModuleList(TransformerBlock(c) for _ in range(c.n_layer))
        self.norm = RMSNorm(c.dim, c.norm_eps)
        self.output = nn.Linear(c.dim, c.vocab_size, bias=False)
        # Not a buffer (as upstream), so it is never part of the state dict.
        self.rope = rope_table_2d(c.grid_rows, c.grid_cols, c.head_dim, c.rope_base, prefix=c.cls_token_num)

    @property
    def null_class(self) -> int:
        return self.config.num_classes

    def _apply(self, fn, recurse=True):
        # keep the RoPE table on the module's device (fp32 always, as upstream computes rotations in fp32)
        super()._apply(fn, recurse)
        self.rope = self.rope.to(device=self.output.weight.device)
        return self

    def embed_condition(self, cond: torch.Tensor) -> torch.Tensor:
        """c2i: labels [R] -> [R, 1, dim]; t2i: caption features [R, T, caption_dim] -> [R, T, dim]."""
        return self.cls_embedding(cond)[:, : self.config.cls_token_num]

    def forward(self, x: torch.Tensor, positions: torch.Tensor, cache: Optional[KVCache] = None,
                mask=None) -> torch.Tensor:
        """x: input embeddings [R, n, dim]; positions: RoPE rows [n]. Returns final-normed hidden [R, n, dim].

        With a cache, keys/values are written at slot `cache.length` (the caller commits or keeps them).
        Without one, `mask="causal"` gives the training/uncached forward.
        """
        rope = self.rope[positions]
        for i, layer in enumerate(self.layers):
            x = layer(x, rope, i, cache, mask)
        return self.norm(x)

    def logits(self, hidden: torch.Tensor) -> torch.Tensor:
        return self.output(hidden).float()

    def new_cache(self, rows: int, max_len: int, dtype=None, device=None) -> KVCache:
        c = self.config
        w = self.output.weight
        return KVCache(c.n_layer, rows, c.n_kv_head, c.head_dim, find_multiple(max_len, 8),
                       dtype or w.dtype, device or w.device)

    def training_forward(self, cond: torch.Tensor, tokens: torch.Tensor) -> torch.Tensor:
        """Teacher-forced logits [B, N, V] predicting tokens[:, i] from cond and tokens[:, :i]."""
        c = self.config
        x = torch.cat([self.embed_condition(cond), self.tok_embeddings(tokens[:, :-1])], dim=1)
        positions = torch.arange(x.shape[1], device=x.device)
        hidden = self.forward(x, positions, None, "causal")
        return self.logits(hidden[:, c.cls_token_num - 1:])
