"""The pack's V3 extension: registers the model folders, lists the nodes."""
from typing_extensions import override

from comfy_api.latest import ComfyExtension, io

from . import runtime
from .analysis import ADTTreeCompare, ADTTreeHeatmap
from .loaders import ADTTreeLoadDraftHead, ADTTreeLoadModel
from .sampler import ADTTreeSampler
from .settings import ADTTreeLanternSettings, ADTTreeSettings, ADTTreeTreeSettings


class ADTTreeExtension(ComfyExtension):
    @override
    async def on_load(self) -> None:
        runtime.register_model_folders()

    @override
    async def get_node_list(self) -> list[type[io.ComfyNode]]:
        return [ADTTreeLoadModel, ADTTreeLoadDraftHead, ADTTreeTreeSettings, ADTTreeSettings,
                ADTTreeLanternSettings, ADTTreeSampler, ADTTreeHeatmap, ADTTreeCompare]
