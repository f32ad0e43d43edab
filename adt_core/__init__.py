"""adt_core: speculative decoding (EAGLE trees, ADT-Tree, LANTERN) for autoregressive image models.

Pure PyTorch; no ComfyUI import anywhere in this package.
"""
__version__ = "0.1.0"
