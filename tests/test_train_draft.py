"""`adt-tree train-draft`: self-distillation on tiny targets of every family raises held-out acceptance above
an untrained head's; the saved head loads, records its family and decodes losslessly; resume is exact."""
import json
import os

import pytest
import torch

from adt_core.adapters.llamagen import LlamaGenTarget
from adt_core.cli import main
from adt_core.engine.sampling import SamplingConfig
from adt_core.models.draft_head import DraftHead
from adt_core.models.load import load_draft_head
from adt_core.pipeline import Pipeline, SpecOptions
from adt_core.training import draft_trainer
from adt_core.training.distill import DistillSettings, run_train_draft
from tiny_models import save_gpt, save_vq, tiny_gpt, tiny_vq


def trained_report(folder) -> dict:
    return json.load(open(os.path.join(folder, "config.json")))["adt_training"]


def test_cli_trains_a_c2i_head_that_beats_an_untrained_one(tmp_path, capsys):
    g = save_gpt(tiny_gpt(grid=(4, 4), seed=3), str(tmp_path / "gpt.pt"))
    v = save_vq(tiny_vq(ch_mult=(1, 1)), str(tmp_path / "vq.pt"))
    out = str(tmp_path / "head")
    args = ["train-draft", "--gpt", g, "--vq", v, "--device", "cpu", "--dtype", "fp32", "--samples", "40",
            "--held-out", "8", "--steps", "60", "--batch", "4", "--grad-accum", "2", "--lr", "3e-3", "--out", out,
            "--quiet", "--temperature", "1", "--top-k", "0", "--cfg-scale", "4"]
    assert main(args) == 0
    rep = trained_report(out)
    before, after = rep["held_out_untrained"], rep["held_out"]
    assert after["expected_acceptance_t1"] > before["expected_acceptance_t1"] + 0.15
    assert after["top1_agreement"] > before["top1_agreement"] + 0.15
    cfg = json.load(open(os.path.join(out, "config.json")))
    assert cfg["input_type"] == "c2i" and cfg["num_hidden_layers"] == 1 and rep["samples"] == 40
    assert sorted(f for f in os.listdir(os.path.join(out, "train")) if f.startswith("samples_")) == \
        [f"samples_{k:05d}.safetensors" for k in range(5)]
    pipe = Pipeline.load(g, v, out, device="cpu", dtype="fp32")
    s = SamplingConfig(temperature=0, cfg_scale=4.0)
    ref = pipe.generate([1, 2], SpecOptions("vanilla"), s, decode=False).tokens
    spec = pipe.generate([1, 2], SpecOptions("eagle2", depth=4, width=4, node_budget=12), s, decode=False)
    assert spec.tokens == ref and max(st.mean_accepted_length for st in spec.stats) > 1.3
    capsys.readouterr()
    assert main(args) == 2  # the folder holds a run: refuse to overwrite it silently
    assert "already holds a train-draft run; pass --resume" in capsys.readouterr().err
    assert main(["train-draft", "--gpt", g, "--vq", v, "--device", "cpu", "--prompt", "a cat", "--out",
                 str(tmp_path / "x")]) == 2
    assert "class-conditional: use --class-label" in capsys.readouterr().err


def test_resume_after_an_interruption_equals_an_uninterrupted_run(tmp_path, monkeypatch):
    gpt = tiny_gpt(grid=(4, 4), seed=4)
    target = LlamaGenTarget(gpt)
    tokens = torch.randint(0, 64, (12, 16), generator=torch.Generator().manual_seed(0))
    data = draft_trainer.collect_features(target, torch.arange(12) % 10, tokens, show_progress=False)
    cfg = draft_trainer.draft_config_for(target)

    def run(ckpt, resume):
        torch.manual_seed(0)
        head = DraftHead(cfg)
        draft_trainer.train_draft(head, target, data, 30, 4, 1e-3, 4.0, seed=1, show_progress=False,
                                  held_out=2, checkpoint=ckpt, checkpoint_every=10, resume=resume)
        return head

    straight = run(str(tmp_path / "a.pt"), False)
    calls, real = {"n": 0}, draft_trainer.draft_losses

    def crash_at_step_25(*a, **k):
        calls["n"] += 1
        if calls["n"] > 25:
            raise KeyboardInterrupt
        return real(*a, **k)
    monkeypatch.setattr(draft_trainer, "draft_losses", crash_at_step_25)
    with pytest.raises(KeyboardInterrupt):
        run(str(tmp_path / "b.pt"), False)
    monkeypatch.setattr(draft_trainer, "draft_losses", real)
    assert torch.load(str(tmp_path / "b.pt"), weights_only=True)["step"] == 20
    resumed = run(str(tmp_path / "b.pt"), True)
    for k, v in straight.state_dict().items():
        assert torch.allclose(v, resumed.state_dict()[k], atol=1e-6), k


def test_janus_head_with_prompts_of_different_lengths(tmp_path):
    pytest.importorskip("transformers")
    from test_janus import BOI, BOS, tiny_janus
    from adt_core.adapters.janus import JanusTarget
    target = JanusTarget(tiny_janus(seed=9))
    pipe = Pipeline(target, names={"gpt": "tiny-janus"})
    prompts = [[BOS, 10, BOI], [BOS, 20, 21, 22, 23, BOI], [BOS, 30, 31, BOI], [BOS, 40, 41, 42, BOI]]
    settings = DistillSettings(samples=32, held_out=8, steps=80, batch=8, lr=3e-3, gen_batch=8, feature_batch=16)
    s = SamplingConfig(temperature=1.0, cfg_scale=4.0)
    res = run_train_draft(pipe, prompts, str(tmp_path / "janus_head"), s, settings, show_progress=False,
                          log=lambda *_: None)
    assert res["trained"]["expected_acceptance_t1"] > res["untrained"]["expected_acceptance_t1"] + 0.15
    head = load_draft_head(str(tmp_path / "janus_head"))
    assert head.config.input_type == "janus" and head.config.hidden_size == 32
    assert json.load(open(tmp_path / "janus_head" / "config.json"))["rope"] == "1d-interleaved"
    assert torch.allclose(head.embed_tokens.weight, target.draft_embedding_table(), atol=1e-3)  # fp16 file
    spec_pipe = Pipeline(target, None, head)
    g = SamplingConfig(temperature=0, cfg_scale=4.0)
    ask = [[BOS, 20, 21, 22, 23, BOI], [BOS, 10, BOI]]
    ref = spec_pipe.generate(ask, SpecOptions("vanilla"), g, decode=False).tokens
    out = spec_pipe.generate(ask, SpecOptions("eagle2", depth=4, width=4, node_budget=12), g, decode=False)
    assert out.tokens == ref and max(st.mean_accepted_length for st in out.stats) > 1.3


def test_t2i_head_from_caption_features(tmp_path):
    from test_t2i import captions, tiny_t2i
    target = LlamaGenTarget(tiny_t2i(seed=10))
    pipe = Pipeline(target)
    settings = DistillSettings(samples=24, held_out=6, steps=60, batch=6, lr=3e-3, gen_batch=12)
    res = run_train_draft(pipe, captions([2, 5, 8], seed=4), str(tmp_path / "t2i_head"),
                          SamplingConfig(temperature=1.0, cfg_scale=4.0), settings, show_progress=False,
                          log=lambda *_: None)
    assert res["trained"]["expected_acceptance_t1"] > res["untrained"]["expected_acceptance_t1"] + 0.1
    assert load_draft_head(str(tmp_path / "t2i_head")).config.input_type == "t2i"


def test_cli_janus_from_a_prompt_file(tmp_path):
    pytest.importorskip("tokenizers")
    from test_janus import save_folder, save_processor, tiny_janus
    folder = save_folder(tiny_janus(seed=12), tmp_path / "janus")
    save_processor(folder)
    prompts = tmp_path / "prompts.txt"
    prompts.write_text("# one per line\na red cat\n\nblue dog\na dog\n")
    out = str(tmp_path / "head")
    assert main(["train-draft", "--janus", folder, "--prompt-file", str(prompts), "--device", "cpu", "--dtype",
                 "fp32", "--samples", "12", "--held-out", "4", "--steps", "10", "--batch", "4", "--gen-batch", "6",
                 "--out", out, "--quiet"]) == 0
    rep = trained_report(out)
    assert rep["family"] == "janus" and rep["sampling"]["cfg_scale"] == 5.0  # the folder's generation config
    assert len([f for f in os.listdir(os.path.join(out, "train")) if f.startswith("samples_")]) == 2
    assert Pipeline.load_janus(folder, out, device="cpu", dtype="fp32").draft.config.input_type == "janus"
