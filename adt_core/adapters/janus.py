"""Janus-Pro (transformers' `JanusForConditionalGeneration`) as a speculative-decoding target.

Image generation in transformers (`generate(generation_mode="image")`) is reproduced step for step:
  * the prompt ends with `<begin_of_image>`; the CFG batch is (prompt, prompt with every token except BOS
    and `<begin_of_image>` replaced by the pad id), conditional rows first, one attention mask for both;
  * image tokens enter the language model as `generation_aligner(generation_embeddings(token))` and are
    scored by `generation_head` on the final-normed hidden state (not `lm_head`);
  * `decode_image_tokens` gives NHWC pixels in [-1, 1].

Speculative verification needs what transformers' forward does not offer: tree tokens at RoPE positions
`length + depth`, an ancestor mask over the new tokens, and KV compaction of the accepted path. So the
language model's own decoder-layer submodules (norms, q/k/v/o projections, MLP, rotary embedding) are
driven here with our static KVCache; tests check the result against transformers' own forward and greedy
`generate`. Left-padded prompts keep RoPE positions 0..P-1 for every row (pads included): RoPE scores
depend only on relative positions, so this equals transformers' per-row positions up to rounding.

Draft heads: hidden size = the language model's; token embedding = generation_aligner(generation_
embeddings(token)) through `draft_embed`; output head = generation_head through `head`. Their RoPE is an
interleaved 1D table (rope_table_1d) with the language model's rope_theta: the heads are trained by this
package (`adt-tree train-draft`), so only training and inference have to agree. The head's own
`embed_tokens` is saved as the precomputed aligned embedding table, keeping the EAGLE file layout.
"""
import json
import os
from typing import List, Optional

import torch
import torch.nn.functional as F

from ..errors import CheckpointError, InputError
from ..models.draft_head import DraftConfig
from ..models.kv_cache import KVCache
from ..models.layers import attend
from ..models.rope import rope_table_1d
from ..text.condition import MaskedCondition
from ..text.hf import from_pretrained_local

DRAFT_ROPE_PAD = 32


def _rotate_half(x: torch.Tensor) -> torch.Tensor:
    a, b = x.chunk(2, dim=-1)
    return torch.cat([-b, a], dim=-1)


def _rope_theta(text_config) -> float:
    params = getattr(text_config, "rope_parameters", None) or {}
    return float(params.get("rope_theta", getattr(text_config, "rope_theta", 10000.0)))


class JanusTarget:
    family = "janus"
    draft_family = "janus"
    takes_prompts = True

    def __init__(self, model, folder: Optional[str] = None):
        self.model, self.folder = model, folder
        jm = model.model
        self.lm = jm.language_model
        tc = self.lm.config
        layer0 = self.lm.layers[0]
        if not all(hasattr(layer0.self_attn, f"{n}_proj") for n in "qkvo") or not hasattr(layer0, "mlp"):
            raise CheckpointError(f"{folder or 'Janus model'}: its language model is not a Llama decoder "
                                  f"({type(self.lm).__name__}); only Llama-based Janus models are supported")
        self.n_head, self.n_kv_head = tc.num_attention_heads, tc.num_key_value_heads or tc.num_attention_heads
        self.head_dim = getattr(tc, "head_dim", None) or tc.hidden_size // tc.num_attention_heads
        if abs(layer0.self_attn.scaling - self.head_dim ** -0.5) > 1e-9:
            raise CheckpointError(f"{folder}: attention scaling {layer0.self_attn.scaling} is not 1/sqrt(head_dim)")
        self.hidden_size, self.n_layer = tc.hidden_size, tc.num_hidden_layers
        self.intermediate_size = tc.intermediate_size
        self.vocab_size = jm.vqmodel.config.num_embeddings
        self.grid = tuple(int(x) for x in jm.vqmodel.quantize.quant_state_dims)
        self.n_tokens = self.grid[0] * self.grid[1]
        n_img = jm.vision_model.config.num_image_tokens
        if n_img != self.n_tokens:
            raise CheckpointError(f"{folder}: num_image_tokens {n_img} does not match the VQ grid {self.grid}")
        self.max_positions = int(tc.max_position_embeddings)
        self.rope_base = _rope_theta(tc)
        gc = model.generation_config
        kw = getattr(gc, "generation_kwargs", None) or {}
        self.bos_id = gc.bos_token_id if gc.bos_token_id is not None else tc.bos_token_id
        self.pad_id = gc.pad_token_id if gc.pad_token_id is not None else tc.pad_token_id
        self.boi_id = kw.get("boi_token_id", getattr(gc, "boi_token_id", None))
        self.sampling_defaults = {"default_cfg_scale": float(getattr(gc, "guidance_scale", None) or 5.0),
                                  "default_temperature": float(getattr(gc, "temperature", None) or 1.0),
                                  "default_top_k": int(getattr(gc, "top_k", None) or 0)}
        self.prefix_len = 1      # prompt positions of the image being generated (set per condition batch)
        self.batch_width = 1     # padded prompt width of the validated batch (sizes caches)
        self.cache: Optional[KVCache] = None
        self._processor = None

    @property
    def device(self):
        return self.lm.embed_tokens.weight.device

    @property
    def dtype(self):
        return self.lm.embed_tokens.weight.dtype

    # --- conditions ---------------------------------------------------------------------------------
    def _token_ids(self):
        missing = [n for n, v in (("bos", self.bos_id), ("pad", self.pad_id), ("<begin_of_image>", self.boi_id))
                   if v is None]
        if missing:
            raise CheckpointError(f"{self.folder or 'Janus model'}: generation_config.json lacks the "
                                  f"{', '.join(missing)} token id(s) that Janus image generation needs")
        return self.bos_id, self.pad_id, self.boi_id

    def encode_prompts(self, prompts: List[str]) -> MaskedCondition:
        """Prompts -> left-padded ids through the folder's JanusProcessor chat template + <begin_of_image>."""
        if self._processor is None:
            from transformers import AutoProcessor
            try:
                self._processor = AutoProcessor.from_pretrained(self.folder, local_files_only=True)
            except (OSError, ValueError, TypeError) as e:
                raise CheckpointError(f"{self.folder}: no usable Janus processor/tokenizer in this folder for text "
                                      f"prompts ({str(e).splitlines()[0] if str(e) else type(e).__name__}); "
                                      f"pass token ids instead") from None
        p = self._processor
        texts = [p.apply_chat_template([{"role": "user", "content": [{"type": "text", "text": t}]}],
                                       add_generation_prompt=True) for t in prompts]
        enc = p(text=texts, generation_mode="image", padding=True, return_tensors="pt")
        return MaskedCondition(enc["input_ids"], enc["attention_mask"])

    def validate_condition(self, cond) -> MaskedCondition:
        """Prompts (strings), token-id lists, a [B, P] id tensor or a MaskedCondition of ids -> padded ids."""
        _, pad, boi = self._token_ids()
        if isinstance(cond, (list, tuple)) and cond and all(isinstance(c, str) for c in cond):
            cond = self.encode_prompts(list(cond))
        elif isinstance(cond, (list, tuple)) and cond and all(isinstance(c, (list, tuple)) for c in cond):
            width = max(len(c) for c in cond)
            ids = torch.full((len(cond), width), pad, dtype=torch.long)
            mask = torch.zeros(len(cond), width, dtype=torch.bool)
            for i, c in enumerate(cond):
                if c:
                    ids[i, width - len(c):] = torch.tensor(c, dtype=torch.long)
                    mask[i, width - len(c):] = True
            cond = MaskedCondition(ids, mask)
        elif isinstance(cond, torch.Tensor) and cond.dim() == 2 and not cond.is_floating_point():
            cond = MaskedCondition(cond.long(), torch.ones_like(cond, dtype=torch.bool))
        if not isinstance(cond, MaskedCondition) or cond.values.dim() != 2 or cond.values.is_floating_point():
            raise InputError("Janus-Pro needs text prompts or prompt token ids, not class labels or features")
        last = cond.values[:, -1]
        if not bool((last == boi).all()) or not bool(cond.mask[:, -1].all()):
            raise InputError(f"Janus image prompts must end with <begin_of_image> (id {boi}); got last ids "
                             f"{last.tolist()} (use the processor's generation_mode='image')")
        need = cond.values.shape[1] + self.n_tokens + DRAFT_ROPE_PAD
        if need > self.max_positions:
            raise InputError(f"prompt of {cond.values.shape[1]} tokens is too long: prompt + {self.n_tokens} image "
                             f"tokens must stay below {self.max_positions - DRAFT_ROPE_PAD} positions")
        self.prefix_len = self.batch_width = cond.values.shape[1]
        return cond

    def condition_batch(self, cond: MaskedCondition, use_cfg: bool) -> MaskedCondition:
        """CFG rows as transformers builds them. Left-padding columns shared by every row are dropped, so
        an image generated on its own (speculative decoding runs one image at a time) sees no padding."""
        bos, pad, boi = self._token_ids()
        cond = cond.to(self.device)
        first = int(cond.mask.any(0).int().argmax())
        cond = MaskedCondition(cond.values[:, first:], cond.mask[:, first:])
        self.prefix_len = cond.values.shape[1]
        if not use_cfg:
            return cond
        uncond = cond.values.clone()
        uncond[(uncond != bos) & (uncond != boi)] = pad
        return MaskedCondition(torch.cat([cond.values, uncond]), torch.cat([cond.mask, cond.mask]))

    # --- cache lifecycle ----------------------------------------------------------------------------
    def setup(self, rows: int, extra_slots: int) -> None:
        self.prefix_len = self.batch_width  # the widest prompt of the batch, until condition_batch narrows it
        need = self.prefix_len + self.n_tokens + extra_slots
        if self.cache is None or self.cache.k[0].shape[0] != rows or self.cache.max_len < need:
            self.cache = None
            self.cache = KVCache(self.n_layer, rows, self.n_kv_head, self.head_dim, -(-need // 8) * 8,
                                 self.dtype, self.device)
        self.cache.reset()

    def release(self) -> None:
        self.cache = None

    def _layers(self, x: torch.Tensor, positions: torch.Tensor, mask) -> torch.Tensor:
        """The language model's decoder layers over x [R, n, H] at RoPE positions [n], with our cache."""
        cos, sin = self.lm.rotary_emb(x, positions[None])
        cos, sin = cos[:, None], sin[:, None]                   # [1, 1, n, head_dim]
        b, n, _ = x.shape
        for i, layer in enumerate(self.lm.layers):
            a = layer.self_attn
            h = layer.input_layernorm(x)
            q = a.q_proj(h).view(b, n, -1, self.head_dim).transpose(1, 2)
            k = a.k_proj(h).view(b, n, -1, self.head_dim).transpose(1, 2)
            v = a.v_proj(h).view(b, n, -1, self.head_dim).transpose(1, 2)
            q = q * cos + _rotate_half(q) * sin
            k = k * cos + _rotate_half(k) * sin
            k, v = self.cache.write(i, k, v)
            out = attend(q, k, v, mask)
            x = x + a.o_proj(out.transpose(1, 2).reshape(b, n, -1))
            x = x + layer.mlp(layer.post_attention_layernorm(x))
        return self.lm.norm(x)

    def prefill(self, cond_batch: MaskedCondition) -> torch.Tensor:
        """Run the prompt; returns final-normed hidden [R, P, H] (committed). Left padding is masked."""
        # no padding (one image, or prompts of one length): keep the mask-free fast attention path
        self.cache.prefix_mask = None if bool(cond_batch.mask.all()) else cond_batch.mask
        x = self.lm.embed_tokens(cond_batch.values)
        p = x.shape[1]
        h = self._layers(x, torch.arange(p, device=self.device), self.cache.mask(p, causal_new=True))
        self.cache.commit(p)
        return h

    def forward(self, tokens: torch.Tensor, depths: Optional[torch.Tensor] = None,
                tree_mask: Optional[torch.Tensor] = None) -> torch.Tensor:
        """Image tokens [B, n] (CFG rows duplicated here) at positions length + depth -> hidden [R, n, H]."""
        n = tokens.shape[1]
        rows = self.cache.k[0].shape[0]
        if rows != tokens.shape[0]:
            tokens = tokens.repeat(rows // tokens.shape[0], 1)
        offs = depths if depths is not None else torch.arange(n, device=self.device)
        return self._layers(self.draft_embed(tokens), self.cache.length + offs, self.cache.mask(n, tree_mask))

    def commit(self, n: int) -> None:
        self.cache.commit(n)

    def keep(self, slots: List[int]) -> None:
        self.cache.keep(slots)

    def logits(self, hidden: torch.Tensor) -> torch.Tensor:
        return self.model.model.generation_head(hidden).float()

    # --- what a draft head needs --------------------------------------------------------------------
    def head(self, hidden: torch.Tensor) -> torch.Tensor:
        return self.model.model.generation_head(hidden.to(self.dtype)).float()

    def draft_rope(self, head_dim: int) -> torch.Tensor:
        """Interleaved 1D table; drafter position j (hidden f_j with token j+1) uses row j. Sized for the
        longest allowed prompt, because the engine builds it before the prompt is known."""
        return rope_table_1d(self.max_positions, head_dim, self.rope_base).to(self.device)

    def draft_prefix_tokens(self) -> List[int]:
        """Placeholder image code 0 for the prompt positions (text ids have no image embedding)."""
        return [0] * (self.prefix_len - 1)

    def draft_embed(self, tokens: torch.Tensor) -> torch.Tensor:
        jm = self.model.model
        return jm.generation_aligner(jm.generation_embeddings(tokens))

    def draft_config(self, intermediate: Optional[int] = None, heads: Optional[int] = None) -> DraftConfig:
        return DraftConfig(hidden_size=self.hidden_size, intermediate_size=intermediate or self.intermediate_size,
                           num_attention_heads=heads or self.n_head, vocab_size=self.vocab_size,
                           input_type=self.draft_family,
                           extra={"rope": "1d-interleaved", "rope_base": self.rope_base})

    @torch.no_grad()
    def draft_embedding_table(self) -> torch.Tensor:
        """[V, H]: the draft token embedding of every image code (stored as the head's embed_tokens)."""
        return self.draft_embed(torch.arange(self.vocab_size, device=self.device)).float()

    # --- images and LANTERN ---------------------------------------------------------------------------
    @torch.inference_mode()
    def decode_tokens(self, tokens: List[List[int]]) -> torch.Tensor:
        """Token lists -> [B, H, W, 3] float32 in [0, 1] on the CPU (transformers' VQ decoder)."""
        codes = torch.tensor(tokens, device=self.device)
        out = [self.model.decode_image_tokens(codes[i:i + 1]) for i in range(codes.shape[0])]
        return ((torch.cat(out).float() + 1) / 2).clamp(0, 1).cpu()

    def lantern_codebook(self) -> torch.Tensor:
        """The VQ codebook as the decoder reads it (L2-normalised rows), for LANTERN neighbours."""
        return F.normalize(self.model.model.vqmodel.quantize.embedding.weight.float(), dim=-1)


    def attach_text_encoder(self, encoder, name: str = "") -> None:
        raise InputError(f"Janus-Pro reads prompts with its own tokenizer; a separate text encoder {name} "
                         f"cannot be used with it")

    def torch_modules(self) -> list:
        return [self.model]

    def draft_valid_mask(self, cond: MaskedCondition) -> Optional[torch.Tensor]:
        """Left padding of variable-length prompts is masked as keys when training our Janus heads."""
        return cond.mask

    def placeholder_condition(self) -> MaskedCondition:
        """Any valid single-image condition (BOS, <begin_of_image>), for timing forwards (cost profiles)."""
        return self.validate_condition([[self.bos_id, self.boi_id]])

    def cost_signature(self) -> list:
        return ["janus", self.hidden_size, self.n_layer, self.n_head, self.vocab_size, self.n_tokens]


def load_janus(folder: str, device="cpu", dtype=torch.float32) -> JanusTarget:
    """A local Janus-Pro folder in transformers' layout (never downloaded)."""
    folder = os.fspath(folder)
    cfg_path = os.path.join(folder, "config.json")
    if not os.path.isdir(folder) or not os.path.isfile(cfg_path):
        raise CheckpointError(f"{folder}: not a model folder (expected transformers' Janus-Pro layout with "
                              f"config.json and model.safetensors)")
    with open(cfg_path) as f:
        try:
            kind = json.load(f).get("model_type")
        except json.JSONDecodeError as e:
            raise CheckpointError(f"{cfg_path}: invalid JSON ({e})") from None
    if kind != "janus":
        raise CheckpointError(f"{folder}: config.json has model_type {kind!r}, expected 'janus' "
                              f"(DeepSeek's original multi_modality layout must be converted with transformers' "
                              f"convert_janus_weights_to_hf.py first)")
    try:
        from transformers import JanusForConditionalGeneration
    except ImportError:
        raise CheckpointError(f"{folder}: Janus-Pro needs transformers >= 4.52 (JanusForConditionalGeneration); "
                              f"this environment has an older one") from None
    try:
        model = from_pretrained_local(JanusForConditionalGeneration, folder, dtype)
    except (OSError, ValueError) as e:
        raise CheckpointError(f"{folder}: could not load the Janus model "
                              f"({str(e).splitlines()[0] if str(e) else type(e).__name__})") from None
    return JanusTarget(model.to(device).eval(), folder)
