"""Model loaders: detect the architecture from tensor shapes (or a small JSON config) and load strictly.

Official LlamaGen files carry no config, so sizes come from shapes plus the known head counts of the
published sizes; the grid comes from the image size (argument, else `_256`/`_384` in the file name, else 256)
and the VQ downsample factor. Custom models (tests, the bundled demo) carry their config as JSON.
"""
import json
import os
import re
from typing import Optional

import torch

from ..errors import CheckpointError, InputError
from .checkpoint import load_into, read_file, sidecar_config, unwrap_state_dict
from .draft_head import DraftConfig, DraftHead
from .gpt import GPT, GPTConfig
from .vq import VQConfig, VQModel

# dim -> n_head for the published LlamaGen sizes (B, L, XL, XXL, 1B, XXXL, 3B, 7B).
KNOWN_HEADS = {768: 12, 1024: 16, 1280: 20, 1536: 24, 2048: 32, 2560: 40, 3200: 32, 4096: 32}
SIZE_NAMES = {(768, 12): "GPT-B", (1024, 24): "GPT-L", (1280, 36): "GPT-XL", (1536, 48): "GPT-XXL",
              (3200, 24): "GPT-3B", (2560, 48): "GPT-XXXL", (2048, 22): "GPT-1B", (4096, 32): "GPT-7B"}


def image_size_from_name(path: str, default: int = 256) -> int:
    m = re.search(r"_(\d{3,4})(?=[_.]|$)", os.path.basename(path))
    return int(m.group(1)) if m else default


def _grid_for(path: str, image_size: Optional[int], downsample: int, fixed: Optional[dict]):
    if fixed is not None and "grid_rows" in fixed:
        rows, cols = fixed["grid_rows"], fixed["grid_cols"]
        if image_size is not None and image_size != rows * downsample:
            raise InputError(f"{path}: this model generates {rows * downsample}x{cols * downsample} images "
                             f"({rows}x{cols} tokens); image size {image_size} is not supported")
        return rows, cols
    size = image_size if image_size is not None else image_size_from_name(path)
    if size <= 0 or size % downsample:
        raise InputError(f"{path}: image size {size} is not a positive multiple of the VQ downsample factor "
                         f"{downsample} (e.g. 256 or 384)")
    return size // downsample, size // downsample


def gpt_config_from_state_dict(sd: dict, path: str, grid, custom: Optional[dict]) -> GPTConfig:
    if "tok_embeddings.weight" not in sd:
        raise CheckpointError(f"{path}: not a LlamaGen GPT checkpoint (no 'tok_embeddings.weight'; "
                              f"found e.g. {', '.join(list(sd)[:4])})")
    vocab, dim = sd["tok_embeddings.weight"].shape
    n_layer = len({k.split(".")[1] for k in sd if k.startswith("layers.")})
    if custom is not None:
        fields = {k: v for k, v in custom.items() if k in GPTConfig.__dataclass_fields__}
        return GPTConfig(**{**fields, "grid_rows": grid[0], "grid_cols": grid[1]})
    if dim not in KNOWN_HEADS:
        raise CheckpointError(f"{path}: hidden size {dim} is not a published LlamaGen size "
                              f"({sorted(KNOWN_HEADS)}); a custom model needs its JSON config beside the file")
    n_head = KNOWN_HEADS[dim]
    qkv_rows = sd["layers.0.attention.wqkv.weight"].shape[0]
    head_dim = dim // n_head
    n_kv = (qkv_rows - dim) // (2 * head_dim)
    if "cls_embedding.embedding_table.weight" in sd:
        rows = sd["cls_embedding.embedding_table.weight"].shape[0]
        type_fields = dict(model_type="c2i", num_classes=rows - 1, class_dropout_prob=0.1, cls_token_num=1)
    elif "cls_embedding.cap_proj.fc1.weight" in sd:
        type_fields = dict(model_type="t2i", caption_dim=sd["cls_embedding.cap_proj.fc1.weight"].shape[1],
                           cls_token_num=sd["cls_embedding.uncond_embedding"].shape[0])
    else:
        raise CheckpointError(f"{path}: no class or caption embedding found (expected "
                              f"'cls_embedding.embedding_table.weight' or 'cls_embedding.cap_proj.fc1.weight')")
    return GPTConfig(dim=dim, n_layer=n_layer, n_head=n_head, n_kv_head=n_kv,
                     ffn_hidden=sd["layers.0.feed_forward.w1.weight"].shape[0], vocab_size=vocab,
                     grid_rows=grid[0], grid_cols=grid[1], **type_fields)


def load_gpt(path: str, image_size: Optional[int] = None, downsample: int = 16, device="cpu",
             dtype=torch.float32, use_ema: bool = False) -> GPT:
    from .t2i_layout import hf_to_official, is_hf_layout, read_hf_folder  # LANTERN's HF export (t2i)
    if os.path.isdir(path):
        tensors, custom = read_hf_folder(path)
        sd = unwrap_state_dict(tensors, path, "model.embed_tokens.weight")
    else:
        obj, meta = read_file(path)
        custom = sidecar_config(path, meta)
        sd = unwrap_state_dict(obj, path, "tok_embeddings.weight", use_ema)
    if is_hf_layout(sd):
        sd, custom = hf_to_official(sd, path, custom)
    grid = _grid_for(path, image_size, downsample, custom)
    config = gpt_config_from_state_dict(sd, path, grid, custom)
    with torch.device("meta"):
        model = GPT(config)
    load_into(model, sd, path, f"LlamaGen {config.model_type} GPT (dim {config.dim}, {config.n_layer} layers)")
    return model.to(device=device, dtype=dtype).eval()


def _require_vq(sd: dict, path: str) -> None:
    if "quantize.embedding.weight" not in sd or "decoder.conv_out.weight" not in sd:
        raise CheckpointError(f"{path}: not a LlamaGen VQ tokenizer (no 'quantize.embedding.weight' / "
                              f"'decoder.conv_out.weight')")


def vq_config_from_state_dict(sd: dict, path: str) -> VQConfig:
    n, d = sd["quantize.embedding.weight"].shape
    ch = sd["decoder.conv_out.weight"].shape[1]
    levels = len({k.split(".")[2] for k in sd if k.startswith("decoder.conv_blocks.")})
    mult = [sd[f"decoder.conv_blocks.{j}.res.0.conv1.weight"].shape[0] // ch for j in range(levels)][::-1]
    blocks = len({k.split(".")[4] for k in sd if k.startswith("decoder.conv_blocks.0.res.")}) - 1
    return VQConfig(codebook_size=n, codebook_embed_dim=d, ch=ch, ch_mult=mult,
                    z_channels=sd["post_quant_conv.weight"].shape[0], num_res_blocks=blocks)


def load_vq(path: str, device="cpu", dtype=torch.float32, with_encoder: bool = False) -> VQModel:
    obj, meta = read_file(path)
    custom = sidecar_config(path, meta)
    sd = unwrap_state_dict(obj, path, "quantize.embedding.weight")
    sd.pop("quantize.codebook_used", None)
    _require_vq(sd, path)
    if custom is not None:
        config = VQConfig(**{k: v for k, v in custom.items() if k in VQConfig.__dataclass_fields__})
    else:
        config = vq_config_from_state_dict(sd, path)
    config.with_encoder = with_encoder and "encoder.conv_in.weight" in sd
    if not config.with_encoder:
        sd = {k: v for k, v in sd.items() if not k.startswith(("encoder.", "quant_conv."))}
    with torch.device("meta"):
        model = VQModel(config)
    load_into(model, sd, path, f"LlamaGen VQ tokenizer (downsample {config.downsample})")
    return model.to(device=device, dtype=dtype).eval()


DRAFT_WEIGHT_FILES = ("model.safetensors", "pytorch_model.bin")


def _draft_files(path: str):
    """-> (weights file, config dict or None). Accepts a folder (EAGLE/LANTERN layout) or a single file."""
    if os.path.isdir(path):
        weights = next((os.path.join(path, f) for f in DRAFT_WEIGHT_FILES
                        if os.path.isfile(os.path.join(path, f))), None)
        if weights is None:
            raise CheckpointError(f"{path}: draft head folder has neither {' nor '.join(DRAFT_WEIGHT_FILES)}")
        cfg_file = os.path.join(path, "config.json")
        if not os.path.isfile(cfg_file):
            raise CheckpointError(f"{path}: draft head folder has no config.json")
        with open(cfg_file) as f:
            try:
                return weights, json.load(f)
            except json.JSONDecodeError as e:
                raise CheckpointError(f"{cfg_file}: invalid JSON ({e})") from None
    cfg_file = os.path.join(os.path.dirname(path), "config.json")
    if os.path.isfile(cfg_file) and os.path.basename(path) in DRAFT_WEIGHT_FILES:
        with open(cfg_file) as f:
            return path, json.load(f)
    return path, None


def load_draft_head(path: str, device="cpu", dtype=torch.float32) -> DraftHead:
    weights, cfg = _draft_files(os.fspath(path))
    obj, meta = read_file(weights)
    if cfg is None:
        cfg = sidecar_config(weights, meta)
    sd = unwrap_state_dict(obj, weights, "fc.weight")
    if any(k.startswith("midlayer.") for k in sd) or "d2t" in sd:
        raise CheckpointError(f"{path}: this is an EAGLE-3 draft head; only EAGLE-1/2 (LANTERN) heads are "
                              f"supported")
    if "fc.weight" not in sd or "embed_tokens.weight" not in sd:
        raise CheckpointError(f"{path}: not an EAGLE/LANTERN draft head (expected 'fc.weight' and "
                              f"'embed_tokens.weight'; found e.g. {', '.join(list(sd)[:4])})")
    if cfg is None:
        raise CheckpointError(f"{path}: draft head has no config.json (needed for the number of heads)")
    fields = {k: v for k, v in cfg.items() if k in DraftConfig.__dataclass_fields__ and k != "extra"}
    fields.setdefault("bias", "fc.bias" in sd)
    try:
        config = DraftConfig(**fields)
    except TypeError as e:
        raise CheckpointError(f"{path}: incomplete draft head config ({e})") from None
    with torch.device("meta"):
        model = DraftHead(config)
    load_into(model, sd, path, f"EAGLE draft head (hidden {config.hidden_size}, vocab {config.vocab_size})")
    return model.to(device=device, dtype=dtype).eval()


FAMILY_NAMES = {"c2i": "LlamaGen class-to-image", "t2i": "LlamaGen text-to-image (256 tokens)",
                "t2i2": "LlamaGen text-to-image stage 2 (1024 tokens)", "janus": "Janus-Pro"}


def check_compatible(gpt_vocab: int, gpt_dim: int, vq: Optional[VQModel] = None,
                     draft: Optional[DraftHead] = None, names: Optional[dict] = None,
                     family: Optional[str] = None) -> None:
    """Refuse mismatched model combinations with a message naming both sides.

    `family` is the target's draft-head family (LANTERN's `input_type`: c2i, t2i, t2i2; "janus" for ours):
    a head records the family it was trained for, and a head for another family is refused even when
    its sizes happen to fit (its positions and embeddings would be wrong)."""
    names = names or {}
    if draft is not None and family is not None and draft.config.input_type != family:
        got = draft.config.input_type
        raise InputError(f"draft head {names.get('draft', '')} was trained for {FAMILY_NAMES.get(got, repr(got))} "
                         f"models (input_type {got!r}) but the model {names.get('gpt', '')} is "
                         f"{FAMILY_NAMES.get(family, family)} (input_type {family!r}); use a head trained for it "
                         f"(adt-tree train-draft)")
    if vq is not None and vq.codebook_size != gpt_vocab:
        raise InputError(f"VQ {names.get('vq', '')} has {vq.codebook_size} codes but the GPT "
                         f"{names.get('gpt', '')} predicts {gpt_vocab} tokens: they are not a pair")
    if draft is not None:
        c = draft.config
        if c.vocab_size != gpt_vocab or c.hidden_size != gpt_dim:
            raise InputError(f"draft head {names.get('draft', '')} (vocab {c.vocab_size}, hidden {c.hidden_size}) "
                             f"does not fit the model {names.get('gpt', '')} (vocab {gpt_vocab}, hidden {gpt_dim})")
