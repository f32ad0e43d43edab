"""The library's front door: load a model set once, generate images with any method, decode tokens.

Used by the CLI, the benchmark and the ComfyUI nodes alike, so all three behave identically.
"""
from dataclasses import asdict, dataclass, field
from typing import List, Optional, Union

import torch

from .adapters.llamagen import LlamaGenTarget
from .engine.budget import AutoBudget, FixedBudget, verify_profile
from .adt.controller import ADTController, ADTParams
from .device import resolve_device, resolve_dtype
from .engine.drafter import Drafter
from .engine.hooks import Hooks
from .engine.policies import DynamicPolicy, StaticPolicy
from .engine.sampling import SamplingConfig
from .engine.speculative import sample_speculative
from .engine.stats import ImageStats
from .engine.tree import choices_from_spec
from .engine.vanilla import sample_vanilla
from .errors import InputError
from .engine.lantern import Lantern, cached_neighbour_table
from .models.load import check_compatible, load_draft_head, load_gpt, load_vq
from .models.vq import VQModel

METHODS = ("vanilla", "static", "eagle2", "adt")


@dataclass
class SpecOptions:
    """How to draft and verify.

    method: vanilla | static | eagle2 | adt. EAGLE-2 sizes default to LANTERN's LlamaGen settings (4
    expansions = 5 levels, top-10, 58 nodes); node_budget may be "auto" (cost-aware, measured per device).
    ADT-Tree: per-round depth/width from the adjacency controller (adt/controller.py), within the bounds.
    LANTERN (any tree method): on when lantern_k > 0; delta = absolute TVD budget, lambda > 1 = LANTERN++
    relative budget (used instead of delta); legacy reproduces upstream's zeroing of k+1 neighbours.
    """
    method: str = "eagle2"
    depth: int = 5
    width: int = 10
    node_budget: Union[int, str] = 58
    static_tree: str = "auto-24"
    adt_variant: str = "bisect"
    adt_depth_min: int = 2
    adt_depth_max: int = 8
    adt_width_min: int = 2
    adt_width_max: int = 16
    adt_beta: float = 0.5
    adt_depth_init: int = 5
    adt_width_init: int = 10
    lantern_k: int = 0
    lantern_delta: float = 0.1
    lantern_lambda: float = 0.0
    lantern_legacy: bool = False

    @property
    def lantern(self) -> bool:
        return self.lantern_k > 0

    def to_dict(self) -> dict:
        d = asdict(self)
        if self.method != "adt":
            d = {k: v for k, v in d.items() if not k.startswith("adt_")}
        if self.method != "static":
            d.pop("static_tree")
        if not self.lantern:
            d = {k: v for k, v in d.items() if not k.startswith("lantern_")}
        return d


@dataclass
class GenerationResult:
    tokens: List[List[int]]
    stats: List[ImageStats]
    images: Optional[torch.Tensor] = None  # [B, H, W, 3] float32 in 0..1
    settings: dict = field(default_factory=dict)


def is_prompt_list(cond) -> bool:
    return isinstance(cond, (list, tuple)) and len(cond) > 0 and all(isinstance(c, str) for c in cond)


class Pipeline:
    def __init__(self, target, vq: Optional[VQModel] = None, draft=None, names: Optional[dict] = None,
                 text_encoder=None):
        self.target, self.vq, self.draft = target, vq, draft
        if vq is not None:
            target.vq = vq  # LlamaGen ships its tokenizer separately; the target decodes with it
        self.names = names or {}
        self._neighbours = {}  # LANTERN neighbour tables by k+1, computed once per pipeline
        check_compatible(target.vocab_size, target.hidden_size, vq, draft, self.names,
                         family=target.draft_family)
        if text_encoder is not None:
            target.attach_text_encoder(text_encoder, self.names.get("t5", ""))

    @classmethod
    def load(cls, gpt: str, vq: str, draft: Optional[str] = None, image_size: Optional[int] = None,
             device: str = "auto", dtype: str = "auto", t5: Optional[str] = None) -> "Pipeline":
        """LlamaGen c2i or t2i (official .pt or LANTERN's HF folder); `t5` = local flan-t5-xl folder (t2i)."""
        dev = resolve_device(device)
        dt = resolve_dtype(dtype, dev)
        vq_model = load_vq(vq, device=dev, dtype=torch.float32 if dev.type == "cpu" else dt)
        gpt_model = load_gpt(gpt, image_size=image_size, downsample=vq_model.config.downsample, device=dev, dtype=dt)
        head = load_draft_head(draft, device=dev, dtype=dt) if draft else None
        encoder = None
        if t5:
            from .text.t5 import T5TextEncoder
            encoder = T5TextEncoder.load(t5, dev)
        return cls(LlamaGenTarget(gpt_model), vq_model, head,
                   {"gpt": gpt, "vq": vq, "draft": draft or "", "t5": t5 or ""}, encoder)

    @classmethod
    def load_janus(cls, folder: str, draft: Optional[str] = None, device: str = "auto",
                   dtype: str = "auto") -> "Pipeline":
        """Janus-Pro from a local transformers folder (it carries its own VQ decoder and tokenizer)."""
        from .adapters.janus import load_janus
        dev = resolve_device(device)
        dt = resolve_dtype(dtype, dev)
        target = load_janus(folder, device=dev, dtype=dt)
        head = load_draft_head(draft, device=dev, dtype=dt) if draft else None
        return cls(target, None, head, {"gpt": folder, "draft": draft or ""})

    def with_draft(self, head, name: str = "") -> "Pipeline":
        """The same target and VQ with another draft head (or none); checked like a fresh load."""
        return Pipeline(self.target, self.vq, head, dict(self.names, draft=name))

    def encode_prompts(self, prompts: List[str]):
        """Text prompts -> the target's condition (T5 features for LlamaGen t2i, token ids for Janus)."""
        return self.target.encode_prompts(list(prompts))

    @property
    def device(self) -> torch.device:
        return self.target.device

    def make_policy(self, o: SpecOptions, rows: int):
        if o.method == "static":
            return StaticPolicy(choices_from_spec(o.static_tree))
        if o.method not in ("eagle2", "adt"):
            raise InputError(f"unknown method {o.method!r}; choose one of {', '.join(METHODS)}")
        if o.node_budget == "auto":
            budget = AutoBudget(verify_profile(self.target, rows))
        else:
            try:
                budget = int(o.node_budget)
            except (TypeError, ValueError):
                raise InputError(f"node budget must be a positive integer or 'auto', got {o.node_budget!r}") from None
            if budget < 1:
                raise InputError(f"node budget must be >= 1, got {budget}")
            budget = FixedBudget(budget)
        if o.method == "eagle2":
            return DynamicPolicy(o.depth, o.width, budget)
        params = ADTParams(o.adt_depth_min, o.adt_depth_max, o.adt_width_min, o.adt_width_max, o.adt_beta,
                           o.adt_depth_init, o.adt_width_init, o.adt_variant)
        return DynamicPolicy(params.depth_max, params.width_max, budget, ADTController(params), name="adt")

    def make_lantern(self, o: SpecOptions) -> Optional[Lantern]:
        if not o.lantern:
            return None
        key = o.lantern_k + 1
        if key not in self._neighbours:
            self._neighbours[key] = cached_neighbour_table(self.target.lantern_codebook(), key).to(self.device)
        return Lantern(self._neighbours[key], o.lantern_k, o.lantern_delta, o.lantern_lambda, o.lantern_legacy)

    def generate(self, cond, options: SpecOptions, sampling: SamplingConfig, seed: int = 0,
                 hooks: Optional[Hooks] = None, decode: bool = True) -> GenerationResult:
        hooks = hooks or Hooks()
        if is_prompt_list(cond):
            cond = self.encode_prompts(cond)
        gen = torch.Generator(self.device).manual_seed(int(seed))
        settings = {"seed": int(seed), **sampling.to_dict()}
        if options.method == "vanilla":
            tokens, stats = sample_vanilla(self.target, cond, sampling, gen, hooks, settings)
        else:
            if self.draft is None:
                raise InputError(f"method {options.method!r} needs a draft head; give one or use 'vanilla'")
            policy = self.make_policy(options, 2 if sampling.use_cfg else 1)
            relax = self.make_lantern(options)
            settings.update(options.to_dict())
            settings.update(policy.describe())
            label = options.method + ("+lantern" if relax is not None else "")
            drafter = Drafter(self.draft, self.target, sampling)
            policy.prepare(drafter, 2 if sampling.use_cfg else 1)
            try:
                tokens, stats = sample_speculative(self.target, drafter, policy, cond, sampling, gen, hooks,
                                                   label, settings, relax)
            finally:
                drafter.release()
        images = self.decode(tokens) if decode else None
        return GenerationResult(tokens, stats, images, settings)

    def decode(self, tokens: List[List[int]]) -> torch.Tensor:
        """Token lists -> IMAGE [B, H, W, 3] float32 in 0..1 on the CPU."""
        return self.target.decode_tokens(tokens)

    def release(self) -> None:
        """Free the KV caches (the weights stay loaded)."""
        self.target.release()
