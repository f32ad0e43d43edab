"""The nodes inside a real ComfyUI process (COMFYUI_PATH), loaded by ComfyUI's own custom-node loader,
on tiny random models written to temp model folders: registration, folders, execution, memory
management, progress/previews and interrupts."""
import asyncio
import json
import os
import sys
from types import SimpleNamespace

import pytest
import torch

from comfy_harness import PACK_NAME, comfyui_path, install_cpu_import_hooks, pack_parent
from tiny_models import save_draft_folder, save_gpt, save_vq, tiny_draft, tiny_gpt, tiny_vq

NODE_IDS = ["ADTTreeLoadModel", "ADTTreeLoadDraftHead", "ADTTreeTreeSettings", "ADTTreeSettings",
            "ADTTreeLanternSettings", "ADTTreeSampler", "ADTTreeHeatmap", "ADTTreeCompare"]
NAMES = ["meadow", "seaside", "brick_wall", "desert"]
SAMPLING = dict(class_labels="seaside, 3", seed=11, batch_size=1, cfg_scale=3.0, temperature=1.0, top_k=0,
                top_p=1.0, cfg_interval=-1)


@pytest.fixture(scope="module")
def comfy(tmp_path_factory):
    install_cpu_import_hooks()
    sys.path.insert(0, comfyui_path())
    from comfy.cli_args import args
    args.cpu = True
    import comfy.model_management as mm
    import comfy.utils
    import folder_paths
    import nodes
    from comfy_api.latest import io
    parent = pack_parent(str(tmp_path_factory.mktemp("pack")))
    assert asyncio.run(nodes.load_custom_node(os.path.join(parent, PACK_NAME)))
    return SimpleNamespace(mm=mm, utils=comfy.utils, folder_paths=folder_paths, io=io,
                           nodes={k: nodes.NODE_CLASS_MAPPINGS[k] for k in NODE_IDS})


@pytest.fixture(scope="module")
def models_root(comfy, tmp_path_factory):
    root = tmp_path_factory.mktemp("models")
    for name in ("ar_models", "vq_models", "ar_draft_heads"):
        (root / name).mkdir()
        comfy.folder_paths.add_model_folder_path(name, str(root / name))
    gpt = tiny_gpt(classes=len(NAMES), grid=(4, 4))
    gpt.config.extra["classes"] = NAMES
    save_gpt(gpt, str(root / "ar_models" / "tiny_gpt.pt"))
    save_vq(tiny_vq(), str(root / "vq_models" / "tiny_vq.pt"))
    save_draft_folder(tiny_draft(gpt), str(root / "ar_draft_heads" / "tiny_head"), fmt="safetensors")
    save_draft_folder(tiny_draft(tiny_gpt(dim=32)), str(root / "ar_draft_heads" / "other_head"))
    return root


@pytest.fixture(scope="module")
def loaded(comfy, models_root):
    n = comfy.nodes
    model = n["ADTTreeLoadModel"].execute(model="tiny_gpt.pt", vq="tiny_vq.pt", precision="auto",
                                          image_size="auto").args[0]
    draft = n["ADTTreeLoadDraftHead"].execute(model=model, draft_head="tiny_head").args[0]
    return model, draft


def run_sampler(comfy, model, draft=None, method="adt", hidden=None, settings=None, **overrides):
    """Execute as ComfyUI's executor does: a class clone carrying the hidden inputs."""
    node = comfy.nodes["ADTTreeSampler"].PREPARE_CLASS_CLONE({"hidden_inputs": hidden or {}})
    return node.execute(model=model, draft_head=draft, method=method, settings=settings,
                        **{**SAMPLING, **overrides})


def test_pack_registers_v3_nodes_with_categories_and_tooltips(comfy):
    for node_id, cls in comfy.nodes.items():
        schema = cls.GET_SCHEMA()
        assert schema.node_id == node_id and schema.display_name.startswith("ADT-Tree")
        assert schema.category.startswith("sampling/autoregressive") and schema.description
        missing = [i.id for i in schema.inputs if not i.tooltip]
        assert not missing, f"{node_id}: inputs without tooltip: {missing}"
    sampler = comfy.nodes["ADTTreeSampler"].INPUT_TYPES()
    assert sampler["required"]["seed"][1]["control_after_generate"] is True
    assert {"unique_id", "extra_pnginfo"} <= set(sampler["hidden"])
    assert list(comfy.nodes["ADTTreeSampler"].RETURN_TYPES) == ["IMAGE", "AR_STATS", "STRING"]
    assert comfy.nodes["ADTTreeCompare"].OUTPUT_NODE is True


def test_model_folders_feed_the_loader_combos(comfy, models_root):
    fp = comfy.folder_paths
    assert fp.get_folder_paths("ar_models")[0] == os.path.join(fp.models_dir, "ar_models")
    model_opts = comfy.nodes["ADTTreeLoadModel"].INPUT_TYPES()["required"]
    assert model_opts["model"][1]["options"] == ["(bundled demo)", "tiny_gpt.pt"]
    assert model_opts["vq"][1]["options"] == ["(bundled demo)", "tiny_vq.pt"]
    draft_opts = comfy.nodes["ADTTreeLoadDraftHead"].INPUT_TYPES()["required"]["draft_head"][1]["options"]
    assert draft_opts == ["(bundled demo)", "other_head", "tiny_head"]


def test_missing_files_and_mismatched_heads_are_clear_errors(comfy, loaded):
    with pytest.raises(FileNotFoundError, match="models/ar_models"):
        comfy.nodes["ADTTreeLoadModel"].execute(model="c2i_XL_384.pt", vq="tiny_vq.pt", precision="auto",
                                                image_size="auto")
    with pytest.raises(ValueError, match="does not fit the model"):
        comfy.nodes["ADTTreeLoadDraftHead"].execute(model=loaded[0], draft_head="other_head")
    with pytest.raises(ValueError, match="needs a draft head"):
        run_sampler(comfy, loaded[0], None, "adt")
    with pytest.raises(ValueError, match="unknown class 'lake'"):
        run_sampler(comfy, loaded[0], loaded[1], "adt", class_labels="lake")


def test_sampler_outputs_images_stats_text_and_pnginfo(comfy, loaded):
    model, draft = loaded
    info = {"workflow": {"nodes": []}}
    settings = comfy.nodes["ADTTreeLanternSettings"].execute(
        k=8, delta=0.2, relative_budget=0.0, legacy=False,
        settings=comfy.nodes["ADTTreeSettings"].execute(
            variant="bisect", depth_min=1, depth_max=4, width_min=1, width_max=4, depth_init=2, width_init=2,
            beta=0.5).args[0]).args[0]
    out = run_sampler(comfy, model, draft, "adt", settings=settings, batch_size=2,
                      hidden={comfy.io.Hidden.unique_id: "9", comfy.io.Hidden.extra_pnginfo: info})
    images, record, text = out.args
    assert images.shape == (4, 64, 64, 3) and images.dtype == torch.float32 and images.device.type == "cpu"
    assert 0 <= images.min() and images.max() <= 1
    assert json.loads(text) == record and record["method"] == "adt"
    assert record["class_names"] == ["seaside", "seaside", "desert", "desert"]
    assert record["options"]["lantern_k"] == 8 and record["per_image"][0]["lantern_k"] == 8
    assert record["options"]["adt_depth_max"] == 4 and record["options"]["node_budget"] == "auto"  # the default
    shown = out.ui.as_dict()["text"][0]
    assert ": 4 image(s), 64 tokens" in shown and "seaside" in shown
    assert info["adt_tree_stats"]["9"] == record and info["workflow"] == {"nodes": []}
    assert model.pipeline.target.cache is None  # KV caches released after the run


def test_patchers_are_managed_by_comfyui(comfy, loaded):
    model, draft = loaded
    run_sampler(comfy, model, draft, "eagle2")
    managed = [m.model for m in comfy.mm.current_loaded_models]
    assert all(p in managed for p in model.patchers + draft.patchers)
    comfy.mm.unload_all_models()
    assert not any(p in [m.model for m in comfy.mm.current_loaded_models] for p in model.patchers)
    assert run_sampler(comfy, model, draft, "eagle2").args[0].shape == (2, 64, 64, 3)  # reloads


def test_seed_reproducibility_and_greedy_losslessness(comfy, loaded):
    model, draft = loaded
    a = run_sampler(comfy, model, draft, "adt").args[0]
    assert torch.equal(a, run_sampler(comfy, model, draft, "adt").args[0])
    assert not torch.equal(a, run_sampler(comfy, model, draft, "adt", seed=12).args[0])
    greedy = dict(temperature=0.0)
    fast = run_sampler(comfy, model, draft, "adt", **greedy).args[0]
    assert torch.equal(fast, run_sampler(comfy, model, None, "vanilla", **greedy).args[0])


def test_progress_previews_and_interrupt(comfy, loaded):
    model, draft = loaded
    calls = []

    def hook(value, total, preview, node_id=None):
        calls.append((value, total, preview))
        if stop_at is not None and value >= stop_at:
            comfy.mm.interrupt_current_processing(True)

    previous = comfy.utils.PROGRESS_BAR_HOOK
    comfy.utils.set_progress_bar_global_hook(hook)
    try:
        stop_at = None
        run_sampler(comfy, model, None, "vanilla", batch_size=2)
        assert calls[-1][:2] == (64, 64) and [c[1] for c in calls] == [64] * len(calls)
        fmt, image, size = calls[-1][2]
        assert fmt == "JPEG" and image.size == (64, 64) and size > 0
        calls.clear()
        stop_at = 8
        with pytest.raises(comfy.mm.InterruptProcessingException):
            run_sampler(comfy, model, draft, "adt", batch_size=2)
        assert calls[-1][0] < 64
        assert model.pipeline.target.cache is None
    finally:
        comfy.mm.interrupt_current_processing(False)
        comfy.utils.set_progress_bar_global_hook(previous)
    assert run_sampler(comfy, model, draft, "adt").args[0].shape == (2, 64, 64, 3)


def test_heatmap_and_compare_nodes(comfy, loaded):
    model, draft = loaded
    fast = run_sampler(comfy, model, draft, "eagle2")
    base = run_sampler(comfy, model, None, "vanilla")
    heat = comfy.nodes["ADTTreeHeatmap"].execute(stats=fast.args[1], opacity=0.5, images=fast.args[0]).args[0]
    assert heat.shape[0] == 2 and heat.shape[2:] == (64, 3) and heat.shape[1] > 64
    out = comfy.nodes["ADTTreeCompare"].execute(fast=fast.args[1], baseline=base.args[1])
    assert "speedup" in out.args[0] and out.ui.as_dict()["text"][0] == out.args[0]
