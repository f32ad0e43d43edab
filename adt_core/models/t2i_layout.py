"""Key mapping between official LlamaGen `.pt` files and LANTERN's HF-style export of the t2i targets.

(Filled in with the text-to-image support; for now the HF layout is only detected.)
"""
from ..errors import CheckpointError


def is_hf_layout(sd: dict) -> bool:
    return "model.embed_tokens.weight" in sd


def hf_to_official(sd: dict, path: str, custom):
    raise CheckpointError(f"{path}: HF-layout (LANTERN) LlamaGen checkpoints are not supported yet")
