"""LlamaGen (c2i, and t2i through the same GPT) as a speculative-decoding target."""
from typing import List, Optional

import torch

from ..errors import InputError
from ..models.draft_head import DraftConfig
from ..models.gpt import GPT
from ..models.kv_cache import KVCache
from ..models.rope import rope_table_2d
from ..models.vq import to_image_tensor
from ..text.condition import MaskedCondition

DRAFT_ROPE_PAD = 32  # zero rows past the grid: scratch positions never index out of the table


class LlamaGenTarget:
    family = "llamagen"

    def __init__(self, gpt: GPT, vq=None):
        self.gpt = gpt
        self.vq = vq  # the VQ tokenizer that decodes this model's tokens (LlamaGen ships it separately)
        self.text_encoder = None  # T5 for t2i prompts (attach_text_encoder)
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
    @property
    def takes_prompts(self) -> bool:
        return self.gpt.config.model_type == "t2i"

    @property
    def sampling_defaults(self) -> dict:
        """The model's own sampling defaults: the demo ships them in its config; official t2i files get
        LlamaGen's sample_t2i.py defaults."""
        d = dict(self.gpt.config.extra or {})
        if self.gpt.config.model_type == "t2i" and not d:
            d = {"default_cfg_scale": 7.5, "default_top_k": 1000, "default_temperature": 1.0}
        return d

    def torch_modules(self) -> list:
        return [self.gpt] + ([self.vq] if self.vq is not None else [])

    @property
    def draft_family(self) -> str:
        """LANTERN's `input_type` for draft heads of this target: c2i, t2i (256 tokens) or t2i2 (1024)."""
        c = self.gpt.config
        if c.model_type == "c2i":
            return "c2i"
        return "t2i2" if self.n_tokens == 1024 else "t2i"

    def validate_condition(self, cond):
        if self.gpt.config.model_type == "t2i":
            return self._validate_caption(cond)
        if self.gpt.config.model_type != "c2i" or isinstance(cond, MaskedCondition):
            raise InputError("text-to-image models need a prompt encoding, not class labels")
        labels = torch.as_tensor(cond, dtype=torch.long).reshape(-1)
        n = self.gpt.config.num_classes
        bad = [int(x) for x in labels if not 0 <= int(x) < n]
        if bad:
            raise InputError(f"class label(s) {bad} out of range: this model has classes 0..{n - 1}")
        return labels

    def attach_text_encoder(self, encoder, name: str = "") -> None:
        """The T5 encoder that turns prompts into this t2i model's caption features."""
        c = self.gpt.config
        if c.model_type != "t2i":
            raise InputError(f"a T5 encoder {name} was given but this model is class-conditional "
                             f"(it takes class labels, not prompts)")
        if encoder.dim != c.caption_dim:
            raise InputError(f"the T5 encoder {name} gives {encoder.dim}-d features but the model expects "
                             f"caption_dim {c.caption_dim} (LlamaGen t2i uses flan-t5-xl)")
        self.text_encoder = encoder

    def encode_prompts(self, prompts: List[str]) -> MaskedCondition:
        if self.gpt.config.model_type != "t2i":
            raise InputError("this model is class-conditional: give class labels, not prompts")
        if self.text_encoder is None:
            raise InputError("this text-to-image model needs a local T5 encoder folder to read prompts "
                             "(--t5 DIR, e.g. flan-t5-xl)")
        return self.text_encoder.encode(prompts)

    def _validate_caption(self, cond) -> MaskedCondition:
        """t2i: T5 caption features [B, T, caption_dim] + mask [B, T], left-padded (text/t5.py)."""
        c = self.gpt.config
        if not isinstance(cond, MaskedCondition) or not cond.values.is_floating_point():
            raise InputError("this is a text-to-image model: give prompts (with a T5 encoder folder) or "
                             "caption features with a mask, not class labels")
        if cond.values.dim() != 3 or tuple(cond.values.shape[1:]) != (c.cls_token_num, c.caption_dim):
            raise InputError(f"caption features must be [B, {c.cls_token_num}, {c.caption_dim}] for this model, "
                             f"got {list(cond.values.shape)} (is the T5 encoder the one it was trained with?)")
        return cond

    def condition_batch(self, labels, use_cfg: bool):
        if isinstance(labels, MaskedCondition):  # t2i: learned null caption; the caption mask is used for both
            cond = labels.to(self.device)
            feats = cond.values.to(self.dtype)
            if not use_cfg:
                return MaskedCondition(feats, cond.mask)
            null = self.gpt.cls_embedding.uncond_embedding[: feats.shape[1]].to(self.dtype).expand_as(feats)
            return MaskedCondition(torch.cat([feats, null]), torch.cat([cond.mask, cond.mask]))
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
        """Run the condition prefix; returns final-normed hidden [R, T, H] (committed).

        t2i: padded caption positions are masked as keys for every later query (both CFG halves use the
        cond mask, as upstream's sampler does) and a padded position still attends to itself."""
        if isinstance(cond_batch, MaskedCondition):
            self.cache.prefix_mask = cond_batch.mask
            cond_batch = cond_batch.values
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

    def draft_config(self, intermediate: Optional[int] = None, heads: Optional[int] = None) -> DraftConfig:
        """A draft head sized for this target (EAGLE: one layer of the target's width)."""
        c = self.gpt.config
        return DraftConfig(hidden_size=c.dim, intermediate_size=intermediate or c.ffn_hidden,
                           num_attention_heads=heads or c.n_head, vocab_size=c.vocab_size,
                           input_type=self.draft_family)

    def draft_embedding_table(self) -> torch.Tensor:
        """Initial (frozen) token embedding for a new draft head: the target's input embedding."""
        return self.gpt.tok_embeddings.weight.detach().float()

    def draft_valid_mask(self, cond) -> None:
        """LANTERN's LlamaGen heads see the caption without its padding mask; so do ours."""
        return None

    # --- images, LANTERN, cost profiling (the same four methods on every adapter) ---------------------
    def _need_vq(self):
        if self.vq is None:
            raise InputError("this LlamaGen model has no VQ tokenizer attached: load one to decode images "
                             "or to use LANTERN")
        return self.vq

    @torch.inference_mode()
    def decode_tokens(self, tokens: List[List[int]]) -> torch.Tensor:
        """Token lists -> [B, H, W, 3] float32 in [0, 1] on the CPU (ComfyUI's IMAGE layout)."""
        vq = self._need_vq()
        codes = torch.tensor(tokens, device=vq.post_quant_conv.weight.device)
        out = [vq.decode_codes(codes[i:i + 1], *self.grid) for i in range(codes.shape[0])]
        return to_image_tensor(torch.cat(out))

    def lantern_codebook(self) -> torch.Tensor:
        """The codebook exactly as quantisation sees it (L2-normalised rows), for LANTERN neighbours."""
        return self._need_vq().quantize.codebook()

    def placeholder_condition(self):
        """Any valid single-image condition, for timing forwards (cost profiles)."""
        c = self.gpt.config
        if c.model_type == "t2i":
            return MaskedCondition(torch.zeros(1, c.cls_token_num, c.caption_dim),
                                   torch.ones(1, c.cls_token_num, dtype=torch.bool))
        return torch.zeros(1, dtype=torch.long)

    def cost_signature(self) -> list:
        c = self.gpt.config
        return ["llamagen", c.model_type, c.dim, c.n_layer, c.n_head, c.vocab_size, self.prefix_len, self.n_tokens]
