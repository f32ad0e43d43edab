"""Janus-Pro through transformers: our cached/tree forward against transformers' own, the same greedy
images as `generate(generation_mode="image")`, speculative == vanilla, folder loading and bad inputs."""
import json
import os

import pytest
import torch

transformers = pytest.importorskip("transformers")
from transformers import GenerationConfig, JanusConfig, JanusForConditionalGeneration  # noqa: E402

from adt_core.adapters.janus import JanusTarget, load_janus  # noqa: E402
from adt_core.engine.sampling import SamplingConfig  # noqa: E402
from adt_core.errors import CheckpointError, InputError  # noqa: E402
from adt_core.models.draft_head import DraftHead  # noqa: E402
from adt_core.pipeline import Pipeline, SpecOptions  # noqa: E402
from adt_core.text.condition import MaskedCondition  # noqa: E402

BOS, PAD, BOI = 0, 1, 5


def tiny_janus(seed=0, std=0.3, layers=2, hidden=32, grid=4) -> JanusForConditionalGeneration:
    """A random Janus with a 4x4 token grid, 64 image codes, a 2-layer GQA Llama and a tiny VQ decoder."""
    cfg = JanusConfig(
        text_config=dict(model_type="llama", vocab_size=120, hidden_size=hidden, num_hidden_layers=layers,
                         num_attention_heads=4, num_key_value_heads=2, intermediate_size=48,
                         max_position_embeddings=256, pad_token_id=PAD, bos_token_id=BOS, rms_norm_eps=1e-6),
        vision_config=dict(image_size=4 * grid, patch_size=4, num_image_tokens=grid * grid, hidden_size=32,
                           projection_dim=hidden, num_hidden_layers=1, num_attention_heads=4, mlp_ratio=2),
        vq_config=dict(embed_dim=8, num_embeddings=64, latent_channels=8, base_channels=32,
                       channel_multiplier=[1, 1], projection_dim=hidden, image_token_embed_dim=hidden,
                       num_res_blocks=1),
        image_token_id=3)
    model = JanusForConditionalGeneration(cfg).eval()
    g = torch.Generator().manual_seed(seed)
    for name, p in model.named_parameters():
        if not (name.endswith("norm.weight") or "layernorm" in name):
            p.data = torch.randn(p.shape, generator=g) * std
    model.generation_config = GenerationConfig(bos_token_id=BOS, pad_token_id=PAD, boi_token_id=BOI,
                                               guidance_scale=5.0, temperature=1.0)
    return model


def tiny_janus_draft(target: JanusTarget, seed=1, std=0.1) -> DraftHead:
    head = DraftHead(target.draft_config(intermediate=64))
    g = torch.Generator().manual_seed(seed)
    for p in head.parameters():
        p.data = torch.randn(p.shape, generator=g) * std
    head.layers[0].post_attention_layernorm.weight.data.fill_(1.0)
    head.embed_tokens.weight.data = target.draft_embedding_table()
    return head.eval()


def hf_generate(model, ids, mask, scale):
    gc = GenerationConfig(bos_token_id=BOS, pad_token_id=PAD, do_sample=False, guidance_scale=scale,
                          generation_kwargs={"boi_token_id": BOI})
    return model.generate(ids, attention_mask=mask, generation_mode="image", generation_config=gc).tolist()


def test_prefill_and_tree_forward_match_transformers():
    model = tiny_janus()
    t = JanusTarget(model)
    ids = torch.tensor([[BOS, 10, 11, 12, 13, BOI]])
    img = torch.tensor([[7, 9, 11]])
    with torch.no_grad():
        emb = torch.cat([model.get_input_embeddings()(ids), model.prepare_embeddings_for_image_generation(img)], 1)
        ref = model.model.language_model(inputs_embeds=emb).last_hidden_state
        cond = t.validate_condition(ids)
        t.setup(1, 8)
        h0 = t.prefill(t.condition_batch(cond, False))
        h1 = t.forward(img, None, torch.ones(3, 3, dtype=torch.bool).tril())  # causal: a plain forward
        assert torch.allclose(torch.cat([h0, h1], 1), ref, atol=1e-5)
        # a tree: root 7 with children 9 and 4 (siblings at the same depth) -> each sees only its ancestors
        t.setup(1, 8)
        t.prefill(t.condition_batch(cond, False))
        tree = t.forward(torch.tensor([[7, 9, 4]]), torch.tensor([0, 1, 1]),
                         torch.tensor([[1, 0, 0], [1, 1, 0], [1, 0, 1]], dtype=torch.bool))
        assert torch.allclose(tree[:, :2], ref[:, 6:8], atol=1e-5)
        emb2 = torch.cat([model.get_input_embeddings()(ids), model.prepare_embeddings_for_image_generation(
            torch.tensor([[7, 4]]))], 1)
        ref2 = model.model.language_model(inputs_embeds=emb2).last_hidden_state
        assert torch.allclose(tree[:, 2], ref2[:, 7], atol=1e-5)
        t.keep([0, 2])  # compaction: the accepted path root -> 4 continues like plain decoding
        nxt = t.forward(torch.tensor([[11]]))
        emb3 = torch.cat([emb2, model.prepare_embeddings_for_image_generation(torch.tensor([[11]]))], 1)
        ref3 = model.model.language_model(inputs_embeds=emb3).last_hidden_state
        assert torch.allclose(nxt[:, 0], ref3[:, 8], atol=1e-5)
        assert torch.allclose(t.logits(nxt), model.model.generation_head(ref3[:, 8:]).float(), atol=1e-5)


@pytest.mark.parametrize("scale", [3.0, 5.0])
def test_vanilla_equals_transformers_generate(scale):
    """Greedy CFG decoding equals transformers' image generation, including the uncond batch (prompt tokens
    except BOS and <begin_of_image> replaced by pad) and left-padded prompts of different lengths."""
    model = tiny_janus(seed=2)
    pipe = Pipeline(JanusTarget(model))
    s = SamplingConfig(temperature=0, cfg_scale=scale)
    ids = torch.tensor([[PAD, PAD, BOS, 10, 11, BOI], [BOS, 20, 21, 22, 23, BOI]])
    mask = ids != PAD
    ours = pipe.generate(MaskedCondition(ids, mask), SpecOptions("vanilla"), s, decode=False).tokens
    assert ours == hf_generate(model, ids, mask.long(), scale)
    # id lists are left-padded by the adapter the same way
    assert pipe.generate([[BOS, 10, 11, BOI], [BOS, 20, 21, 22, 23, BOI]], SpecOptions("vanilla"), s,
                         decode=False).tokens == ours


TREES = [SpecOptions("eagle2", depth=4, width=3, node_budget=12), SpecOptions("static", static_tree="auto-8"),
         SpecOptions("adt", depth=3, width=3, node_budget="auto")]


@pytest.mark.parametrize("opt", TREES, ids=lambda o: o.method)
@pytest.mark.parametrize("scale", [4.0, 1.0])
def test_greedy_speculative_equals_vanilla(opt, scale):
    model = tiny_janus(seed=3)
    target = JanusTarget(model)
    pipe = Pipeline(target, None, tiny_janus_draft(target))
    s = SamplingConfig(temperature=0, cfg_scale=scale)
    prompts = [[BOS, 10, 11, 12, BOI], [BOS, 30, 31, 32, BOI]]
    ref = pipe.generate(prompts, SpecOptions("vanilla"), s, decode=False).tokens
    out = pipe.generate(prompts, opt, s, decode=False)
    assert out.tokens == ref
    assert all(sum(st.grid) == target.n_tokens for st in out.stats)


def test_sampling_with_lantern_on_the_janus_codebook():
    """Stochastic tree verification with LANTERN neighbours from Janus' (L2-normalised) codebook: one full
    image of valid codes, decoded by transformers' VQ decoder into [0, 1] pixels."""
    model = tiny_janus(seed=4)
    target = JanusTarget(model)
    pipe = Pipeline(target, None, tiny_janus_draft(target))
    s = SamplingConfig(temperature=1.0, cfg_scale=4.0)
    res = pipe.generate([[BOS, 10, BOI]], SpecOptions("eagle2", depth=3, width=3, node_budget=8, lantern_k=4,
                                                       lantern_delta=0.2), s, seed=1)
    assert len(res.tokens[0]) == 16 and all(0 <= x < 64 for x in res.tokens[0])
    assert res.images.shape == (1, 8, 8, 3) and 0 <= float(res.images.min()) <= float(res.images.max()) <= 1


def test_decode_matches_transformers():
    model = tiny_janus(seed=5)
    pipe = Pipeline(JanusTarget(model))
    toks = [list(range(16)), list(range(16, 32))]
    ours = pipe.decode(toks)
    ref = ((model.decode_image_tokens(torch.tensor(toks)).float() + 1) / 2).clamp(0, 1)
    assert torch.allclose(ours, ref.detach(), atol=1e-5)


def save_folder(model, folder) -> str:
    model.save_pretrained(folder)
    model.generation_config.save_pretrained(folder)
    return str(folder)


def test_load_folder_and_draft_family_checks(tmp_path):
    from adt_core.training.draft_io import save_draft
    folder = save_folder(tiny_janus(seed=6), tmp_path / "janus")
    pipe = Pipeline.load_janus(folder, device="cpu", dtype="fp32")
    assert pipe.target.grid == (4, 4) and pipe.target.vocab_size == 64 and pipe.target.hidden_size == 32
    assert pipe.target.sampling_defaults["default_cfg_scale"] == 5.0
    head = tiny_janus_draft(pipe.target)
    save_draft(head, str(tmp_path / "head"))
    assert json.load(open(tmp_path / "head" / "config.json"))["input_type"] == "janus"
    pipe2 = Pipeline.load_janus(folder, str(tmp_path / "head"), device="cpu", dtype="fp32")
    s = SamplingConfig(temperature=0, cfg_scale=3.0)
    ids = [[BOS, 40, 41, BOI]]
    assert pipe2.generate(ids, SpecOptions("eagle2", depth=3, width=2, node_budget=6), s, decode=False).tokens == \
        pipe2.generate(ids, SpecOptions("vanilla"), s, decode=False).tokens
    # a LlamaGen head (input_type c2i) of the same size is refused: wrong family
    head.config.input_type = "c2i"
    save_draft(head, str(tmp_path / "c2i_head"))
    with pytest.raises(InputError, match="c2i_head.*class-to-image.*Janus-Pro"):
        Pipeline.load_janus(folder, str(tmp_path / "c2i_head"), device="cpu", dtype="fp32")
    # a Janus head for another size (hidden 48) is refused: wrong size
    other = JanusTarget(tiny_janus(hidden=48))
    save_draft(tiny_janus_draft(other), str(tmp_path / "big_head"))
    with pytest.raises(InputError, match="hidden 48.*hidden 32"):
        Pipeline.load_janus(folder, str(tmp_path / "big_head"), device="cpu", dtype="fp32")


def test_bad_inputs(tmp_path):
    target = JanusTarget(tiny_janus(seed=7))
    with pytest.raises(InputError, match="must end with <begin_of_image>"):
        target.validate_condition([[BOS, 10, 11]])
    with pytest.raises(InputError, match="not class labels"):
        target.validate_condition(torch.tensor([1, 2]))
    with pytest.raises(InputError, match="too long"):
        target.validate_condition([[BOS] + [10] * 240 + [BOI]])
    os.makedirs(tmp_path / "notjanus")
    json.dump({"model_type": "llama"}, open(tmp_path / "notjanus" / "config.json", "w"))
    with pytest.raises(CheckpointError, match="notjanus.*model_type 'llama'.*expected 'janus'"):
        load_janus(str(tmp_path / "notjanus"))
    with pytest.raises(CheckpointError, match="missing_dir.*not a model folder"):
        load_janus(str(tmp_path / "missing_dir"))
    from adt_core.models.load import load_gpt
    folder = save_folder(tiny_janus(seed=8), tmp_path / "janus")
    with pytest.raises(CheckpointError, match="Janus-Pro model folder.*--janus"):
        load_gpt(folder)


def save_processor(folder) -> None:
    """A tiny JanusProcessor: word-level tokenizer whose ids match BOS/PAD/BOI above, a one-turn template."""
    from tokenizers import AddedToken, Tokenizer, models, pre_tokenizers, processors
    from transformers import PreTrainedTokenizerFast
    from transformers.models.janus.image_processing_pil_janus import JanusImageProcessorPil
    from transformers.models.janus.processing_janus import JanusProcessor
    specials = ["<bos>", "<pad>", "<eos>", "<image_placeholder>", "<unk>", "<begin_of_image>", "<end_of_image>",
                "<|User|>:", "<|Assistant|>:"]
    vocab = {w: i for i, w in enumerate(specials + "a red cat blue dog".split())}
    tok = Tokenizer(models.WordLevel(vocab, unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    tok.add_special_tokens([AddedToken(s, special=True) for s in specials])
    tok.post_processor = processors.TemplateProcessing(single="<bos> $A", special_tokens=[("<bos>", BOS)])
    fast = PreTrainedTokenizerFast(tokenizer_object=tok, bos_token="<bos>", pad_token="<pad>", eos_token="<eos>",
                                   unk_token="<unk>", extra_special_tokens={
                                       "image_token": "<image_placeholder>", "boi_token": "<begin_of_image>",
                                       "eoi_token": "<end_of_image>"})
    template = ("{% for m in messages %}<|User|>: {{ m['content'][0]['text'] }}\n\n{% endfor %}"
                "{% if add_generation_prompt %}<|Assistant|>:{% endif %}")
    processor = JanusProcessor(image_processor=JanusImageProcessorPil(), tokenizer=fast, chat_template=template)
    processor.save_pretrained(folder)


def test_cli_text_prompts_through_the_folder_processor(tmp_path, capsys):
    from adt_core.cli import main
    from adt_core.training.draft_io import save_draft
    folder = save_folder(tiny_janus(seed=10), tmp_path / "janus")
    save_processor(folder)
    target = load_janus(folder)
    cond = target.encode_prompts(["a red cat", "dog"])  # chat template + <begin_of_image>, left-padded
    assert cond.values.tolist() == [[BOS, 7, 9, 10, 11, 8, BOI], [PAD, PAD, BOS, 7, 13, 8, BOI]]
    assert cond.mask.tolist() == [[True] * 7, [False, False] + [True] * 5]
    save_draft(tiny_janus_draft(target), str(tmp_path / "head"))
    base = ["generate", "--janus", folder, "--device", "cpu", "--dtype", "fp32", "--temperature", "0",
            "--prompt", "a red cat", "dog"]
    assert main(base + ["--method", "vanilla", "--out", str(tmp_path / "v"), "--tokens", str(tmp_path / "v.json")]) == 0
    assert main(base + ["--draft", str(tmp_path / "head"), "--method", "adt", "--out", str(tmp_path / "s"),
                        "--tokens", str(tmp_path / "s.json")]) == 0
    assert json.load(open(tmp_path / "v.json")) == json.load(open(tmp_path / "s.json"))
    assert sorted(os.listdir(tmp_path / "s"))[:2] == ["0000.png", "0001.png"]
    capsys.readouterr()
    assert main(["generate", "--janus", folder, "--gpt", "x.pt", "--prompt", "a", "--out", str(tmp_path / "e")]) == 2
    assert "--janus replaces --gpt" in capsys.readouterr().err
    assert main(["generate", "--janus", folder, "--device", "cpu", "--out", str(tmp_path / "e")]) == 2
    assert "give --prompt" in capsys.readouterr().err
