"""ComfyUI runtime glue: model folders, patchers, device/dtype choice, progress bar with previews.

Kept apart from the node classes so each node reads as parse inputs -> call adt_core -> NodeOutput.
"""
import os

import comfy.model_management as mm
import comfy.model_patcher
import comfy.utils
import folder_paths
import torch
from comfy.cli_args import args
from tqdm import tqdm

from adt_core.engine.hooks import Hooks

from . import support

FOLDERS = (support.FOLDER_MODELS, support.FOLDER_VQ, support.FOLDER_DRAFTS)


def register_model_folders() -> None:
    """models/ar_models, models/vq_models, models/ar_draft_heads (plus extra_model_paths.yaml entries)."""
    for name in FOLDERS:
        folder_paths.add_model_folder_path(name, os.path.join(folder_paths.models_dir, name), is_default=True)


def folders(name: str) -> list:
    return folder_paths.get_folder_paths(name) if name in folder_paths.folder_names_and_paths else []


def model_choices(name: str) -> list:
    listed = support.list_draft_heads(folders(name)) if name == support.FOLDER_DRAFTS \
        else support.list_weight_files(folders(name))
    return [support.DEMO_ENTRY] + listed


def resolve(name: str, entry: str, demo_key: str, kind: str) -> str:
    """Combo entry -> path; the demo entry maps to the bundled weights."""
    if entry == support.DEMO_ENTRY:
        return support.demo_weights()[demo_key]
    path = support.find_entry(folders(name), entry)
    if path is None:
        raise FileNotFoundError(support.missing_file_message(kind, entry, name, folders(name)))
    return path


def devices():
    """(load device, offload device) as ComfyUI's model management decides them (--cpu, lowvram...)."""
    return mm.get_torch_device(), mm.unet_offload_device()


def precision(choice: str) -> str:
    load_device = mm.get_torch_device()
    return support.choose_precision(choice, mm.should_use_bf16(load_device), mm.should_use_fp16(load_device))


def patchers(*modules: torch.nn.Module) -> list:
    """Hand the modules to ComfyUI's memory management, so "Free model memory" and LRU offload apply."""
    load_device, offload_device = devices()
    return [comfy.model_patcher.CoreModelPatcher(m, load_device=load_device, offload_device=offload_device)
            for m in modules]


def load_to_device(model_patchers: list, memory_required: int) -> None:
    # Plain nn.Modules cannot be partially offloaded (that needs comfy.ops layers): load them whole.
    mm.load_models_gpu(model_patchers, memory_required=memory_required, force_full_load=True)


def generation_hooks(pipeline, batch: int, batched: bool) -> Hooks:
    """ProgressBar + console bar advancing per committed token, throttled partial-image previews, and
    ComfyUI's interrupt check on every round."""
    n = pipeline.target.n_tokens
    pbar = comfy.utils.ProgressBar(batch * n)
    console = tqdm(total=batch * n, desc="ADT-Tree sampling", unit="tok", leave=False)

    def on_update(value, total, preview):
        pbar.update_absolute(value, total, preview)
        console.update(value - console.n)
        if value >= total:
            console.close()

    def render(image, tokens):
        return "JPEG", support.to_pil(support.partial_image(pipeline, tokens)), args.preview_size

    tracker = support.ProgressTracker(batch, n, on_update, render, batched=batched)
    return Hooks(progress=tracker, check_interrupt=mm.throw_exception_if_processing_interrupted)


def to_output_image(images: torch.Tensor) -> torch.Tensor:
    return images.to(device=mm.intermediate_device(), dtype=mm.intermediate_dtype())
