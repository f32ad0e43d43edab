"""The T5 text path of LlamaGen t2i: stdlib caption cleaning, a local T5 encoder folder (built here: a
tiny T5Config and a word-level tokenizer), left padding and masks, and the CLI from prompts to PNGs."""
import os

import pytest
import torch

pytest.importorskip("transformers")
pytest.importorskip("tokenizers")

from adt_core.cli import main  # noqa: E402
from adt_core.errors import CheckpointError, InputError  # noqa: E402
from adt_core.text.clean import clean_prompt  # noqa: E402
from adt_core.text.t5 import T5TextEncoder  # noqa: E402

WORDS = ["<pad>", "</s>", "<unk>"] + ("a red cat on the mat blue dog sky under big small green tree , . "
                                       "photo of").split()


@pytest.fixture(scope="module")
def t5_folder(tmp_path_factory) -> str:
    from tokenizers import Tokenizer, models, pre_tokenizers, processors
    from transformers import PreTrainedTokenizerFast, T5Config, T5EncoderModel
    folder = str(tmp_path_factory.mktemp("flan-t5-tiny"))
    tok = Tokenizer(models.WordLevel({w: i for i, w in enumerate(WORDS)}, unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    tok.post_processor = processors.TemplateProcessing(single="$A </s>", special_tokens=[("</s>", 1)])
    PreTrainedTokenizerFast(tokenizer_object=tok, pad_token="<pad>", eos_token="</s>",
                            unk_token="<unk>").save_pretrained(folder)
    torch.manual_seed(0)
    cfg = T5Config(vocab_size=len(WORDS), d_model=16, d_kv=4, num_heads=4, d_ff=32, num_layers=2,
                   pad_token_id=0, eos_token_id=1, decoder_start_token_id=0)
    T5EncoderModel(cfg).save_pretrained(folder)
    return folder


def test_clean_prompt():
    assert clean_prompt("  A  <b>Red</b> CAT on the mat!!  ") == "a red cat on the mat!!"
    assert clean_prompt("Visit https://example.com/x?y=1 for a Blue&nbsp;Dog &amp; cat") == "visit for a blue dog cat"
    assert clean_prompt("“Quoted” — text @someone") == '"quoted" - text'
    assert clean_prompt("this-is-a-slug-like-caption") == "this is a slug like caption"
    assert clean_prompt("a%20photo+of,a dog") == "a photo of, a dog"


def test_encoder_left_pads_zeroes_padding_and_matches_unpadded_runs(t5_folder):
    enc = T5TextEncoder.load(t5_folder, "cpu")
    assert enc.dim == 16 and enc.model.dtype == torch.float32  # fp32 on the CPU
    prompts = ["A  Red <b>cat</b>", "blue dog on the mat under a big green tree"]
    cond = enc.encode(prompts)
    assert cond.values.shape == (2, 120, 16) and cond.mask.shape == (2, 120)
    lengths = [4, 11]  # words + EOS
    for row, n in enumerate(lengths):
        assert cond.mask[row].sum() == n and cond.mask[row, -n:].all()  # left-padded
        assert not cond.values[row, :-n].any()  # padded rows are exactly zero
    ids = enc.tokenizer(["a red cat"], return_tensors="pt")["input_ids"]
    with torch.no_grad():
        alone = enc.model(input_ids=ids).last_hidden_state[0]
    assert ids.shape[1] == 4 and torch.allclose(cond.values[0, -4:], alone, atol=1e-5)
    long = enc.encode(["red " * 200])
    assert long.mask.all()  # truncated to exactly 120 tokens


def test_encoder_folder_errors(tmp_path):
    with pytest.raises(CheckpointError, match="nowhere.*T5 folder not found.*nothing is downloaded"):
        T5TextEncoder.load(str(tmp_path / "nowhere"))
    os.makedirs(tmp_path / "empty")
    with pytest.raises(CheckpointError, match="empty.*no config.json"):
        T5TextEncoder.load(str(tmp_path / "empty"))


def test_cli_generates_from_prompts(tmp_path, t5_folder, capsys):
    from test_t2i import t2i_draft, tiny_t2i
    from adt_core.training.draft_io import save_draft
    from tiny_models import save_gpt, save_vq, tiny_vq
    gpt = tiny_t2i(T=120, seed=3)
    g = save_gpt(gpt, str(tmp_path / "t2i_tiny.pt"))
    v = save_vq(tiny_vq(ch_mult=(1, 1)), str(tmp_path / "vq.pt"))
    save_draft(t2i_draft(gpt), str(tmp_path / "head"))
    base = ["--gpt", g, "--vq", v, "--t5", t5_folder, "--device", "cpu", "--dtype", "fp32", "--temperature", "0"]
    out = str(tmp_path / "imgs")
    assert main(["generate", *base, "--draft", str(tmp_path / "head"), "--method", "eagle2", "--depth", "3",
                 "--node-budget", "6", "--prompt", "a red cat", "blue dog under the sky", "--out", out,
                 "--tokens", str(tmp_path / "spec.json")]) == 0
    assert sorted(os.listdir(out))[:2] == ["0000.png", "0001.png"]
    assert main(["generate", *base, "--method", "vanilla", "--prompt", "a red cat", "blue dog under the sky",
                 "--out", str(tmp_path / "v"), "--tokens", str(tmp_path / "van.json")]) == 0
    import json
    assert json.load(open(tmp_path / "spec.json")) == json.load(open(tmp_path / "van.json"))
    capsys.readouterr()
    assert main(["generate", "--gpt", g, "--vq", v, "--device", "cpu", "--prompt", "a cat",
                 "--out", str(tmp_path / "x")]) == 2
    assert "needs a local T5 encoder folder" in capsys.readouterr().err
    assert main(["generate", *base, "--class-label", "3", "--out", str(tmp_path / "y")]) == 2
    assert "give --prompt" in capsys.readouterr().err


def test_encoder_width_must_match_the_model(tmp_path, t5_folder):
    from tiny_models import save_gpt, save_vq, tiny_gpt, tiny_vq
    from adt_core.models.gpt import GPT, GPTConfig
    from adt_core.pipeline import Pipeline
    gpt = GPT(GPTConfig(dim=32, n_layer=1, n_head=4, vocab_size=64, model_type="t2i", cls_token_num=120,
                        caption_dim=24, grid_rows=4, grid_cols=4, ffn_hidden=64))
    g = save_gpt(gpt, str(tmp_path / "t2i_24.pt"))
    v = save_vq(tiny_vq(ch_mult=(1, 1)), str(tmp_path / "vq.pt"))
    with pytest.raises(InputError, match="16-d features but the model expects caption_dim 24"):
        Pipeline.load(g, v, device="cpu", dtype="fp32", t5=t5_folder)
    c2i = save_gpt(tiny_gpt(), str(tmp_path / "c2i.pt"))
    with pytest.raises(InputError, match="class-conditional"):
        Pipeline.load(c2i, v, device="cpu", dtype="fp32", t5=t5_folder)


def test_cli_train_draft_from_a_prompt_file(tmp_path, t5_folder):
    import json
    from test_t2i import tiny_t2i
    from tiny_models import save_gpt, save_vq, tiny_vq
    g = save_gpt(tiny_t2i(T=120, seed=5), str(tmp_path / "t2i_tiny.pt"))
    v = save_vq(tiny_vq(ch_mult=(1, 1)), str(tmp_path / "vq.pt"))
    (tmp_path / "prompts.txt").write_text("a red cat\nblue dog under the sky\na small green tree\n")
    out = str(tmp_path / "head")
    assert main(["train-draft", "--gpt", g, "--vq", v, "--t5", t5_folder, "--prompt-file",
                 str(tmp_path / "prompts.txt"), "--device", "cpu", "--dtype", "fp32", "--samples", "9",
                 "--held-out", "3", "--steps", "5", "--batch", "3", "--out", out, "--quiet"]) == 0
    cfg = json.load(open(os.path.join(out, "config.json")))
    assert cfg["input_type"] == "t2i" and cfg["adt_training"]["sampling"]["cfg_scale"] == 7.5  # t2i defaults
    assert cfg["adt_training"]["held_out"]["positions"] == 3 * 16
