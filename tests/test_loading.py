"""Loading official-layout checkpoints: every wrapper format round-trips; every bad input fails clearly."""
import json
import os
import pickle

import pytest
import torch

from adt_core.errors import CheckpointError, InputError
from adt_core.models.load import load_draft_head, load_gpt, load_vq
from adt_core.pipeline import Pipeline
from tiny_models import save_draft_folder, save_gpt, save_vq, tiny_draft, tiny_gpt, tiny_vq


def same_weights(a, b):
    sa, sb = a.state_dict(), b.state_dict()
    return sa.keys() == sb.keys() and all(torch.equal(sa[k], sb[k]) for k in sa)


@pytest.mark.parametrize("wrapper", ["raw", "model", "module", "state_dict"])
def test_gpt_wrappers_round_trip(tmp_path, wrapper):
    gpt = tiny_gpt()
    path = save_gpt(gpt, str(tmp_path / f"c2i_tiny_{wrapper}.pt"), wrapper)
    assert same_weights(load_gpt(path), gpt)


def test_gpt_stale_keys_are_dropped_and_ema_is_opt_in(tmp_path):
    gpt = tiny_gpt()
    sd = dict(gpt.state_dict())
    sd["freqs_cis"] = torch.zeros(3)
    sd["layers.0.attention.kv_cache.k_cache"] = torch.zeros(2)
    ema = {k: v + 1 for k, v in gpt.state_dict().items()}
    path = str(tmp_path / "ckpt.pt")
    torch.save({"model": sd, "ema": ema, "steps": 5}, path)
    with open(str(tmp_path / "ckpt.json"), "w") as f:
        json.dump(gpt.config.to_dict(), f)
    assert same_weights(load_gpt(path), gpt)
    assert torch.equal(load_gpt(path, use_ema=True).norm.weight, gpt.norm.weight + 1)


def test_gpt_safetensors_with_embedded_config(tmp_path):
    from adt_core.models.checkpoint import save_safetensors
    gpt = tiny_gpt()
    path = str(tmp_path / "tiny.safetensors")
    save_safetensors(gpt.state_dict(), path, gpt.config.to_dict())
    loaded = load_gpt(path)
    assert same_weights(loaded, gpt) and loaded.config.grid_rows == 4


def test_official_size_detected_from_shapes(tmp_path):
    """A GPT-B-width file (dim 768 -> 12 heads) with no config: sizes from shapes, grid from the name."""
    from adt_core.models.gpt import GPT, GPTConfig
    cfg = GPTConfig(dim=768, n_layer=1, n_head=12, vocab_size=64, num_classes=5, grid_rows=24, grid_cols=24)
    gpt = GPT(cfg)
    path = str(tmp_path / "c2i_B_384.pt")
    torch.save({"model": gpt.state_dict()}, path)
    loaded = load_gpt(path)
    c = loaded.config
    assert (c.n_head, c.n_layer, c.num_classes, c.grid_rows, c.ffn_hidden) == (12, 1, 5, 24, 2048)
    assert load_gpt(path, image_size=256).config.grid_rows == 16
    with pytest.raises(InputError, match="not a positive multiple"):
        load_gpt(path, image_size=250)


@pytest.mark.parametrize("fmt", ["bin", "safetensors"])
def test_draft_head_folder_round_trip(tmp_path, fmt):
    draft = tiny_draft(tiny_gpt())
    folder = save_draft_folder(draft, str(tmp_path / "head"), fmt)
    loaded = load_draft_head(folder)
    assert same_weights(loaded, draft) and loaded.config.bias


def test_vq_round_trip_with_usage_buffer_and_detection(tmp_path):
    vq = tiny_vq()
    path = save_vq(vq, str(tmp_path / "vq_ds16_tiny.pt"))
    loaded = load_vq(path)            # decoder only; shapes detected (ch 32, 5 levels)
    assert loaded.config.downsample == 16 and loaded.config.ch == 32 and not hasattr(loaded, "encoder")
    codes = torch.randint(0, 64, (1, 16))
    assert torch.allclose(loaded.decode_codes(codes, 4, 4), vq.decode_codes(codes, 4, 4), atol=1e-6)
    assert same_weights(load_vq(path, with_encoder=True), vq)


def test_vq8_layout_detected(tmp_path):
    vq = tiny_vq(ch_mult=(1, 2, 2, 4))
    loaded = load_vq(save_vq(vq, str(tmp_path / "vq_ds8.pt")))
    assert loaded.config.downsample == 8 and loaded.config.ch_mult == [1, 2, 2, 4]


# --- bad input -----------------------------------------------------------------------------------------
def test_not_a_checkpoint(tmp_path):
    p = tmp_path / "notes.pt"
    p.write_bytes(b"this is not a checkpoint at all" * 10)
    with pytest.raises(CheckpointError, match="notes.pt"):
        load_gpt(str(p))


def test_truncated_file(tmp_path):
    path = save_gpt(tiny_gpt(), str(tmp_path / "full.pt"))
    data = open(path, "rb").read()
    cut = tmp_path / "cut.pt"
    cut.write_bytes(data[: len(data) // 2])
    with pytest.raises(CheckpointError, match="cut.pt.*(truncated|not a valid)"):
        load_gpt(str(cut))


class Payload:
    def __reduce__(self):
        return (os.system, ("echo should-never-run",))


def test_pickle_that_needs_code_execution_is_refused(tmp_path):
    p = tmp_path / "evil.pt"
    torch.save({"model": {"x": Payload()}}, str(p))
    with pytest.raises(CheckpointError, match="evil.pt.*code execution"):
        load_gpt(str(p))
    q = tmp_path / "evil_plain.pkl"
    q.write_bytes(pickle.dumps(Payload()))
    with pytest.raises(CheckpointError, match="evil_plain.pkl"):
        load_gpt(str(q))


def test_corrupt_safetensors(tmp_path):
    p = tmp_path / "bad.safetensors"
    p.write_bytes(b"\x10\x00\x00\x00\x00\x00\x00\x00{not json}......")
    with pytest.raises(CheckpointError, match="bad.safetensors"):
        load_gpt(str(p))


def test_wrong_model_kinds(tmp_path):
    vq_path = save_vq(tiny_vq(), str(tmp_path / "vq.pt"))
    with pytest.raises(CheckpointError, match="vq.pt.*not a LlamaGen GPT"):
        load_gpt(vq_path)
    gpt_path = save_gpt(tiny_gpt(), str(tmp_path / "gpt.pt"))
    with pytest.raises(CheckpointError, match="gpt.pt.*not a LlamaGen VQ"):
        load_vq(gpt_path)
    with pytest.raises(CheckpointError, match="config.json"):
        os.makedirs(tmp_path / "empty_head")
        torch.save({"fc.weight": torch.zeros(2, 4)}, str(tmp_path / "empty_head" / "pytorch_model.bin"))
        load_draft_head(str(tmp_path / "empty_head"))


def test_shape_mismatch_names_keys(tmp_path):
    gpt = tiny_gpt()
    sd = dict(gpt.state_dict())
    sd["norm.weight"] = torch.ones(7)
    del sd["output.weight"]
    path = str(tmp_path / "broken.pt")
    torch.save({"model": sd}, path)
    with open(str(tmp_path / "broken.json"), "w") as f:
        json.dump(gpt.config.to_dict(), f)
    with pytest.raises(CheckpointError, match="broken.pt.*missing keys: output.weight.*norm.weight"):
        load_gpt(path)


def test_mismatched_model_set(tmp_path):
    gpt_path = save_gpt(tiny_gpt(vocab=64), str(tmp_path / "gpt.pt"))
    vq_path = save_vq(tiny_vq(codebook=32), str(tmp_path / "vq.pt"))
    with pytest.raises(InputError, match="32 codes.*64 tokens"):
        Pipeline.load(gpt_path, vq_path, device="cpu", dtype="fp32")
    good_vq = save_vq(tiny_vq(codebook=64), str(tmp_path / "vq64.pt"))
    head = save_draft_folder(tiny_draft(tiny_gpt(vocab=64, dim=32, n_head=4)), str(tmp_path / "head32"))
    with pytest.raises(InputError, match="hidden 32.*hidden 64"):
        Pipeline.load(gpt_path, good_vq, head, device="cpu", dtype="fp32")


def test_class_label_out_of_range_and_bad_image_size(tmp_path):
    from adt_core.engine.sampling import SamplingConfig
    from adt_core.pipeline import SpecOptions
    gpt_path = save_gpt(tiny_gpt(classes=10), str(tmp_path / "gpt.pt"))
    vq_path = save_vq(tiny_vq(), str(tmp_path / "vq.pt"))
    pipe = Pipeline.load(gpt_path, vq_path, device="cpu", dtype="fp32")
    with pytest.raises(InputError, match=r"\[10\] out of range.*0\.\.9"):
        pipe.generate([3, 10], SpecOptions("vanilla"), SamplingConfig())
    with pytest.raises(InputError, match="gpt.pt.*image size 128 is not supported"):
        Pipeline.load(gpt_path, vq_path, image_size=128, device="cpu", dtype="fp32")
