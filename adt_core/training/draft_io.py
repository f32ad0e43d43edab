"""Saving draft heads in the EAGLE/LANTERN folder layout (shared by train-draft and the demo recipe)."""
import json
import os
from typing import Optional

import torch

from ..models.checkpoint import save_safetensors
from ..models.draft_head import DraftHead
from ..models.load import load_draft_head

DTYPE_NAMES = {torch.float16: "float16", torch.bfloat16: "bfloat16", torch.float32: "float32"}


def save_draft(head: DraftHead, folder: str, extra: Optional[dict] = None,
               dtype: torch.dtype = torch.float16) -> None:
    """config.json (LANTERN's fields, `input_type` = the head's family) + model.safetensors.

    The folder is re-loaded at the end, so a head that would not load fails now, not at generation time."""
    os.makedirs(folder, exist_ok=True)
    cfg = head.config.to_json_dict()
    cfg["torch_dtype"] = DTYPE_NAMES[dtype]
    if extra:
        cfg["adt_training"] = extra
    with open(os.path.join(folder, "config.json"), "w") as f:
        json.dump(cfg, f, indent=1)
    save_safetensors(head.state_dict(), os.path.join(folder, "model.safetensors"), dtype=dtype)
    load_draft_head(folder)
