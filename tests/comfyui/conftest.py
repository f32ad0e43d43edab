"""Tests against a real ComfyUI checkout; all skipped unless COMFYUI_PATH points at one (ComfyUI 0.33).

Run them in a Python environment that has ComfyUI's requirements (see docs/comfyui.md):
    COMFYUI_PATH=/path/to/ComfyUI python -m pytest tests/comfyui -v
"""
import os
import sys

import pytest

sys.path.insert(0, os.path.dirname(__file__))

from comfy_harness import comfyui_path  # noqa: E402


def pytest_collection_modifyitems(config, items):
    if comfyui_path():
        return
    skip = pytest.mark.skip(reason="COMFYUI_PATH is not set (needs a ComfyUI 0.33 checkout)")
    for item in items:
        if os.path.dirname(str(item.fspath)) == os.path.dirname(__file__):
            item.add_marker(skip)
