"""ComfyUI entry point of the ADT-Tree node pack (V3 API).

ComfyUI imports this file when the repository sits in custom_nodes/. Everything heavy (torch, the nodes)
is imported only when ComfyUI calls `comfy_entrypoint`, so importing the pack stays cheap.
"""
import importlib.util
import os
import sys

__all__ = ["comfy_entrypoint"]

_HERE = os.path.dirname(os.path.abspath(__file__))


def _use_bundled_library() -> None:
    """Make this repository's `adt_core` importable by its own name.

    A ComfyUI install is a git clone into custom_nodes/ plus requirements.txt; adt_core is not on PyPI,
    and putting the repository itself on sys.path would let its `nodes` package shadow ComfyUI's nodes.py.
    So only `adt_core` is registered, unless an adt_core (e.g. `pip install -e .`) is already imported.
    """
    if "adt_core" in sys.modules:
        return
    folder = os.path.join(_HERE, "adt_core")
    spec = importlib.util.spec_from_file_location("adt_core", os.path.join(folder, "__init__.py"),
                                                  submodule_search_locations=[folder])
    module = importlib.util.module_from_spec(spec)
    sys.modules["adt_core"] = module
    spec.loader.exec_module(module)


async def comfy_entrypoint():
    _use_bundled_library()
    from .nodes.extension import ADTTreeExtension
    return ADTTreeExtension()
