"""Key mapping between official LlamaGen `.pt` files and LANTERN's HF-style export of the targets.

LANTERN publishes the t2i targets (`jadohu/LlamaGen-T2I`, `-T2I-2`) as a folder: `config.json`
(`architectures: ["LlamaForCausalLM"]` plus LlamaGen fields) and `model.safetensors`, loaded by its
`modeling_llamagen_kv.py`. That class keeps LlamaGen's interleaved 2D RoPE and zero condition rows, so the
export is a plain rename plus a row split of the fused `wqkv` into q/k/v: no HF rotate_half permutation.
Going back is the same in reverse: q/k/v rows are concatenated into `wqkv`.

Config fields (HF name -> ours): hidden_size -> dim, num_hidden_layers -> n_layer, num_attention_heads ->
n_head, num_key_value_heads -> n_kv_head, intermediate_size -> ffn_hidden, rms_norm_eps -> norm_eps,
rope_base, vocab_size, input_type ('t2i'/'t2i2'/'c2i') -> model_type, cls_token_num, caption_dim,
num_classes, class_dropout_p, block_size -> the (square) token grid.
"""
import json
import math
import os
from typing import Dict, Optional, Tuple

import torch

from ..errors import CheckpointError
from .checkpoint import read_file

RENAMES = (  # (official suffix, HF suffix) inside a layer
    ("attention.wo.weight", "self_attn.o_proj.weight"),
    ("feed_forward.w1.weight", "mlp.gate_proj.weight"),
    ("feed_forward.w3.weight", "mlp.up_proj.weight"),
    ("feed_forward.w2.weight", "mlp.down_proj.weight"),
    ("attention_norm.weight", "input_layernorm.weight"),
    ("ffn_norm.weight", "post_attention_layernorm.weight"),
)
TOP = (("tok_embeddings.weight", "model.embed_tokens.weight"), ("norm.weight", "model.norm.weight"),
       ("output.weight", "lm_head.weight"))
HF_WEIGHT_FILES = ("model.safetensors", "pytorch_model.bin")


def is_hf_layout(sd: dict) -> bool:
    return "model.embed_tokens.weight" in sd


def read_hf_folder(folder: str) -> Tuple[Dict[str, torch.Tensor], dict]:
    """config.json + model.safetensors (or a sharded index, or pytorch_model.bin) -> (tensors, config)."""
    cfg_path = os.path.join(folder, "config.json")
    if not os.path.isfile(cfg_path):
        raise CheckpointError(f"{folder}: model folder has no config.json (expected LANTERN's HF layout: "
                              f"config.json + model.safetensors)")
    try:
        with open(cfg_path) as f:
            config = json.load(f)
    except json.JSONDecodeError as e:
        raise CheckpointError(f"{cfg_path}: invalid JSON ({e})") from None
    if config.get("model_type") == "janus":
        raise CheckpointError(f"{folder}: this is a Janus-Pro model folder; load it with --janus (Pipeline.load_janus)")
    files = []
    for index in ("model.safetensors.index.json", "pytorch_model.bin.index.json"):
        if os.path.isfile(os.path.join(folder, index)):
            with open(os.path.join(folder, index)) as f:
                files = sorted(set(json.load(f)["weight_map"].values()))
            break
    if not files:
        files = [next((n for n in HF_WEIGHT_FILES if os.path.isfile(os.path.join(folder, n))), None)]
        if files[0] is None:
            raise CheckpointError(f"{folder}: model folder has neither {' nor '.join(HF_WEIGHT_FILES)}")
    sd = {}
    for name in files:
        obj, _ = read_file(os.path.join(folder, name))
        sd.update({k: v for k, v in obj.items() if isinstance(v, torch.Tensor)})
    return sd, config


def _hf_config_for(path: str, custom: Optional[dict]) -> dict:
    if custom is not None:
        return custom
    side = os.path.join(os.path.dirname(os.path.abspath(path)), "config.json")
    if os.path.isfile(side):
        with open(side) as f:
            return json.load(f)
    raise CheckpointError(f"{path}: HF-layout (LANTERN) LlamaGen weights need their config.json in the same "
                          f"folder (for the head count, grid and condition type)")


def config_from_hf(cfg: dict, path: str) -> dict:
    """LANTERN/HF config.json -> GPTConfig fields (grid included when block_size is given)."""
    need = ("hidden_size", "num_hidden_layers", "num_attention_heads", "vocab_size")
    missing = [k for k in need if k not in cfg]
    if missing:
        raise CheckpointError(f"{path}: config.json lacks {', '.join(missing)}")
    input_type = cfg.get("input_type", "t2i" if "caption_dim" in cfg else "c2i")
    out = dict(dim=cfg["hidden_size"], n_layer=cfg["num_hidden_layers"], n_head=cfg["num_attention_heads"],
               n_kv_head=cfg.get("num_key_value_heads") or cfg["num_attention_heads"],
               vocab_size=cfg["vocab_size"], rope_base=float(cfg.get("rope_base", 10000)),
               norm_eps=float(cfg.get("rms_norm_eps", 1e-5)),  # LlamaGen trained with 1e-5
               model_type="c2i" if input_type == "c2i" else "t2i",
               cls_token_num=int(cfg.get("cls_token_num", 1 if input_type == "c2i" else 120)),
               caption_dim=int(cfg.get("caption_dim", 2048)), num_classes=int(cfg.get("num_classes", 1000)),
               class_dropout_prob=float(cfg.get("class_dropout_p", 0.1)))
    if "intermediate_size" in cfg:
        out["ffn_hidden"] = cfg["intermediate_size"]
    if "block_size" in cfg:
        side = math.isqrt(int(cfg["block_size"]))
        if side * side != int(cfg["block_size"]):
            raise CheckpointError(f"{path}: block_size {cfg['block_size']} is not a square token grid")
        out.update(grid_rows=side, grid_cols=side)
    return out


def hf_to_official(sd: dict, path: str, custom: Optional[dict]):
    """HF-layout tensors (+ config.json dict) -> (official state dict, GPTConfig fields)."""
    cfg = _hf_config_for(path, custom)
    fields = config_from_hf(cfg, path) if "hidden_size" in cfg else cfg
    dim, n_head = fields["dim"], fields["n_head"]
    kv_dim = (fields.get("n_kv_head") or n_head) * (dim // n_head)
    out = {}
    for ours, theirs in TOP:
        if theirs in sd:
            out[ours] = sd[theirs]
    for k, v in sd.items():
        if k.startswith("model.cls_embedding."):
            out[k[len("model."):]] = v
    n_layer = len({k.split(".")[2] for k in sd if k.startswith("model.layers.")})
    for i in range(n_layer):
        pre = f"model.layers.{i}."
        try:
            q, k, v = (sd[pre + f"self_attn.{n}_proj.weight"] for n in "qkv")
        except KeyError as e:
            raise CheckpointError(f"{path}: HF-layout checkpoint lacks {e.args[0]}") from None
        if q.shape[0] != dim or k.shape[0] != kv_dim or v.shape[0] != kv_dim:
            raise CheckpointError(f"{path}: layer {i} q/k/v have {q.shape[0]}/{k.shape[0]}/{v.shape[0]} rows, "
                                  f"expected {dim}/{kv_dim}/{kv_dim} from config.json")
        out[f"layers.{i}.attention.wqkv.weight"] = torch.cat([q, k, v], dim=0)
        for ours, theirs in RENAMES:
            if pre + theirs in sd:
                out[f"layers.{i}.{ours}"] = sd[pre + theirs]
    unused = [k for k in sd if not _mapped(k)]
    if unused:
        raise CheckpointError(f"{path}: unexpected keys in an HF-layout LlamaGen checkpoint: "
                              f"{', '.join(unused[:5])}")
    return out, fields


def _mapped(key: str) -> bool:
    if key in dict((t, o) for o, t in TOP) or key.startswith("model.cls_embedding."):
        return True
    parts = key.split(".")
    if len(parts) > 3 and parts[:2] == ["model", "layers"]:
        rest = ".".join(parts[3:])
        return rest in {t for _, t in RENAMES} or rest in {f"self_attn.{n}_proj.weight" for n in "qkv"}
    return "rotary_emb" in key or "freqs_cis" in key


def official_to_hf(sd: dict, fields: dict) -> Tuple[Dict[str, torch.Tensor], dict]:
    """Official state dict + GPTConfig fields -> (HF-layout tensors, LANTERN-style config.json dict)."""
    dim, n_head = fields["dim"], fields["n_head"]
    kv_dim = (fields.get("n_kv_head") or n_head) * (dim // n_head)
    out = {theirs: sd[ours] for ours, theirs in TOP}
    out.update({"model." + k: v for k, v in sd.items() if k.startswith("cls_embedding.")})
    for i in range(fields["n_layer"]):
        q, k, v = sd[f"layers.{i}.attention.wqkv.weight"].split([dim, kv_dim, kv_dim], dim=0)
        for name, t in zip("qkv", (q, k, v)):
            out[f"model.layers.{i}.self_attn.{name}_proj.weight"] = t.contiguous()
        for ours, theirs in RENAMES:
            out[f"model.layers.{i}.{theirs}"] = sd[f"layers.{i}.{ours}"]
    t2i = fields.get("model_type", "c2i") == "t2i"
    grid = fields["grid_rows"] * fields["grid_cols"]
    cfg = {"architectures": ["LlamaForCausalLM"], "model_type": "llama", "hidden_act": "silu",
           "hidden_size": dim, "intermediate_size": fields["ffn_hidden"], "num_hidden_layers": fields["n_layer"],
           "num_attention_heads": n_head, "num_key_value_heads": fields.get("n_kv_head") or n_head,
           "vocab_size": fields["vocab_size"], "rms_norm_eps": fields.get("norm_eps", 1e-5),
           "rope_base": fields.get("rope_base", 10000), "block_size": grid,
           "cls_token_num": fields.get("cls_token_num", 120 if t2i else 1),
           "caption_dim": fields.get("caption_dim", 2048), "num_classes": fields.get("num_classes", 1000),
           "input_type": ("t2i2" if grid == 1024 else "t2i") if t2i else "c2i",
           "class_dropout_p": fields.get("class_dropout_prob", 0.1), "token_dropout_p": 0.1,
           "resid_dropout_p": 0.1, "ffn_dropout_p": 0.1, "attention_bias": False, "pretraining_tp": 1,
           "tie_word_embeddings": False, "max_position_embeddings": 2048}
    return out, cfg
