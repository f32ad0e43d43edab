"""The bundled demo model: a small LlamaGen-layout GPT, VQ-8 tokenizer and EAGLE draft head that the
project trains itself (`adt-tree train-demo`) on procedural scenes, shipped as safetensors under weights/."""
import os

WEIGHTS_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "weights")
GPT_FILE, VQ_FILE, DRAFT_DIR = "demo_gpt.safetensors", "demo_vq.safetensors", "demo_draft"


def demo_paths(folder: str = WEIGHTS_DIR) -> dict:
    return {"gpt": os.path.join(folder, GPT_FILE), "vq": os.path.join(folder, VQ_FILE),
            "draft": os.path.join(folder, DRAFT_DIR)}


def demo_available(folder: str = WEIGHTS_DIR) -> bool:
    p = demo_paths(folder)
    return os.path.isfile(p["gpt"]) and os.path.isfile(p["vq"]) and os.path.isdir(p["draft"])
