"""The T5 text encoder of LlamaGen t2i (flan-t5-xl), loaded only from a local folder.

What LlamaGen's sampler does, reproduced (`language/t5.py`, `autoregressive/sample/sample_t2i.py`):
  1. clean each prompt (twice; see text/clean.py for the stdlib differences);
  2. tokenise right-padded to exactly 120 tokens (truncating longer prompts, EOS included);
  3. run the encoder with the attention mask and keep `last_hidden_state` [B, 120, 2048];
  4. left-pad: rotate every row so its valid tokens end at position 119, flip the mask to match, and zero
     the padded rows (`features * mask`).
The model's own null caption (uncond_embedding) is added by the target adapter, not here.

Weights are never downloaded: transformers is called with `local_files_only=True`. The encoder runs in
bf16 on CUDA (as upstream) and fp32 elsewhere (bf16 matmuls on a CPU are slow and gain nothing).
"""
import os
from typing import List, Optional

import torch

from ..errors import CheckpointError, InputError
from .clean import clean_prompt
from .condition import MaskedCondition
from .hf import from_pretrained_local

CAPTION_TOKENS = 120


def left_pad(features: torch.Tensor, mask: torch.Tensor) -> MaskedCondition:
    """Right-padded encoder output [B, T, C] + mask [B, T] -> left-padded, padded rows zeroed."""
    rows, masks = [], []
    for f, m in zip(features, mask.bool()):
        n = int(m.sum())
        rows.append(torch.cat([f[n:], f[:n]]))
        masks.append(torch.cat([m[n:], m[:n]]))
    mask = torch.stack(masks)
    return MaskedCondition(torch.stack(rows) * mask[..., None].to(features.dtype), mask)


class T5TextEncoder:
    def __init__(self, model, tokenizer, max_length: int = CAPTION_TOKENS, clean: bool = True):
        self.model, self.tokenizer = model, tokenizer
        self.max_length, self.clean = max_length, clean

    @classmethod
    def load(cls, folder: str, device="cpu", dtype: Optional[torch.dtype] = None,
             max_length: int = CAPTION_TOKENS) -> "T5TextEncoder":
        folder = os.fspath(folder)
        if not os.path.isdir(folder):
            raise CheckpointError(f"{folder}: T5 folder not found (expected a local flan-t5-xl folder with "
                                  f"config.json, tokenizer files and weights; nothing is downloaded)")
        if not os.path.isfile(os.path.join(folder, "config.json")):
            raise CheckpointError(f"{folder}: no config.json; expected a local T5 folder (e.g. flan-t5-xl)")
        from transformers import AutoTokenizer, T5EncoderModel
        device = torch.device(device)
        if dtype is None:
            dtype = torch.bfloat16 if device.type == "cuda" else torch.float32
        try:
            tokenizer = AutoTokenizer.from_pretrained(folder, local_files_only=True)
            model = from_pretrained_local(T5EncoderModel, folder, dtype)
        except (OSError, ValueError) as e:
            first = str(e).splitlines()[0] if str(e) else type(e).__name__
            raise CheckpointError(f"{folder}: could not load a T5 encoder and tokenizer from this folder "
                                  f"({first})") from None
        return cls(model.to(device).eval(), tokenizer, max_length)

    @property
    def device(self) -> torch.device:
        return next(self.model.parameters()).device

    @property
    def dim(self) -> int:
        return self.model.config.d_model

    @torch.inference_mode()
    def encode(self, prompts: List[str]) -> MaskedCondition:
        """prompts -> left-padded caption features [B, 120, d_model] and mask [B, 120] (True = token)."""
        if isinstance(prompts, str) or not prompts or not all(isinstance(p, str) for p in prompts):
            raise InputError("prompts must be a non-empty list of strings")
        texts = [clean_prompt(p) if self.clean else p.lower().strip() for p in prompts]
        self.tokenizer.padding_side = "right"  # left-padding is applied to the encoder output, as upstream
        tok = self.tokenizer(texts, max_length=self.max_length, padding="max_length", truncation=True,
                             return_attention_mask=True, add_special_tokens=True, return_tensors="pt")
        ids, mask = tok["input_ids"].to(self.device), tok["attention_mask"].to(self.device)
        hidden = self.model(input_ids=ids, attention_mask=mask).last_hidden_state
        return left_pad(hidden, mask)
