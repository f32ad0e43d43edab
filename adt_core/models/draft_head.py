"""EAGLE-1/2 draft head in the layout LANTERN publishes for LlamaGen (`cnets_llamagen.py`).

Files: `config.json` + `pytorch_model.bin` or `model.safetensors` with keys `embed_tokens.weight`,
`fc.weight`/`fc.bias`, `layers.0.self_attn.{q,k,v,o}_proj.weight`, `layers.0.mlp.{gate,up,down}_proj.weight`,
`layers.0.post_attention_layernorm.weight`. Layer 0 has no input norm and there is no final norm: the output
feature goes straight into the *target's* output head. The head's own `embed_tokens` is always used (for the
published LlamaGen heads it is a copy of the target's output matrix, not its input embedding).

Forward at drafter position j: h = fc(cat(embed(token_{j+1}), f_j)), where f_j is the target's final-normed
hidden state at sequence position j. RoPE rows are chosen by the caller (see engine/drafter.py).
"""
from dataclasses import asdict, dataclass, field
from typing import Optional

import torch
import torch.nn as nn

from .kv_cache import KVCache
from .layers import RMSNorm, attend, swiglu
from .rope import apply_rope


@dataclass
class DraftConfig:
    hidden_size: int
    intermediate_size: int
    num_attention_heads: int
    vocab_size: int
    num_key_value_heads: Optional[int] = None
    num_hidden_layers: int = 1
    rms_norm_eps: float = 1e-6
    bias: bool = True
    qkv_bias: bool = False
    hidden_act: str = "silu"
    input_type: str = "c2i"
    extra: dict = field(default_factory=dict)

    def __post_init__(self):
        if self.num_key_value_heads is None:
            self.num_key_value_heads = self.num_attention_heads

    @property
    def head_dim(self) -> int:
        return self.hidden_size // self.num_attention_heads

    def to_json_dict(self) -> dict:
        """The EAGLE/LANTERN `config.json` fields (plus ours under their own names)."""
        d = asdict(self)
        extra = d.pop("extra")
        d.update({"architectures": ["LlamaForCausalLM"], "model_type": "llama", "pretraining_tp": 1,
                  "tie_word_embeddings": False, "rope_scaling": None, "max_position_embeddings": 2048})
        d.update(extra)
        return d


class DraftAttention(nn.Module):
    def __init__(self, c: DraftConfig):
        super().__init__()
        self.nh, self.nkv, self.hd = c.num_attention_heads, c.num_key_value_heads, c.head_dim
        self.q_proj = nn.Linear(c.hidden_size, self.nh * self.hd, bias=c.qkv_bias)
        self.k_proj = nn.Linear(c.hidden_size, self.nkv * self.hd, bias=c.qkv_bias)
        self.v_proj = nn.Linear(c.hidden_size, self.nkv * self.hd, bias=c.qkv_bias)
        self.o_proj = nn.Linear(self.nh * self.hd, c.hidden_size, bias=False)

    def forward(self, x, rope, layer, cache: Optional[KVCache], mask):
        b, n, _ = x.shape
        q = apply_rope(self.q_proj(x).view(b, n, self.nh, self.hd), rope).transpose(1, 2)
        k = apply_rope(self.k_proj(x).view(b, n, self.nkv, self.hd), rope).transpose(1, 2)
        v = self.v_proj(x).view(b, n, self.nkv, self.hd).transpose(1, 2)
        if cache is not None:
            k, v = cache.write(layer, k, v)
        return self.o_proj(attend(q, k, v, mask).transpose(1, 2).reshape(b, n, -1))


class DraftMLP(nn.Module):
    def __init__(self, c: DraftConfig):
        super().__init__()
        self.gate_proj = nn.Linear(c.hidden_size, c.intermediate_size, bias=False)
        self.up_proj = nn.Linear(c.hidden_size, c.intermediate_size, bias=False)
        self.down_proj = nn.Linear(c.intermediate_size, c.hidden_size, bias=False)

    def forward(self, x):
        return swiglu(x, self.gate_proj, self.up_proj, self.down_proj)


class DraftLayer(nn.Module):
    def __init__(self, c: DraftConfig, index: int):
        super().__init__()
        self.self_attn = DraftAttention(c)
        self.mlp = DraftMLP(c)
        if index != 0:  # EAGLE skips the pre-attention norm of the first layer
            self.input_layernorm = RMSNorm(c.hidden_size, c.rms_norm_eps)
        self.post_attention_layernorm = RMSNorm(c.hidden_size, c.rms_norm_eps)

    def forward(self, x, rope, layer, cache, mask):
        h = self.input_layernorm(x) if hasattr(self, "input_layernorm") else x
        x = x + self.self_attn(h, rope, layer, cache, mask)
        return x + self.mlp(self.post_attention_layernorm(x))


class DraftHead(nn.Module):
    def __init__(self, config: DraftConfig):
        super().__init__()
        c = self.config = config
        if c.hidden_act != "silu":
            raise ValueError(f"draft head activation {c.hidden_act!r} is not supported (only 'silu')")
        self.embed_tokens = nn.Embedding(c.vocab_size, c.hidden_size)
        self.fc = nn.Linear(2 * c.hidden_size, c.hidden_size, bias=c.bias)
        self.layers = nn.ModuleList(DraftLayer(c, i) for i in range(c.num_hidden_layers))

    def new_cache(self, rows: int, max_len: int, dtype=None, device=None) -> KVCache:
        c = self.config
        w = self.fc.weight
        return KVCache(c.num_hidden_layers, rows, c.num_key_value_heads, c.head_dim, max_len,
                       dtype or w.dtype, device or w.device)

    def forward(self, features: torch.Tensor, tokens: torch.Tensor, rope: torch.Tensor,
                cache: Optional[KVCache] = None, mask=None, token_embeds: Optional[torch.Tensor] = None):
        """features [R, n, H] (target hidden states), tokens [R, n] (the *next* tokens) -> [R, n, H].

        `token_embeds` overrides the embedding lookup (used by families whose drafter embeds tokens through
        target modules, e.g. Janus-Pro's generation embeddings).
        """
        e = self.embed_tokens(tokens) if token_embeds is None else token_embeds
        x = self.fc(torch.cat([e.to(features.dtype), features], dim=-1))
        for i, layer in enumerate(self.layers):
            x = layer(x, rope, i, cache, mask)
        return x
