"""The library's front door: load a model set once, generate images with any method, decode tokens.

Used by the CLI, the benchmark and the ComfyUI nodes alike, so all three behave identically.
"""
from dataclasses import asdict, dataclass, field
from typing import List, Optional

import torch

from .adapters.llamagen import LlamaGenTarget
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
from .models.load import check_compatible, load_draft_head, load_gpt, load_vq
from .models.vq import VQModel, to_image_tensor

METHODS = ("vanilla", "static", "eagle2")


@dataclass
class SpecOptions:
    """How to draft. EAGLE-2 defaults are LANTERN's LlamaGen settings (4 expansions = 5 levels, top-10,
    58 nodes); the CLI and the demo override them with sizes measured to suit the device."""
    method: str = "eagle2"
    depth: int = 5
    width: int = 10
    node_budget: int = 58
    static_tree: str = "auto-24"

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass
class GenerationResult:
    tokens: List[List[int]]
    stats: List[ImageStats]
    images: Optional[torch.Tensor] = None  # [B, H, W, 3] float32 in 0..1
    settings: dict = field(default_factory=dict)


class Pipeline:
    def __init__(self, target, vq: Optional[VQModel] = None, draft=None, names: Optional[dict] = None):
        self.target, self.vq, self.draft = target, vq, draft
        self.names = names or {}
        check_compatible(target.vocab_size, target.hidden_size, vq, draft, self.names)

    @classmethod
    def load(cls, gpt: str, vq: str, draft: Optional[str] = None, image_size: Optional[int] = None,
             device: str = "auto", dtype: str = "auto") -> "Pipeline":
        dev = resolve_device(device)
        dt = resolve_dtype(dtype, dev)
        vq_model = load_vq(vq, device=dev, dtype=torch.float32 if dev.type == "cpu" else dt)
        gpt_model = load_gpt(gpt, image_size=image_size, downsample=vq_model.config.downsample, device=dev, dtype=dt)
        head = load_draft_head(draft, device=dev, dtype=dt) if draft else None
        return cls(LlamaGenTarget(gpt_model), vq_model, head, {"gpt": gpt, "vq": vq, "draft": draft or ""})

    @property
    def device(self) -> torch.device:
        return self.target.device

    def make_policy(self, o: SpecOptions):
        if o.method == "static":
            return StaticPolicy(choices_from_spec(o.static_tree))
        if o.method == "eagle2":
            return DynamicPolicy(o.depth, o.width, o.node_budget)
        raise InputError(f"unknown method {o.method!r}; choose one of {', '.join(METHODS)}")

    def generate(self, cond, options: SpecOptions, sampling: SamplingConfig, seed: int = 0,
                 hooks: Optional[Hooks] = None, decode: bool = True) -> GenerationResult:
        hooks = hooks or Hooks()
        gen = torch.Generator(self.device).manual_seed(int(seed))
        settings = {"seed": int(seed), **sampling.to_dict()}
        if options.method == "vanilla":
            tokens, stats = sample_vanilla(self.target, cond, sampling, gen, hooks, settings)
        else:
            if self.draft is None:
                raise InputError(f"method {options.method!r} needs a draft head; give one or use 'vanilla'")
            policy = self.make_policy(options)
            settings.update(policy.describe())
            drafter = Drafter(self.draft, self.target, sampling)
            try:
                tokens, stats = sample_speculative(self.target, drafter, policy, cond, sampling, gen, hooks,
                                                   options.method, settings)
            finally:
                drafter.release()
        images = self.decode(tokens) if decode and self.vq is not None else None
        return GenerationResult(tokens, stats, images, settings)

    @torch.inference_mode()
    def decode(self, tokens: List[List[int]]) -> torch.Tensor:
        rows, cols = self.target.grid
        codes = torch.tensor(tokens, device=self.vq.post_quant_conv.weight.device)
        out = [self.vq.decode_codes(codes[i:i + 1], rows, cols) for i in range(codes.shape[0])]
        return to_image_tensor(torch.cat(out))

    def release(self) -> None:
        """Free the KV caches (the weights stay loaded)."""
        self.target.release()
