"""`adt-tree train-demo`: scenes -> VQ tokenizer -> class-conditional GPT -> distilled draft head.

Every stage uses the project's own model classes and is saved in the official layouts, so the demo goes
through exactly the loaders real checkpoints use. Stages write their result to the output folder and are
skipped when it is already there (`resume`), so an interrupted run continues where it stopped.
"""
import json
import os
from dataclasses import asdict, dataclass, field
from typing import List

import numpy as np
import torch
from tqdm import tqdm

from ..adapters.llamagen import LlamaGenTarget
from ..engine.hooks import Hooks
from ..engine.sampling import SamplingConfig
from ..engine.vanilla import sample_vanilla
from ..models.checkpoint import save_safetensors
from ..models.draft_head import DraftHead
from ..models.gpt import GPTConfig
from ..models.load import load_gpt, load_vq
from ..models.vq import VQConfig
from ..training.draft_io import save_draft
from ..training.draft_trainer import collect_features, draft_config_for, train_draft
from ..training.gpt_trainer import train_gpt
from ..training.schedule import fast_bf16
from ..training.vq_trainer import train_vq
from . import DRAFT_DIR, GPT_FILE, VQ_FILE
from .scenes import CLASSES, SIZE, render


DEMO_ADT_DEFAULTS = {"depth": 5, "width": 10, "node_budget": "auto", "adt_depth_min": 2, "adt_depth_max": 8,
                     "adt_width_min": 2, "adt_width_max": 16, "adt_beta": 0.5, "lantern_k": 32,
                     "lantern_delta": 0.1}


@dataclass
class DemoRecipe:
    seed: int = 0
    threads: int = 2
    amp: bool = True  # bf16 autocast for GPT and draft training where the CPU/GPU runs bf16 natively
    # tokenizer: VQ-8 layout, 128 px -> 16x16 tokens
    vq_codebook: int = 1024
    vq_ch: int = 32
    vq_ch_mult: List[int] = field(default_factory=lambda: [1, 2, 2, 4])
    vq_z: int = 64
    vq_res_blocks: int = 1
    vq_steps: int = 1200
    vq_batch: int = 16
    vq_crop: int = 64
    vq_lr: float = 1e-3
    images_per_class: int = 1000
    # GPT: deep and narrow against the one-layer draft head, as real LlamaGen models are
    gpt_dim: int = 192
    gpt_layers: int = 16
    gpt_heads: int = 6
    gpt_steps: int = 1200
    gpt_batch: int = 32
    gpt_lr: float = 1.5e-3
    # sampling defaults shipped with the model (and used for the draft head's self-distillation data)
    top_k: int = 64
    cfg_scale: float = 4.0
    draft_samples: int = 1200
    draft_steps: int = 2400
    draft_batch: int = 16
    draft_lr: float = 2e-3
    draft_held_out: int = 64
    # tree and LANTERN defaults shipped with the model (CLI, bench and nodes use them), tuned on 2 CPU cores
    adt_defaults: dict = field(default_factory=lambda: dict(DEMO_ADT_DEFAULTS))

    @classmethod
    def smoke(cls) -> "DemoRecipe":
        """Seconds-scale settings for tests: same code path, toy sizes."""
        return cls(vq_codebook=64, vq_steps=6, vq_batch=4, vq_crop=32, images_per_class=2, gpt_dim=64,
                   gpt_layers=2, gpt_heads=4, gpt_steps=8, gpt_batch=4, top_k=16, draft_samples=8,
                   draft_steps=8, draft_batch=4, draft_held_out=4)


def model_metadata(r: DemoRecipe) -> dict:
    """What the demo GPT's config carries besides its sizes: class names and its own defaults."""
    return {"classes": CLASSES, "image_size": SIZE, "default_top_k": r.top_k, "default_cfg_scale": r.cfg_scale,
            "default_temperature": 1.0, "adt_defaults": dict(r.adt_defaults)}


def _to_tensor(img: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(img).permute(2, 0, 1).float() / 127.5 - 1


def _crops(r: DemoRecipe):
    def batch(step: int) -> torch.Tensor:
        rng = np.random.default_rng([r.seed, 7, step])
        out = []
        for _ in range(r.vq_batch):
            img = render(int(rng.integers(len(CLASSES))), int(rng.integers(10 ** 6)) + 10 ** 6, r.seed)
            y, x = rng.integers(0, SIZE - r.vq_crop + 1, 2)
            out.append(_to_tensor(img[y:y + r.vq_crop, x:x + r.vq_crop]))
        return torch.stack(out)
    return batch


@torch.no_grad()
def encode_dataset(vq, r: DemoRecipe, show_progress: bool = True):
    labels, tokens = [], []
    pairs = [(c, i) for i in range(r.images_per_class) for c in range(len(CLASSES))]
    for k in tqdm(range(0, len(pairs), 32), desc="tokenizing scenes", disable=not show_progress):
        chunk = pairs[k:k + 32]
        x = torch.stack([_to_tensor(render(c, i, r.seed)) for c, i in chunk])
        tokens.append(vq.encode(x)[1])
        labels.extend(c for c, _ in chunk)
    return torch.tensor(labels), torch.cat(tokens)


def train_demo(out_dir: str, r: DemoRecipe, show_progress: bool = True, log=print) -> dict:
    """Run (or resume) every stage; torch's thread count is set for the run and restored afterwards."""
    previous = torch.get_num_threads()
    torch.set_num_threads(r.threads)
    try:
        return _train_demo(out_dir, r, show_progress, log)
    finally:
        torch.set_num_threads(previous)


def _train_demo(out_dir: str, r: DemoRecipe, show_progress: bool, log) -> dict:
    os.makedirs(out_dir, exist_ok=True)
    log_path = os.path.join(out_dir, "train_log.jsonl")
    with open(os.path.join(out_dir, "recipe.json"), "w") as f:
        json.dump(asdict(r), f, indent=1)
    vq_path, gpt_path = os.path.join(out_dir, VQ_FILE), os.path.join(out_dir, GPT_FILE)
    draft_dir = os.path.join(out_dir, DRAFT_DIR)

    if not os.path.isfile(vq_path):
        log(f"[1/4] VQ tokenizer: {r.vq_steps} steps")
        vcfg = VQConfig(codebook_size=r.vq_codebook, codebook_embed_dim=8, ch=r.vq_ch, ch_mult=list(r.vq_ch_mult),
                        z_channels=r.vq_z, num_res_blocks=r.vq_res_blocks)
        vq = train_vq(vcfg, _crops(r), r.vq_steps, r.vq_lr, r.seed, log_path, show_progress=show_progress)
        save_safetensors(vq.state_dict(), vq_path, vcfg.to_dict(), torch.float16)
    vq = load_vq(vq_path, with_encoder=True)

    tok_cache = os.path.join(out_dir, "tokens.pt")
    if not os.path.isfile(tok_cache):
        log(f"[2/4] tokenizing {r.images_per_class * len(CLASSES)} scenes")
        labels, tokens = encode_dataset(vq, r, show_progress)
        torch.save({"labels": labels, "tokens": tokens}, tok_cache)
    data = torch.load(tok_cache, weights_only=True)
    labels, tokens = data["labels"], data["tokens"]

    if not os.path.isfile(gpt_path):
        log(f"[3/4] GPT: {r.gpt_layers} layers x {r.gpt_dim}, {r.gpt_steps} steps")
        grid = SIZE // vq.config.downsample
        gcfg = GPTConfig(dim=r.gpt_dim, n_layer=r.gpt_layers, n_head=r.gpt_heads, vocab_size=r.vq_codebook,
                         num_classes=len(CLASSES), grid_rows=grid, grid_cols=grid,
                         extra=model_metadata(r))
        gpt = train_gpt(gcfg, tokens, labels, r.gpt_steps, r.gpt_batch, r.gpt_lr, seed=r.seed, log_path=log_path,
                        show_progress=show_progress, amp=r.amp and fast_bf16("cpu"))
        save_safetensors(gpt.state_dict(), gpt_path, gcfg.to_dict(), torch.float16)
    target = LlamaGenTarget(load_gpt(gpt_path))

    if not os.path.isdir(draft_dir):
        log(f"[4/4] draft head: {r.draft_samples} GPT samples, {r.draft_steps} steps")
        s = SamplingConfig(temperature=1.0, top_k=r.top_k, cfg_scale=r.cfg_scale)
        gen = torch.Generator().manual_seed(r.seed)
        samp_labels = torch.arange(r.draft_samples) % len(CLASSES)
        samples = []
        for k in tqdm(range(0, r.draft_samples, 100), desc="GPT samples", disable=not show_progress):
            samples += sample_vanilla(target, samp_labels[k:k + 100], s, gen, Hooks(), {})[0]
        target.release()
        # own samples first (the held-out slice comes from them), then real scene tokens
        n_real = min(len(labels), r.draft_samples)
        all_labels = torch.cat([samp_labels, labels[:n_real]])
        all_tokens = torch.cat([torch.tensor(samples), tokens[:n_real]])
        data = collect_features(target, all_labels, all_tokens, show_progress=show_progress)
        head = DraftHead(draft_config_for(target))
        head.embed_tokens.weight.data.copy_(target.draft_embedding_table())
        report = train_draft(head, target, data, r.draft_steps, r.draft_batch, r.draft_lr, r.cfg_scale, seed=r.seed,
                             log_path=log_path, show_progress=show_progress, held_out=r.draft_held_out,
                             amp=r.amp)
        save_draft(head, draft_dir, extra={"held_out": report})
        log(f"draft head held-out: {report}")
    return {"gpt": gpt_path, "vq": vq_path, "draft": draft_dir}
