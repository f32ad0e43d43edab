"""`adt-tree train-draft`: the command line of training/distill.py (registered by cli.py, as bench is)."""
import json
from typing import List

import torch

from ..errors import InputError


def read_prompt_file(path: str) -> List[str]:
    try:
        with open(path, encoding="utf-8") as f:
            lines = [line.strip() for line in f]
    except OSError as e:
        raise InputError(f"{path}: cannot read the prompt file ({e.strerror})") from None
    prompts = [line for line in lines if line and not line.startswith("#")]
    if not prompts:
        raise InputError(f"{path}: no prompts (one per line; empty lines and # comments are skipped)")
    return prompts


def cmd_train_draft(a) -> int:
    from ..cli import load_pipeline, parse_labels, sampling_from
    from .distill import DistillSettings, run_train_draft
    if a.threads:
        torch.set_num_threads(a.threads)
    if a.draft is not None:
        raise InputError("train-draft trains a new head: do not pass --draft")
    pipe = load_pipeline(a)
    pipe.draft = None  # the bundled demo comes with a head; train-draft makes its own
    if pipe.target.takes_prompts:
        if a.class_label:
            raise InputError("--class-label is for class-conditional models; give --prompt-file or --prompt")
        items = (read_prompt_file(a.prompt_file) if a.prompt_file else []) + list(a.prompt or [])
        if not items:
            raise InputError("this is a text-to-image model: give --prompt-file FILE (one prompt per line) or --prompt")
    else:
        if a.prompt_file or a.prompt:
            raise InputError("this model is class-conditional: use --class-label (default: every class)")
        n = pipe.target.gpt.config.num_classes
        items = parse_labels(a.class_label, pipe) if a.class_label else list(range(n))
    settings = DistillSettings(samples=a.samples, held_out=a.held_out, steps=a.steps, batch=a.batch,
                               grad_accum=a.grad_accum, lr=a.lr, gen_batch=a.gen_batch, feature_batch=a.gen_batch,
                               seed=a.seed, amp=not a.no_amp, checkpoint_every=a.checkpoint_every,
                               intermediate=a.intermediate, heads=a.heads)
    res = run_train_draft(pipe, items, a.out, sampling_from(a, pipe), settings, resume=a.resume,
                          show_progress=not a.quiet, log=(lambda m: None) if a.quiet else print)
    print(json.dumps(res, indent=1))
    return 0


def add_train_draft_parser(sub, add_model_args, add_sampling_args) -> None:
    t = sub.add_parser("train-draft", help="self-distil an EAGLE draft head for a model (any family)")
    add_model_args(t)
    g = t.add_argument_group("training data: the target's own samples")
    g.add_argument("--prompt-file", help="text models: prompts, one per line (cycled to --samples)")
    g.add_argument("--prompt", nargs="+", metavar="TEXT", help="text models: prompts given inline")
    g.add_argument("--class-label", nargs="*", help="class-conditional models: labels (default: every class)")
    g.add_argument("--samples", type=int, default=1000, help="images the target generates (default 1000)")
    g.add_argument("--held-out", type=int, default=32, help="samples kept for the acceptance report (default 32)")
    g.add_argument("--gen-batch", type=int, default=8, help="images sampled together (default 8)")
    add_sampling_args(t)
    g = t.add_argument_group("optimisation")
    g.add_argument("--steps", type=int, default=2000)
    g.add_argument("--batch", type=int, default=8, help="sequences per micro-batch")
    g.add_argument("--grad-accum", type=int, default=1, help="micro-batches per optimiser step")
    g.add_argument("--lr", type=float, default=3e-4)
    g.add_argument("--intermediate", type=int, help="draft MLP width (default: the target's)")
    g.add_argument("--heads", type=int, help="draft attention heads (default: the target's)")
    g.add_argument("--no-amp", action="store_true", help="train in fp32 on CUDA (default: bf16 autocast)")
    g.add_argument("--checkpoint-every", type=int, default=200)
    g.add_argument("--seed", type=int, default=0)
    g.add_argument("--threads", type=int, help="CPU threads (default: PyTorch's)")
    t.add_argument("--out", required=True, help="output folder: the head (config.json + model.safetensors) and train/")
    t.add_argument("--resume", action="store_true", help="continue a run in --out (samples and checkpoint)")
    t.add_argument("--quiet", action="store_true")
    t.set_defaults(func=cmd_train_draft)
