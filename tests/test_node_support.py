"""The ComfyUI nodes' non-glue logic (nodes/support.py), tested without ComfyUI on tiny random models."""
import importlib.util
import json
import os

import pytest
import torch

from adt_core.engine.hooks import Hooks
from adt_core.errors import InputError
from adt_core.pipeline import SpecOptions
from tiny_models import pipeline, save_draft_folder, tiny_draft, tiny_gpt, tiny_vq

_SPEC = importlib.util.spec_from_file_location(
    "adt_tree_node_support", os.path.join(os.path.dirname(__file__), "..", "nodes", "support.py"))
support = importlib.util.module_from_spec(_SPEC)
_SPEC.loader.exec_module(support)

NAMES = ["meadow", "seaside", "brick_wall", "desert"]


@pytest.fixture(scope="module")
def model():
    gpt = tiny_gpt(classes=len(NAMES), grid=(4, 4))
    gpt.config.extra["classes"] = NAMES
    return support.ARModel(pipeline(gpt, vq=tiny_vq()), "tiny.safetensors")


@pytest.fixture(scope="module")
def draft(model):
    return support.ARDraftHead(tiny_draft(model.pipeline.target.gpt), "tiny_head")


# --- inputs -----------------------------------------------------------------------------------------
def test_class_labels_accept_numbers_names_and_separators():
    assert support.parse_class_labels("2", NAMES, 4) == [2]
    assert support.parse_class_labels(" 3, meadow;Brick Wall\nbrick-wall ", NAMES, 4) == [3, 0, 2, 2]
    assert support.parse_class_labels("207, 360", (), 1000) == [207, 360]


@pytest.mark.parametrize("text,names,n,message", [
    ("", NAMES, 4, "no class label"),
    (" , ", NAMES, 4, "no class label"),
    ("lake", NAMES, 4, "meadow, seaside"),
    ("meadow", (), 1000, "no class names"),
    ("4", NAMES, 4, "out of range"),
    ("-1", NAMES, 4, "out of range"),
])
def test_class_label_errors_say_what_is_valid(text, names, n, message):
    with pytest.raises(ValueError, match=message):
        support.parse_class_labels(text, names, n)


def test_batch_size_repeats_each_label():
    assert support.repeat_labels([5, 1], 3) == [5, 5, 5, 1, 1, 1]
    with pytest.raises(ValueError):
        support.repeat_labels([5], 0)


def test_settings_chain_into_spec_options_without_mutating_upstream():
    tree = support.tree_settings(None, depth=4, width=6, node_budget=0)
    assert tree == {"depth": 4, "width": 6, "node_budget": "auto"}
    adt = support.adt_settings(tree, "window", 1, 6, 2, 12, 3, 5, 0.25)
    full = support.lantern_settings(adt, 50, 0.2, 2.0, True)
    assert "lantern_k" not in adt and "adt_variant" not in tree  # upstream dicts unchanged
    o = support.spec_options("adt", full, has_draft=True)
    assert isinstance(o, SpecOptions)
    assert (o.method, o.depth, o.node_budget, o.adt_variant, o.adt_depth_max, o.adt_width_init) == \
        ("adt", 4, "auto", "window", 6, 5)
    assert (o.lantern_k, o.lantern_delta, o.lantern_lambda, o.lantern_legacy) == (50, 0.2, 2.0, True)


def test_without_settings_the_model_defaults_apply_as_in_the_cli():
    plain = support.spec_options("eagle2", None, has_draft=True)
    assert plain == SpecOptions("eagle2", node_budget="auto")  # as the CLI (deterministic profiles)
    shipped = {"adt_defaults": {"depth": 6, "width": 4, "node_budget": 40, "adt_depth_max": 9, "unknown": 1}}
    o = support.spec_options("adt", {"width": 3}, has_draft=True, model_extra=shipped)
    assert (o.depth, o.width, o.node_budget, o.adt_depth_max) == (6, 3, 40, 9)
    assert (o.adt_depth_init, o.adt_width_init) == (6, 4)  # initial tree = the model's default tree


@pytest.mark.parametrize("call,message", [
    (lambda: support.adt_settings(None, "bisect", 5, 4, 2, 16, 5, 10, 0.5), "depth"),
    (lambda: support.adt_settings(None, "bisect", 2, 8, 2, 16, 5, 20, 0.5), "width"),
    (lambda: support.adt_settings(None, "spiral", 2, 8, 2, 16, 5, 10, 0.5), "variant"),
    (lambda: support.lantern_settings(None, 10, 0.1, 0.5, False), "lambda"),
    (lambda: support.merge_settings(None, depht=3), "depht"),
    (lambda: support.spec_options("adt", None, has_draft=False), "needs a draft head"),
    (lambda: support.spec_options("medusa", None, has_draft=True), "method must be one of"),
])
def test_settings_errors(call, message):
    with pytest.raises(ValueError, match=message):
        call()


def test_vanilla_needs_no_draft_and_precision_follows_device():
    assert support.spec_options("vanilla", None, has_draft=False).method == "vanilla"
    assert support.choose_precision("auto", bf16_ok=True, fp16_ok=True) == "bf16"
    assert support.choose_precision("auto", bf16_ok=False, fp16_ok=True) == "fp16"
    assert support.choose_precision("auto", bf16_ok=False, fp16_ok=False) == "fp32"
    assert support.choose_precision("fp16", bf16_ok=True, fp16_ok=True) == "fp16"
    with pytest.raises(ValueError):
        support.choose_precision("int8", True, True)
    assert support.parse_image_size("auto") is None and support.parse_image_size("384") == 384


# --- model files ------------------------------------------------------------------------------------
def test_model_folder_listing(tmp_path):
    a, b = tmp_path / "a", tmp_path / "b"
    (a / "sub").mkdir(parents=True)
    b.mkdir()
    for p in (a / "c2i_L_256.pt", a / "sub" / "x.safetensors", a / "notes.txt", a / "c2i_L_256.json", b / "z.bin"):
        p.write_text("x")
    assert support.list_weight_files([str(a), str(b), str(tmp_path / "missing")]) == \
        ["c2i_L_256.pt", "sub/x.safetensors", "z.bin"]
    assert support.find_entry([str(a), str(b)], "sub/x.safetensors") == str(a / "sub" / "x.safetensors")
    assert support.find_entry([str(a), str(b)], "z.bin") == str(b / "z.bin")
    assert support.find_entry([str(a)], "nope.pt") is None


def test_draft_head_listing_shows_folders_and_loose_files(tmp_path):
    for folder in ("lantern_xl", "family/eagle_l"):
        (tmp_path / folder).mkdir(parents=True)
        (tmp_path / folder / "config.json").write_text("{}")
        (tmp_path / folder / "model.safetensors").write_text("x")
    (tmp_path / "loose.pth").write_text("x")
    (tmp_path / "family" / "single.bin").write_text("x")
    (tmp_path / "readme.md").write_text("x")
    assert support.list_draft_heads([str(tmp_path)]) == \
        ["family/eagle_l", "family/single.bin", "lantern_xl", "loose.pth"]


def test_missing_weights_errors_name_the_folder(tmp_path, monkeypatch):
    msg = support.missing_file_message("AR model", "c2i_XL_384.pt", "ar_models", ["/comfy/models/ar_models"])
    assert "models/ar_models" in msg and "c2i_XL_384.pt" in msg and "/comfy/models/ar_models" in msg
    monkeypatch.setenv(support.DEMO_DIR_ENV, str(tmp_path))
    with pytest.raises(FileNotFoundError, match="train-demo"):
        support.demo_weights()


def test_draft_head_is_checked_against_the_model(tmp_path, model):
    gpt = model.pipeline.target.gpt
    good = save_draft_folder(tiny_draft(gpt), str(tmp_path / "good"), fmt="safetensors")
    head = support.load_draft_for(model, good, "good")
    assert head.config.hidden_size == gpt.config.dim
    other = tiny_gpt(vocab=64, dim=32, n_head=4)
    bad = save_draft_folder(tiny_draft(other), str(tmp_path / "bad"), fmt="safetensors")
    with pytest.raises(InputError, match="does not fit the model"):
        support.load_draft_for(model, bad, "bad")
    t2i_head = tiny_draft(gpt)
    t2i_head.config.input_type = "t2i"
    other_family = save_draft_folder(t2i_head, str(tmp_path / "t2i"), fmt="safetensors")
    with pytest.raises(InputError, match="trained for"):
        support.load_draft_for(model, other_family, "t2i")


def test_with_draft_leaves_the_loaded_model_alone(model, draft):
    pipe = support.with_draft(model, draft)
    assert pipe.draft is draft.head and pipe.target is model.pipeline.target
    assert model.pipeline.draft is None and model.pipeline.names.get("draft", "") == ""
    assert support.with_draft(model, None).draft is None


def test_kv_estimate_grows_with_batch_only_for_vanilla(model):
    one = support.kv_cache_bytes(model.pipeline, 1, "adt", cfg=True)
    assert one > 0
    assert support.kv_cache_bytes(model.pipeline, 4, "adt", cfg=True) == one
    assert support.kv_cache_bytes(model.pipeline, 4, "vanilla", cfg=True) == 4 * one
    assert support.kv_cache_bytes(model.pipeline, 1, "adt", cfg=False) * 2 == one


# --- progress and previews --------------------------------------------------------------------------
class FakeClock:
    def __init__(self):
        self.t = 0.0

    def __call__(self):
        return self.t


def test_tracker_throttles_previews_and_always_previews_complete_images():
    clock, updates, renders = FakeClock(), [], []

    def render(i, toks):
        renders.append((i, list(toks)))
        clock.t += 0.1  # decoding takes 0.1 s -> next preview no sooner than 0.4 s later
        return f"img{len(renders)}"

    tr = support.ProgressTracker(2, 4, lambda v, t, p: updates.append((v, t, p)), render, interval=0.3, clock=clock)
    tr(0, 1, 4, [7])
    clock.t += 0.2
    tr(0, 3, 4, [7, 8, 9])
    clock.t += 0.25
    tr(0, 4, 4, [7, 8, 9, 1])   # complete: preview even though throttled
    tr(1, 2, 4, [5, 5])          # throttled
    clock.t += 0.5
    tr(1, 3, 4, [5, 5, 6])
    assert [u[:2] for u in updates] == [(1, 8), (3, 8), (4, 8), (6, 8), (7, 8)]
    assert [u[2] for u in updates] == ["img1", None, "img2", None, "img3"]
    assert renders == [(0, [7]), (0, [7, 8, 9, 1]), (1, [5, 5, 6])]
    assert tr.tokens == [[7, 8, 9, 1], [5, 5, 6]]


def test_tracker_follows_the_real_vanilla_batch_and_speculative_loops(model, draft):
    for method, pipe in (("vanilla", model.pipeline), ("eagle2", support.with_draft(model, draft))):
        seen = []
        tr = support.ProgressTracker(3, 16, lambda v, t, p: seen.append((v, t)), batched=method == "vanilla")
        snapshots = []
        hooks = Hooks(progress=lambda *a: (tr(*a), snapshots.append([list(t) for t in tr.tokens])))
        result = pipe.generate([0, 1, 2], SpecOptions(method, depth=3, width=2, node_budget=6),
                               support.sampling_config(1.0, 0, 1.0, 2.0), seed=3, hooks=hooks, decode=False)
        assert tr.tokens == result.tokens
        for snap in snapshots:  # every intermediate state is a prefix of the final tokens
            assert all(row == final[:len(row)] for row, final in zip(snap, result.tokens))
        values = [v for v, _ in seen]
        assert values == sorted(values) and values[-1] == 48 and {t for _, t in seen} == {48}
        if method == "vanilla":
            assert [len(s[2]) for s in snapshots[:15]] == list(range(1, 16))  # the whole batch advances


def test_partial_image_decodes_generated_rows_and_greys_the_rest(model):
    pipe = model.pipeline
    tokens = [(7 * i) % 64 for i in range(16)]
    full = support.partial_image(pipe, tokens)
    assert full.shape == (64, 64, 3) and full.dtype == torch.float32
    assert torch.allclose(full, pipe.decode([tokens])[0], atol=1e-5)
    part = support.partial_image(pipe, tokens[:6])  # 4x4 grid, 16 px cells: row 0 full, row 1 half
    assert torch.all(part[32:] == 0.5) and torch.all(part[16:32, 32:] == 0.5)
    assert not torch.all(part[:16] == 0.5) and not torch.all(part[16:32, :32] == 0.5)
    pil = support.to_pil(part)
    assert pil.size == (64, 64) and pil.mode == "RGB"


# --- stats ------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def runs(model, draft):
    labels = [1, 3]
    sampling = support.sampling_config(1.0, 0, 1.0, 2.0)
    fast_opts = support.spec_options("eagle2", support.tree_settings(None, 3, 2, 6), True)
    fast = support.with_draft(model, draft).generate(labels, fast_opts, sampling, seed=5)
    base_opts = support.spec_options("vanilla", None, False)
    base = model.pipeline.generate(labels, base_opts, sampling, seed=5)
    return (support.stats_record(fast, model, draft, fast_opts, labels, 5),
            support.stats_record(base, model, draft, base_opts, labels, 5), fast)


def test_stats_record_is_json_and_describes_the_run(runs):
    fast, base, result = runs
    again = json.loads(support.stats_json(fast))
    assert again == fast
    assert (fast["model"], fast["draft"], fast["method"], fast["seed"]) == \
        ("tiny.safetensors", "tiny_head", "eagle2", 5)
    assert base["draft"] == "" and base["method"] == "vanilla"
    assert fast["class_names"] == ["seaside", "desert"] and fast["grid"] == [4, 4] and fast["image_size"] == 64
    assert len(fast["per_image"]) == 2 and fast["summary"]["tokens"] == 32
    assert sum(map(sum, fast["per_image"][0]["accepted_length_grid"])) == 16
    assert fast["options"]["depth"] == 3 and "adt_variant" not in fast["options"]
    assert result.images.shape == (2, 64, 64, 3)


def test_stats_text_has_summary_and_one_line_per_image(runs):
    text = support.stats_text(runs[0])
    lines = text.splitlines()
    assert lines[0].startswith("eagle2: 2 image(s), 32 tokens")
    assert len(lines) == 3 and "seaside" in lines[1] and "desert" in lines[2]


def test_stats_go_into_extra_pnginfo_per_sampler_node(runs):
    fast, base, _ = runs
    info = {"workflow": {"nodes": []}}
    support.add_to_pnginfo(info, "7", fast)
    support.add_to_pnginfo(info, 12, base)
    assert set(info) == {"workflow", support.PNGINFO_KEY}
    assert info[support.PNGINFO_KEY]["7"]["method"] == "eagle2"
    assert info[support.PNGINFO_KEY]["12"]["method"] == "vanilla"
    json.dumps(info)  # SaveImage json.dumps every key
    support.add_to_pnginfo(None, "7", fast)  # API prompts without extra_pnginfo: nothing to do


def test_heatmap_batch_layout(runs):
    fast, _, result = runs
    alone = support.heatmap_batch(fast)
    assert alone.shape[0] == 2 and alone.shape[2] == 64 and alone.shape[3] == 3 and alone.shape[1] > 64
    assert alone.dtype == torch.float32 and 0 <= alone.min() and alone.max() <= 1
    over = support.heatmap_batch(fast, result.images, alpha=0.0)  # alpha 0: only the image shows
    assert over.shape == alone.shape
    assert torch.allclose(over[:, :64], result.images, atol=1 / 255 + 1e-6)
    three = {**fast, "per_image": fast["per_image"] + fast["per_image"][:1]}
    with pytest.raises(ValueError, match="2 images but stats for 3"):
        support.heatmap_batch(three, result.images)
    assert support.heatmap_batch(three, result.images[:1]).shape[0] == 3  # one image under every map


def test_compare_text_reports_speedup_and_flags_unlike_runs(runs):
    fast, base, _ = runs
    text = support.compare_text(fast, base)
    assert "vanilla" in text and "eagle2" in text and "speedup" in text and "note:" not in text
    other = dict(base, seed=6, labels=[0, 0])
    flagged = support.compare_text(fast, other)
    assert "different class labels" in flagged and "different seeds" in flagged
