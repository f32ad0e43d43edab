"""Everything the ComfyUI nodes do that is not ComfyUI glue, kept importable without ComfyUI.

The node classes only parse widgets, call these helpers and wrap the results, so input validation,
option building, preview rendering and stats formatting are unit-tested in CI where no ComfyUI is
installed (tests/test_node_support.py). Allowed imports: adt_core, torch, numpy, PIL, stdlib.
"""
import json
import math
import os
import re
import time
from dataclasses import dataclass, field, fields, replace
from typing import Callable, Dict, List, Optional, Sequence

import numpy as np
import torch
from PIL import Image

from adt_core import demo
from adt_core.engine.sampling import SamplingConfig
from adt_core.heatmap import render_heatmap, to_image_array
from adt_core.models.load import load_draft_head
from adt_core.models.vq import to_image_tensor
from adt_core.pipeline import Pipeline, SpecOptions
from adt_core.report import compare_table, format_stats, summarize

DEMO_ENTRY = "(bundled demo)"
FOLDER_MODELS, FOLDER_VQ, FOLDER_DRAFTS = "ar_models", "vq_models", "ar_draft_heads"
WEIGHT_EXTENSIONS = {".safetensors", ".sft", ".pt", ".pth", ".bin", ".ckpt"}
PRECISIONS = ("auto", "fp32", "bf16", "fp16")
IMAGE_SIZES = ("auto", "256", "384", "512")
SAMPLER_METHODS = ("adt", "eagle2", "vanilla")
ADT_VARIANTS = ("bisect", "step", "binary", "length", "window", "2d")
PNGINFO_KEY = "adt_tree_stats"
PREVIEW_INTERVAL_S = 0.3
# Where tests and users may point "(bundled demo)" at another copy of the demo weights.
DEMO_DIR_ENV = "ADT_TREE_DEMO_DIR"


# --- model files -----------------------------------------------------------------------------------
def demo_weights() -> Dict[str, str]:
    """Paths of the bundled demo (gpt, vq, draft); raises FileNotFoundError saying how to get them."""
    folder = os.environ.get(DEMO_DIR_ENV) or demo.WEIGHTS_DIR
    if not demo.demo_available(folder):
        raise FileNotFoundError(
            f"the bundled demo weights are missing from {folder}: reinstall the node pack, or build them "
            f"with `python -m adt_core train-demo` (or point {DEMO_DIR_ENV} at a folder that has them)")
    return demo.demo_paths(folder)


def list_weight_files(folders: Sequence[str]) -> List[str]:
    """Weight files (any depth) under the folders, as '/'-separated relative names (ComfyUI combo style)."""
    names = set()
    for root in folders:
        if not os.path.isdir(root):
            continue
        for dirpath, dirnames, filenames in os.walk(root, followlinks=True):
            rel = os.path.relpath(dirpath, root)
            for f in filenames:
                if os.path.splitext(f)[1].lower() in WEIGHT_EXTENSIONS:
                    names.add(f if rel == "." else f"{rel}/{f}".replace(os.sep, "/"))
    return sorted(names)


def list_draft_heads(folders: Sequence[str]) -> List[str]:
    """Draft heads: folders holding a config.json (EAGLE/LANTERN layout, up to two levels deep), or weight
    files that are not inside such a folder."""
    entries = set()
    for root in folders:
        if not os.path.isdir(root):
            continue
        for dirpath, dirnames, filenames in os.walk(root, followlinks=True):
            rel = os.path.relpath(dirpath, root).replace(os.sep, "/")
            if rel != "." and "config.json" in filenames:
                entries.add(rel)
                dirnames[:] = []  # the folder is one head: do not list its files
                continue
            if rel.count("/") >= 1:
                dirnames[:] = []
            for f in filenames:
                if os.path.splitext(f)[1].lower() in WEIGHT_EXTENSIONS:
                    entries.add(f if rel == "." else f"{rel}/{f}")
    return sorted(entries)


def find_entry(folders: Sequence[str], name: str) -> Optional[str]:
    """Full path of a listed entry (file or folder) in the first folder that has it."""
    for root in folders:
        path = os.path.join(root, *name.split("/"))
        if os.path.exists(path):
            return path
    return None


def missing_file_message(kind: str, name: str, folder_name: str, folders: Sequence[str]) -> str:
    where = ", ".join(folders) if folders else f"ComfyUI/models/{folder_name}"
    return (f"{kind} '{name}' not found. Put the file in models/{folder_name} ({where}) and refresh "
            f"the node, or choose {DEMO_ENTRY!r}. Nothing is downloaded automatically.")


def parse_image_size(value: str) -> Optional[int]:
    return None if value == "auto" else int(value)


def choose_precision(precision: str, bf16_ok: bool, fp16_ok: bool) -> str:
    """'auto' -> the best dtype the device supports, as ComfyUI's model management reports it."""
    if precision != "auto":
        if precision not in PRECISIONS:
            raise ValueError(f"precision must be one of {', '.join(PRECISIONS)}, got {precision!r}")
        return precision
    return "bf16" if bf16_ok else "fp16" if fp16_ok else "fp32"


@dataclass
class ARModel:
    """The AR_MODEL value: a loaded pipeline (weights on the offload device) and the ComfyUI patchers
    that own its modules; `patchers` stays opaque here."""
    pipeline: Pipeline
    name: str
    patchers: list = field(default_factory=list)

    @property
    def class_names(self) -> List[str]:
        return list(self.pipeline.target.gpt.config.extra.get("classes", []))


@dataclass
class ARDraftHead:
    """The AR_DRAFT_HEAD value: a draft head checked against the model it was loaded for."""
    head: torch.nn.Module
    name: str
    patchers: list = field(default_factory=list)


def load_draft_for(model: ARModel, path: str, name: str, device: str = "cpu") -> torch.nn.Module:
    """Load a draft head in the model's dtype; refused (by the library's own pipeline check) unless its
    vocabulary, hidden size and model family match the model."""
    head = load_draft_head(path, device=device, dtype=model.pipeline.target.dtype)
    with_draft(model, ARDraftHead(head, name))
    return head


def with_draft(model: ARModel, draft: Optional[ARDraftHead]) -> Pipeline:
    """A pipeline over the model's target and VQ plus this draft head; the input objects stay unchanged."""
    return model.pipeline.with_draft(draft.head if draft else None, draft.name if draft else "")


def kv_cache_bytes(pipeline: Pipeline, batch: int, method: str, cfg: bool, tree_slots: int = 256) -> int:
    """Upper estimate of the KV cache a run allocates (what load_models_gpu must keep free)."""
    c = pipeline.target.gpt.config
    rows = (2 if cfg else 1) * (batch if method == "vanilla" else 1)
    length = c.cls_token_num + c.grid_rows * c.grid_cols + tree_slots
    elem = torch.finfo(pipeline.target.dtype).bits // 8
    return 2 * c.n_layer * rows * c.n_kv_head * c.head_dim * length * elem


# --- inputs -----------------------------------------------------------------------------------------
def _norm(name: str) -> str:
    return re.sub(r"[\s\-]+", "_", name.strip().lower())


def parse_class_labels(text: str, class_names: Sequence[str] = (), num_classes: Optional[int] = None) -> List[int]:
    """'3, 7' or 'meadow, brick wall' -> [ints]. Names only work for models that carry them (the demo)."""
    parts = [p.strip() for p in re.split(r"[,;\n]", text or "") if p.strip()]
    if not parts:
        hint = f" or names such as {', '.join(class_names[:3])}" if class_names else ""
        raise ValueError(f"no class label given: enter numbers like '0, 5'{hint}")
    lookup = {_norm(n): i for i, n in enumerate(class_names)}
    labels = []
    for p in parts:
        if re.fullmatch(r"[+-]?\d+", p):
            labels.append(int(p))
        elif _norm(p) in lookup:
            labels.append(lookup[_norm(p)])
        elif class_names:
            raise ValueError(f"unknown class {p!r}; this model knows: {', '.join(class_names)} "
                             f"(or 0..{len(class_names) - 1})")
        else:
            raise ValueError(f"class label {p!r} is not a number; this model has no class names, "
                             f"use class indices")
    if num_classes is not None:
        bad = [x for x in labels if not 0 <= x < num_classes]
        if bad:
            raise ValueError(f"class label(s) {bad} out of range: this model has classes 0..{num_classes - 1}")
    return labels


def repeat_labels(labels: Sequence[int], batch_size: int) -> List[int]:
    """batch_size images per label, label by label: [a, b] x 2 -> [a, a, b, b]."""
    if batch_size < 1:
        raise ValueError(f"batch size must be at least 1, got {batch_size}")
    return [x for x in labels for _ in range(batch_size)]


_OPTION_FIELDS = {f.name for f in fields(SpecOptions)} - {"method"}


def merge_settings(upstream: Optional[dict], **values) -> dict:
    """Chain settings nodes: a new dict with this node's values over the upstream ones."""
    unknown = set(values) - _OPTION_FIELDS
    if unknown:
        raise ValueError(f"unknown speculative settings: {', '.join(sorted(unknown))}")
    return {**(upstream or {}), **values}


def adt_settings(upstream: Optional[dict], variant: str, depth_min: int, depth_max: int, width_min: int,
                 width_max: int, depth_init: int, width_init: int, beta: float) -> dict:
    if variant not in ADT_VARIANTS:
        raise ValueError(f"ADT-Tree variant must be one of {', '.join(ADT_VARIANTS)}, got {variant!r}")
    for what, lo, init, hi in (("depth", depth_min, depth_init, depth_max),
                               ("width", width_min, width_init, width_max)):
        if not 1 <= lo <= init <= hi:
            raise ValueError(f"ADT-Tree {what}: need 1 <= min <= initial <= max, got {lo} <= {init} <= {hi}")
    return merge_settings(upstream, adt_variant=variant, adt_depth_min=depth_min, adt_depth_max=depth_max,
                          adt_width_min=width_min, adt_width_max=width_max, adt_depth_init=depth_init,
                          adt_width_init=width_init, adt_beta=beta)


def tree_settings(upstream: Optional[dict], depth: int, width: int, node_budget: int) -> dict:
    """EAGLE-2 tree size; node_budget 0 means 'auto' (cost-aware, measured on the device)."""
    budget = "auto" if node_budget == 0 else node_budget
    return merge_settings(upstream, depth=depth, width=width, node_budget=budget)


def lantern_settings(upstream: Optional[dict], k: int, delta: float, lam: float, legacy: bool) -> dict:
    if lam != 0 and lam <= 1:
        raise ValueError(f"LANTERN++ lambda must be 0 (off: use delta) or greater than 1, got {lam}")
    return merge_settings(upstream, lantern_k=k, lantern_delta=delta, lantern_lambda=lam, lantern_legacy=legacy)


# The nodes' tree budget when neither the model nor a settings node gives one, as in the CLI: "auto" picks
# it per round from cost profiles measured once per device (deterministic, so seeds still reproduce).
DEFAULT_NODE_BUDGET = "auto"


def default_options(method: str, model_extra: Optional[dict] = None) -> SpecOptions:
    """SpecOptions from the model's own `adt_defaults` where it ships them (the demo), as the CLI builds
    them, else the library defaults; the initial ADT-Tree tree is the default tree."""
    d = (model_extra or {}).get("adt_defaults", {})
    values = {k: v for k, v in d.items() if k in _OPTION_FIELDS}
    o = SpecOptions(method=method, **{"node_budget": DEFAULT_NODE_BUDGET, **values})
    if "adt_depth_init" not in values:
        o.adt_depth_init = o.depth
    if "adt_width_init" not in values:
        o.adt_width_init = o.width
    return o


def spec_options(method: str, settings: Optional[dict], has_draft: bool,
                 model_extra: Optional[dict] = None) -> SpecOptions:
    """Model defaults, overridden by the settings nodes' values."""
    if method not in SAMPLER_METHODS:
        raise ValueError(f"method must be one of {', '.join(SAMPLER_METHODS)}, got {method!r}")
    if method != "vanilla" and not has_draft:
        raise ValueError(f"method '{method}' needs a draft head: connect an 'ADT-Tree Load Draft Head' node "
                         f"or set the method to 'vanilla'")
    return replace(default_options(method, model_extra), **merge_settings(settings))


def sampling_config(temperature: float, top_k: int, top_p: float, cfg_scale: float, cfg_interval: int = -1):
    return SamplingConfig(temperature=temperature, top_k=top_k, top_p=top_p, cfg_scale=cfg_scale,
                          cfg_interval=cfg_interval)


# --- progress and previews --------------------------------------------------------------------------
class ProgressTracker:
    """Hooks.progress callback: keeps each image's committed tokens, reports (value, total, preview).

    value counts committed tokens over the whole batch. A preview (from `render(image, tokens)`) is made
    when an image is complete and otherwise at most every `interval` seconds, or less often when decoding
    is slow: the wait is at least 4x the last render time, so previews cost at most ~20% of the run.
    Speculative methods report one image's prefix; the batched vanilla loop (`batched=True`) reports one
    column instead, the newest token of every image, until its final per-image reports.
    """

    def __init__(self, batch: int, tokens_per_image: int, on_update: Callable, render: Optional[Callable] = None,
                 batched: bool = False, interval: float = PREVIEW_INTERVAL_S,
                 clock: Callable[[], float] = time.monotonic):
        self.batch, self.n, self.batched = batch, tokens_per_image, batched
        self.tokens: List[List[int]] = [[] for _ in range(batch)]
        self.on_update, self.render, self.interval, self.clock = on_update, render, interval, clock
        self.next_preview = -math.inf

    @property
    def total(self) -> int:
        return self.batch * self.n

    @property
    def value(self) -> int:
        return sum(len(t) for t in self.tokens)

    def __call__(self, image: int, done: int, total: int, tokens: List[int]) -> None:
        if self.batched and done < total:
            if len(tokens) != self.batch:
                raise ValueError(f"batched progress carries {len(tokens)} tokens for a batch of {self.batch}")
            for row, tok in zip(self.tokens, tokens):
                row[done - 1:] = [tok]
            shown = 0
        else:
            self.tokens[image] = list(tokens[:done])
            shown = image
        preview = None
        start = self.clock()
        if self.render is not None and (done >= total or start >= self.next_preview):
            preview = self.render(shown, self.tokens[shown])
            end = self.clock()
            self.next_preview = end + max(self.interval, 4 * (end - start))
        self.on_update(self.value, self.total, preview)


@torch.inference_mode()
def partial_image(pipeline: Pipeline, tokens: Sequence[int], grey: float = 0.5) -> torch.Tensor:
    """Decode the rows generated so far; cells not generated yet are grey. -> [H, W, 3] float32 in 0..1."""
    rows, cols = pipeline.target.grid
    k = len(tokens)
    r = max(1, math.ceil(k / cols))
    codes = list(tokens) + [0] * (r * cols - k)
    dev = pipeline.vq.post_quant_conv.weight.device
    top = to_image_tensor(pipeline.vq.decode_codes(torch.tensor([codes], device=dev), r, cols))[0]
    cell = top.shape[1] // cols
    out = torch.full((rows * cell, cols * cell, 3), grey, dtype=torch.float32)
    out[:r * cell] = top[:r * cell]
    filled = k - (r - 1) * cols
    if filled < cols:
        out[(r - 1) * cell:r * cell, filled * cell:] = grey
    return out


def to_pil(image: torch.Tensor) -> Image.Image:
    """[H, W, 3] float in 0..1 -> PIL RGB."""
    return Image.fromarray((image.clamp(0, 1).cpu().numpy() * 255).round().astype(np.uint8))


# --- stats ------------------------------------------------------------------------------------------
def stats_record(result, model: ARModel, draft: Optional[ARDraftHead], options: SpecOptions,
                 labels: Sequence[int], seed: int) -> dict:
    """The AR_STATS value: what ran and how fast, per image and in total; JSON-serialisable."""
    per_image = json.loads(json.dumps([s.to_dict() for s in result.stats], default=str))
    names = model.class_names
    return {
        "model": model.name,
        "draft": draft.name if draft is not None and options.method != "vanilla" else "",
        "method": options.method,
        "seed": int(seed),
        "labels": list(labels),
        "class_names": [names[x] for x in labels] if names else [],
        "grid": list(model.pipeline.target.grid),
        "image_size": int(result.images.shape[1]) if result.images is not None else None,
        "options": {"method": "vanilla"} if options.method == "vanilla"
        else json.loads(json.dumps(options.to_dict(), default=str)),
        "summary": summarize(per_image),
        "per_image": per_image,
    }


def stats_text(record: dict) -> str:
    """What the sampler node shows: the run summary, then one line per image."""
    lines = [format_stats(record["per_image"])]
    names = record.get("class_names") or [str(x) for x in record["labels"]]
    for i, (s, name) in enumerate(zip(record["per_image"], names)):
        lines.append(f"  #{i} {name}: {s['target_forwards']} target forwards, accepted length "
                     f"{s['mean_accepted_length']:.2f}, {s['tokens_per_second']:.0f} tokens/s")
    return "\n".join(lines)


def stats_json(record: dict) -> str:
    return json.dumps(record)


def add_to_pnginfo(extra_pnginfo: Optional[dict], node_id: Optional[str], record: dict) -> None:
    """Put the record into ComfyUI's per-prompt extra_pnginfo (SaveImage writes each key as a PNG text
    chunk), keyed by the sampler's node id so several samplers in one workflow do not overwrite each other."""
    if extra_pnginfo is None:
        return
    extra_pnginfo.setdefault(PNGINFO_KEY, {})[str(node_id)] = record


def heatmap_batch(record: dict, images: Optional[torch.Tensor] = None, alpha: float = 0.55) -> torch.Tensor:
    """One heatmap per image of the run (over the image when given) -> IMAGE [B, H, W, 3] float32."""
    stats = record["per_image"]
    if images is not None and images.shape[0] not in (1, len(stats)):
        raise ValueError(f"heatmap: {images.shape[0]} images but stats for {len(stats)}; connect the images of "
                         f"the same sampler run")
    out = []
    for i, s in enumerate(stats):
        under = None if images is None else images[min(i, images.shape[0] - 1)].float().cpu().numpy()
        pil = render_heatmap(s, image=under, size=record.get("image_size"), alpha=alpha)
        out.append(torch.from_numpy(to_image_array(pil)))
    return torch.stack(out)


def compare_text(fast: dict, baseline: dict) -> str:
    """Speedup table, with a warning when the two runs did not generate the same thing."""
    table = compare_table(fast["per_image"], baseline["per_image"])
    notes = []
    if fast["labels"] != baseline["labels"]:
        notes.append("the runs used different class labels")
    if fast["seed"] != baseline["seed"]:
        notes.append("the runs used different seeds")
    if fast.get("model") != baseline.get("model"):
        notes.append("the runs used different models")
    return table + ("\nnote: " + "; ".join(notes) + " - not a like-for-like comparison" if notes else "")
