"""Reading and writing weight files safely, with errors that name the file and what was expected.

Only two readers are used: safetensors, and `torch.load(weights_only=True)` for pickles. A pickle that needs
code execution is refused (never unpickled with weights_only=False).
"""
import json
import os
import pickle
import zipfile
from typing import Dict, Optional, Tuple

import torch

from ..errors import CheckpointError

CONFIG_METADATA_KEY = "adt_config"
STALE_KEY_PARTS = ("freqs_cis", "kv_cache", "causal_mask")


def read_file(path: str) -> Tuple[object, Dict[str, str]]:
    """Load a weight file -> (object, safetensors metadata or {})."""
    path = os.fspath(path)
    if not os.path.exists(path):
        raise CheckpointError(f"{path}: file not found")
    if os.path.isdir(path):
        raise CheckpointError(f"{path}: is a folder, expected a weight file (.pt/.pth/.bin/.safetensors)")
    if path.endswith((".safetensors", ".sft")):
        from safetensors import safe_open
        from safetensors.torch import load_file
        try:
            with safe_open(path, framework="pt") as f:
                meta = f.metadata() or {}
            return load_file(path, device="cpu"), meta
        except Exception as e:  # safetensors raises several error types for corrupt headers
            raise CheckpointError(f"{path}: not a readable safetensors file ({e})") from None
    try:
        return torch.load(path, map_location="cpu", weights_only=True, mmap=_can_mmap(path)), {}
    except pickle.UnpicklingError as e:
        msg = str(e).splitlines()[0] if str(e) else "unpickling failed"
        if "weights_only" in str(e) or "Unsupported global" in str(e):
            raise CheckpointError(
                f"{path}: refused to load: this pickle needs code execution, which is unsafe "
                f"({msg}). Convert it to .safetensors or a plain state dict.") from None
        raise CheckpointError(f"{path}: not a PyTorch checkpoint ({msg})") from None
    except Exception as e:  # torch raises many types for garbage input (RuntimeError, EOFError, IndexError...)
        first = str(e).splitlines()[0] if str(e) else type(e).__name__
        raise CheckpointError(f"{path}: not a valid PyTorch checkpoint or truncated file ({first})") from None


def _can_mmap(path: str) -> bool:
    return zipfile.is_zipfile(path)


def unwrap_state_dict(obj, path: str, marker: str, use_ema: bool = False) -> Dict[str, torch.Tensor]:
    """Find the state dict inside a training checkpoint, in LlamaGen's order: raw, model, module, state_dict.

    `marker` is a key that only the raw state dict has (e.g. `tok_embeddings.weight`).
    """
    if not isinstance(obj, dict):
        raise CheckpointError(f"{path}: expected a state dict (a mapping of names to tensors), "
                              f"found {type(obj).__name__}")
    if use_ema:
        if "ema" not in obj:
            raise CheckpointError(f"{path}: no 'ema' weights in this checkpoint (keys: {_keys(obj)})")
        obj = obj["ema"]
    elif marker not in obj:
        for wrapper in ("model", "module", "state_dict"):
            if isinstance(obj.get(wrapper), dict):
                obj = obj[wrapper]
                break
    tensors = {k: v for k, v in obj.items() if isinstance(v, torch.Tensor)}
    if not tensors:
        raise CheckpointError(f"{path}: no tensors found (top-level keys: {_keys(obj)})")
    return {k: v for k, v in tensors.items() if not any(p in k for p in STALE_KEY_PARTS)}


def _keys(d: dict, n: int = 8) -> str:
    ks = list(d)[:n]
    return ", ".join(map(str, ks)) + (" ..." if len(d) > n else "")


def sidecar_config(path: str, meta: Dict[str, str]) -> Optional[dict]:
    """Config for small custom models: safetensors metadata `adt_config`, or `<file stem>.json` beside it."""
    if CONFIG_METADATA_KEY in meta:
        return json.loads(meta[CONFIG_METADATA_KEY])
    side = os.path.splitext(path)[0] + ".json"
    if os.path.isfile(side):
        try:
            with open(side) as f:
                return json.load(f)
        except json.JSONDecodeError as e:
            raise CheckpointError(f"{side}: invalid JSON config ({e})") from None
    return None


def save_safetensors(state: Dict[str, torch.Tensor], path: str, config: Optional[dict] = None,
                     dtype: Optional[torch.dtype] = None) -> None:
    """Write tensors (contiguous, optionally cast) with the model config embedded as metadata."""
    from safetensors.torch import save_file
    out = {k: (v.to(dtype) if dtype is not None and v.is_floating_point() else v).contiguous().cpu()
           for k, v in state.items()}
    meta = {CONFIG_METADATA_KEY: json.dumps(config)} if config is not None else None
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    save_file(out, path, metadata=meta)
    os.chmod(path, 0o644)  # safetensors creates 0600 files; shipped weights must be readable by everyone


def load_into(model: torch.nn.Module, sd: Dict[str, torch.Tensor], path: str, what: str) -> None:
    """Strict load with a readable message listing missing/unexpected keys and shape mismatches."""
    own = model.state_dict()
    missing = [k for k in own if k not in sd]
    unexpected = [k for k in sd if k not in own]
    wrong = [f"{k}: file {tuple(sd[k].shape)} vs expected {tuple(own[k].shape)}"
             for k in own if k in sd and sd[k].shape != own[k].shape]
    if missing or unexpected or wrong:
        parts = []
        if missing:
            parts.append(f"missing keys: {_list(missing)}")
        if unexpected:
            parts.append(f"unexpected keys: {_list(unexpected)}")
        if wrong:
            parts.append(f"shape mismatches: {_list(wrong)}")
        raise CheckpointError(f"{path}: does not match a {what}: " + "; ".join(parts))
    model.load_state_dict(sd, strict=True, assign=True)


def _list(items, n: int = 5) -> str:
    return ", ".join(items[:n]) + (f" (+{len(items) - n} more)" if len(items) > n else "")
