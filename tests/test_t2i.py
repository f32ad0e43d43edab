"""LlamaGen text-to-image: caption masking as in the official sampler, speculative == vanilla, the LANTERN
HF layout of the targets, and LANTERN's draft heads with their exact sequence alignment (models.md §4.2)."""
import json
import os

import pytest
import torch

from adt_core.adapters.llamagen import LlamaGenTarget
from adt_core.engine.drafter import Drafter
from adt_core.engine.sampling import SamplingConfig, guide
from adt_core.errors import CheckpointError, InputError
from adt_core.models.draft_head import DraftConfig, DraftHead
from adt_core.models.gpt import GPT, GPTConfig
from adt_core.models.load import load_draft_head, load_gpt
from adt_core.models.t2i_layout import official_to_hf
from adt_core.pipeline import Pipeline, SpecOptions
from adt_core.text.condition import MaskedCondition
from adt_core.training.draft_trainer import target_features
from tiny_models import markov_gpt, oracle_draft, save_gpt, save_vq, tiny_vq

CAP = 16


def tiny_t2i(T=8, dim=32, grid=(4, 4), vocab=64, seed=0, std=0.3, n_layer=2) -> GPT:
    cfg = GPTConfig(dim=dim, n_layer=n_layer, n_head=4, vocab_size=vocab, model_type="t2i", cls_token_num=T,
                    caption_dim=CAP, grid_rows=grid[0], grid_cols=grid[1], ffn_hidden=2 * dim)
    gpt = GPT(cfg)
    g = torch.Generator().manual_seed(seed)
    for name, p in gpt.named_parameters():
        p.data = torch.ones_like(p) if name.endswith("norm.weight") else torch.randn(p.shape, generator=g) * std
    gpt.cls_embedding.uncond_embedding.copy_(torch.randn(T, CAP, generator=g))
    return gpt.eval()


def t2i_draft(gpt: GPT, seed=1, std=0.1, input_type="t2i") -> DraftHead:
    c = gpt.config
    d = DraftHead(DraftConfig(hidden_size=c.dim, intermediate_size=2 * c.dim, num_attention_heads=c.n_head,
                              vocab_size=c.vocab_size, input_type=input_type))
    g = torch.Generator().manual_seed(seed)
    for p in d.parameters():
        p.data = torch.randn(p.shape, generator=g) * std
    d.layers[0].post_attention_layernorm.weight.data.fill_(1.0)
    return d.eval()


def captions(lengths, T=8, seed=0) -> MaskedCondition:
    """Left-padded caption features (padded rows zero, as text/t5.py produces them)."""
    g = torch.Generator().manual_seed(seed)
    mask = torch.arange(T)[None] >= (T - torch.tensor(lengths))[:, None]
    return MaskedCondition(torch.randn(len(lengths), T, CAP, generator=g) * mask[..., None], mask)


def upstream_mask(cond_mask: torch.Tensor, length: int, T: int) -> torch.Tensor:
    """LlamaGen generate(): causal mask, caption columns multiplied by the cond mask for *both* CFG halves,
    then the diagonal forced to 1. Written independently of KVCache.mask."""
    m = torch.ones(length, length).tril()[None].repeat(2 * cond_mask.shape[0], 1, 1)
    m[:, :, :T] = m[:, :, :T] * torch.cat([cond_mask, cond_mask]).float()[:, None, :]
    eye = torch.eye(length)
    return (m * (1 - eye) + eye).bool()[:, None]


def test_caption_mask_and_null_caption_match_the_official_sampler():
    gpt = tiny_t2i()
    target = LlamaGenTarget(gpt)
    cond = captions([3, 8, 5])
    tokens = torch.randint(0, 64, (3, 16), generator=torch.Generator().manual_seed(1))
    ours = target_features(target, target.validate_condition(cond), tokens)
    null = gpt.cls_embedding.uncond_embedding.expand(3, -1, -1)
    x = torch.cat([gpt.embed_condition(torch.cat([cond.values, null])), gpt.tok_embeddings(tokens.repeat(2, 1))], 1)
    with torch.no_grad():
        ref = gpt(x, torch.arange(24), None, upstream_mask(cond.mask, 24, 8))
    assert torch.allclose(ours, ref, atol=1e-5)  # padded caption rows included (they see only themselves)
    # the mask matters: without it the image positions would differ
    with torch.no_grad():
        unmasked = gpt(x, torch.arange(24), None, "causal")
    assert not torch.allclose(unmasked[:, 8:], ref[:, 8:], atol=1e-3)


def test_greedy_vanilla_follows_reference_logits():
    gpt = tiny_t2i(seed=2)
    pipe = Pipeline(LlamaGenTarget(gpt))
    cond = captions([2, 6], seed=3)
    tok = pipe.generate(cond, SpecOptions("vanilla"), SamplingConfig(temperature=0, cfg_scale=5.0), decode=False)
    tokens = torch.tensor(tok.tokens)
    null = gpt.cls_embedding.uncond_embedding.expand(2, -1, -1)
    x = torch.cat([gpt.embed_condition(torch.cat([cond.values, null])),
                   gpt.tok_embeddings(tokens[:, :-1].repeat(2, 1))], 1)
    with torch.no_grad():
        ref = gpt.logits(gpt(x, torch.arange(23), None, upstream_mask(cond.mask, 23, 8)))
    guided = guide(ref[:, 7:], 5.0, True)
    assert torch.equal(guided.argmax(-1), tokens)


TREES = [SpecOptions("eagle2", depth=4, width=3, node_budget=12), SpecOptions("static", static_tree="auto-10"),
         SpecOptions("adt", depth=3, width=3, node_budget="auto")]


@pytest.mark.parametrize("opt", TREES, ids=lambda o: o.method)
@pytest.mark.parametrize("cfg_scale", [4.0, 1.0])
def test_greedy_speculative_equals_vanilla(opt, cfg_scale):
    gpt = tiny_t2i(seed=4)
    pipe = Pipeline(LlamaGenTarget(gpt), None, t2i_draft(gpt))
    s = SamplingConfig(temperature=0, cfg_scale=cfg_scale)
    cond = captions([3, 8], seed=5)
    ref = pipe.generate(cond, SpecOptions("vanilla"), s, decode=False).tokens
    assert pipe.generate(cond, opt, s, decode=False).tokens == ref


def test_good_draft_accepts_long_paths_with_a_caption_mask():
    """Near-oracle head on a t2i target whose attention is almost off: long acceptances, compaction and the
    prefix mask together, still token-identical to vanilla."""
    base = markov_gpt(grid=(5, 5), attn_scale=0.0, seed=5)
    gpt = tiny_t2i(T=6, dim=32, grid=(5, 5), vocab=32, n_layer=1, seed=6)
    sd = {k: v for k, v in base.state_dict().items() if not k.startswith("cls_embedding")}
    gpt.load_state_dict(sd, strict=False)
    gpt.layers[0].attention.wo.weight.data *= 0.006
    head = oracle_draft(base)
    head.config.input_type = "t2i"
    pipe = Pipeline(LlamaGenTarget(gpt), None, head)
    s = SamplingConfig(temperature=0, cfg_scale=3.0)
    cond = captions([2, 6], T=6, seed=7)
    ref = pipe.generate(cond, SpecOptions("vanilla"), s, decode=False).tokens
    out = pipe.generate(cond, SpecOptions("eagle2", depth=5, width=3, node_budget=15), s, decode=False)
    assert out.tokens == ref
    assert max(st.mean_accepted_length for st in out.stats) > 1.5


def test_hf_layout_round_trip_gives_identical_logits(tmp_path):
    gpt = tiny_t2i(seed=8)
    official = save_gpt(gpt, str(tmp_path / "t2i_tiny.pt"))
    hf, cfg = official_to_hf(gpt.state_dict(), gpt.config.to_dict())
    d = gpt.config.dim
    wqkv = gpt.layers[1].attention.wqkv.weight
    assert torch.equal(hf["model.layers.1.self_attn.k_proj.weight"], wqkv[d:2 * d])  # plain rows, no permutation
    assert cfg["input_type"] == "t2i" and cfg["cls_token_num"] == 8 and cfg["block_size"] == 16
    folder = tmp_path / "LlamaGen-T2I-tiny"
    os.makedirs(folder)
    json.dump(cfg, open(folder / "config.json", "w"))
    from safetensors.torch import save_file
    save_file({k: v.contiguous() for k, v in hf.items()}, str(folder / "model.safetensors"))
    a, b = load_gpt(official), load_gpt(str(folder))
    assert a.config.to_dict() == b.config.to_dict()
    assert all(torch.equal(a.state_dict()[k], b.state_dict()[k]) for k in a.state_dict())
    cond = captions([4, 8], seed=9)
    s = SamplingConfig(temperature=0, cfg_scale=4.0)
    ta, tb = LlamaGenTarget(a), LlamaGenTarget(b)
    toks = torch.randint(0, 64, (2, 16), generator=torch.Generator().manual_seed(2))
    fa = target_features(ta, cond, toks)
    fb = target_features(tb, cond, toks)
    with torch.no_grad():
        assert torch.equal(a.logits(fa), b.logits(fb))
    assert Pipeline(ta).generate(cond, SpecOptions("vanilla"), s, decode=False).tokens == \
        Pipeline(tb).generate(cond, SpecOptions("vanilla"), s, decode=False).tokens
    # the model.safetensors file alone (config.json beside it) loads the same way
    assert torch.equal(load_gpt(str(folder / "model.safetensors")).output.weight, a.output.weight)


def test_hf_layout_errors(tmp_path):
    gpt = tiny_t2i()
    hf, cfg = official_to_hf(gpt.state_dict(), gpt.config.to_dict())
    folder = tmp_path / "broken"
    os.makedirs(folder)
    from safetensors.torch import save_file
    bad = dict(hf)
    del bad["model.layers.0.self_attn.v_proj.weight"]
    save_file({k: v.contiguous() for k, v in bad.items()}, str(folder / "model.safetensors"))
    with pytest.raises(CheckpointError, match="broken.*config.json"):
        load_gpt(str(folder))
    json.dump(cfg, open(folder / "config.json", "w"))
    with pytest.raises(CheckpointError, match="broken.*lacks model.layers.0.self_attn.v_proj.weight"):
        load_gpt(str(folder))
    cfg["num_attention_heads"] = 8
    cfg["num_key_value_heads"] = 2  # k/v rows would then be 8, the file has 32
    json.dump(cfg, open(folder / "config.json", "w"))
    save_file({k: v.contiguous() for k, v in hf.items()}, str(folder / "model.safetensors"))
    with pytest.raises(CheckpointError, match="broken.*q/k/v have 32/32/32 rows, expected 32/8/8"):
        load_gpt(str(folder))


def lantern_head_folder(gpt: GPT, folder, input_type="t2i") -> str:
    """A draft head written the way LANTERN publishes them: its config fields, pytorch_model.bin."""
    c = gpt.config
    os.makedirs(folder, exist_ok=True)
    cfg = {"architectures": ["LlamaForCausalLM"], "bos_token_id": 1, "eos_token_id": 2, "hidden_act": "silu",
           "hidden_size": c.dim, "caption_dim": c.caption_dim, "class_dropout_p": 0.0, "initializer_range": 0.02,
           "intermediate_size": 2 * c.dim, "max_position_embeddings": 2048, "model_type": "llama",
           "num_attention_heads": c.n_head, "num_hidden_layers": 1, "num_key_value_heads": c.n_head,
           "pretraining_tp": 1, "rms_norm_eps": 1e-06, "rope_scaling": None, "tie_word_embeddings": False,
           "torch_dtype": "float16", "transformers_version": "4.32.0.dev0", "use_cache": True,
           "vocab_size": c.vocab_size, "input_type": input_type}
    json.dump(cfg, open(os.path.join(folder, "config.json"), "w"))
    torch.save(t2i_draft(gpt, seed=11).state_dict(), os.path.join(folder, "pytorch_model.bin"))
    return str(folder)


def lantern_rope_t2i(grid: int, head_dim: int) -> torch.Tensor:
    """LANTERN drafter table for input_type t2i, restated: 119 zero rows, the grid (row frequencies on the
    first half of the pairs, column frequencies on the second), then zero padding."""
    half = head_dim // 2
    freqs = 1.0 / (10000 ** (torch.arange(0, half, 2)[: half // 2].float() / half))
    rows = []
    for r in range(grid):
        for c in range(grid):
            ang = torch.cat([freqs * r, freqs * c])
            rows.append(torch.stack([ang.cos(), ang.sin()], -1))
    return torch.cat([torch.zeros(119, half, 2), torch.stack(rows), torch.zeros(20, half, 2)])


def test_lantern_draft_head_loads_and_aligns_at_120_caption_tokens(tmp_path):
    """models.md §4.2: the drafter sees ids [0]*119 + [t0] at positions 0..119 paired with the 120 prefill
    hidden states, RoPE with 119 zero rows (position 119 = grid cell (0,0)), and no caption mask."""
    gpt = tiny_t2i(T=120, seed=12)
    target = LlamaGenTarget(gpt)
    head = load_draft_head(lantern_head_folder(gpt, tmp_path / "llamagen_drafter"))
    assert head.config.input_type == "t2i" and head.config.bias  # fc.bias present, as LANTERN's
    pipe = Pipeline(target, None, head)  # family t2i accepted
    s = SamplingConfig(temperature=0, cfg_scale=3.0)
    drafter = Drafter(head, target, s)
    table = lantern_rope_t2i(4, head.config.head_dim)
    assert torch.equal(drafter.rope[: table.shape[0] - 20], table[:-20])
    assert not drafter.rope[:119].any() and drafter.rope[119, :, 0].eq(1).all()  # cell (0,0): cos 1, sin 0

    calls = []
    orig = head.forward

    def spy(features, tokens, rope, cache=None, mask=None, token_embeds=None):
        calls.append((features.clone(), tokens.clone(), rope.clone(), mask))
        return orig(features, tokens, rope, cache, mask, token_embeds)
    head.forward = spy
    cond = captions([5], T=120, seed=13)  # 115 padded caption positions
    out = pipe.generate(cond, SpecOptions("eagle2", depth=3, width=2, node_budget=4), s, decode=False)
    assert out.tokens == pipe.generate(cond, SpecOptions("vanilla"), s, decode=False).tokens
    features, tokens, rope, mask = calls[0]
    t0 = out.tokens[0][0]
    assert tokens.shape == (2, 120) and tokens[0].tolist() == [0] * 119 + [t0]
    assert torch.equal(rope, table[:120])
    with torch.inference_mode():
        target.setup(2, 4)
        prefill = target.prefill(target.condition_batch(cond, True))
    assert torch.allclose(features, prefill, atol=1e-6)
    # no caption mask in the drafter: its first output equals a plain causal pass over all 120 positions
    with torch.inference_mode():
        ref = orig(prefill, tokens, table[:120], None, "causal")
        first = Drafter(head, target, s)
        first.setup(2, 8)
        got = first.extend(prefill, [0] * 119 + [t0])
    assert torch.allclose(got, ref[:, -1:], atol=1e-5)


def test_draft_head_for_another_family_or_size_is_refused(tmp_path):
    gpt = tiny_t2i()
    target = LlamaGenTarget(gpt)
    with pytest.raises(InputError, match="class-to-image.*input_type 'c2i'.*text-to-image \\(256 tokens\\)"):
        Pipeline(target, None, t2i_draft(gpt, input_type="c2i"), {"draft": "c2i_head"})
    with pytest.raises(InputError, match="stage 2.*input_type 't2i2'.*input_type 't2i'"):
        Pipeline(target, None, t2i_draft(gpt, input_type="t2i2"))
    with pytest.raises(InputError, match="hidden 64.*hidden 32"):
        Pipeline(target, None, t2i_draft(tiny_t2i(dim=64)))
    with pytest.raises(InputError, match="text-to-image.*input_type 't2i'.*class-to-image"):
        from tiny_models import tiny_gpt
        Pipeline(LlamaGenTarget(tiny_gpt(dim=32)), None, t2i_draft(gpt))


def test_condition_errors(tmp_path):
    gpt = tiny_t2i()
    pipe = Pipeline(LlamaGenTarget(gpt), None, None, {"gpt": "t2i.pt"})
    s = SamplingConfig(temperature=0)
    with pytest.raises(InputError, match="text-to-image model: give prompts"):
        pipe.generate([1, 2], SpecOptions("vanilla"), s)
    with pytest.raises(InputError, match=r"\[B, 8, 16\].*got \[1, 8, 12\]"):
        pipe.generate(MaskedCondition(torch.zeros(1, 8, 12), torch.ones(1, 8)), SpecOptions("vanilla"), s)
    with pytest.raises(InputError, match="needs a local T5 encoder folder.*--t5"):
        pipe.generate(["a red cat"], SpecOptions("vanilla"), s)
    from tiny_models import tiny_gpt
    c2i = Pipeline(LlamaGenTarget(tiny_gpt()))
    with pytest.raises(InputError, match="class-conditional"):
        c2i.generate(["a red cat"], SpecOptions("vanilla"), s)
    with pytest.raises(InputError, match="text-to-image models need a prompt encoding"):
        c2i.generate(captions([3]), SpecOptions("vanilla"), s)


def test_vq_decoding_and_pipeline_load(tmp_path):
    gpt = tiny_t2i(seed=14)
    path = save_gpt(gpt, str(tmp_path / "t2i_tiny.pt"))
    vq = save_vq(tiny_vq(ch_mult=(1, 1)), str(tmp_path / "vq.pt"))
    pipe = Pipeline.load(path, vq, device="cpu", dtype="fp32")
    res = pipe.generate(captions([4]), SpecOptions("vanilla"), SamplingConfig(temperature=1.0, top_k=8), seed=3)
    assert res.images.shape == (1, 8, 8, 3)
