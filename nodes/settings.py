"""Speculative-decoding settings nodes. Each returns AR_SPEC_SETTINGS (a dict of SpecOptions fields) and
takes an optional upstream one, so they chain: Tree -> ADT-Tree -> LANTERN -> sampler."""
from comfy_api.latest import io

from . import support
from .sockets import CATEGORY_SETTINGS, ARSpecSettings

_UPSTREAM = "Settings from another ADT-Tree settings node to extend (this node's values win)."


def _settings_output():
    return [ARSpecSettings.Output(display_name="settings", tooltip="Connect to the sampler's settings input.")]


class ADTTreeTreeSettings(io.ComfyNode):
    @classmethod
    def define_schema(cls):
        return io.Schema(
            node_id="ADTTreeTreeSettings",
            display_name="ADT-Tree Draft Tree Settings (EAGLE-2)",
            category=CATEGORY_SETTINGS,
            description="Draft tree size: depth and width for method 'eagle2' (LANTERN's LlamaGen settings are "
                        "5, 10 and 58 nodes), node budget for 'eagle2' and 'adt'. Without this node the model's "
                        "defaults are used.",
            inputs=[
                ARSpecSettings.Input("settings", optional=True, tooltip=_UPSTREAM),
                io.Int.Input("depth", default=5, min=1, max=16, tooltip="Draft levels per round."),
                io.Int.Input("width", default=10, min=1, max=64, tooltip="Candidates expanded per level (top-k)."),
                io.Int.Input("node_budget", default=0, min=0, max=512,
                             tooltip="Draft tokens verified per round (eagle2 and adt). 0 = auto: chosen each "
                                     "round from the draft's confidence and this device's cost profile, "
                                     "measured once and cached (seeds still reproduce images)."),
            ],
            outputs=_settings_output(),
        )

    @classmethod
    def execute(cls, depth, width, node_budget, settings=None) -> io.NodeOutput:
        return io.NodeOutput(support.tree_settings(settings, depth, width, node_budget))


class ADTTreeSettings(io.ComfyNode):
    @classmethod
    def define_schema(cls):
        return io.Schema(
            node_id="ADTTreeSettings",
            display_name="ADT-Tree Adaptive Tree Settings",
            category=CATEGORY_SETTINGS,
            description="Bounds of the per-round draft depth and width that ADT-Tree adapts from how well "
                        "drafts were accepted in the neighbourhood of the next token (method 'adt').",
            inputs=[
                ARSpecSettings.Input("settings", optional=True, tooltip=_UPSTREAM),
                io.Combo.Input("variant", options=list(support.ADT_VARIANTS), default="bisect",
                               tooltip="Controller variant: bisect (default), step, binary, length, window, 2d."),
                io.Int.Input("depth_min", default=2, min=1, max=16, tooltip="Smallest draft depth a round may use."),
                io.Int.Input("depth_max", default=8, min=1, max=16, tooltip="Largest draft depth a round may use."),
                io.Int.Input("width_min", default=2, min=1, max=64, tooltip="Smallest draft width a round may use."),
                io.Int.Input("width_max", default=16, min=1, max=64, tooltip="Largest draft width a round may use."),
                io.Int.Input("depth_init", default=5, min=1, max=16, advanced=True,
                             tooltip="Depth of the first rounds, before there is any history."),
                io.Int.Input("width_init", default=10, min=1, max=64, advanced=True,
                             tooltip="Width of the first rounds, before there is any history."),
                io.Float.Input("beta", default=0.5, min=0.0, max=1.0, step=0.05, advanced=True,
                               tooltip="How strongly the neighbours' acceptance steers the next round "
                                       "(0 = only this row's history)."),
            ],
            outputs=_settings_output(),
        )

    @classmethod
    def execute(cls, variant, depth_min, depth_max, width_min, width_max, depth_init, width_init, beta,
                settings=None) -> io.NodeOutput:
        return io.NodeOutput(support.adt_settings(settings, variant, depth_min, depth_max, width_min, width_max,
                                                  depth_init, width_init, beta))


class ADTTreeLanternSettings(io.ComfyNode):
    @classmethod
    def define_schema(cls):
        return io.Schema(
            node_id="ADTTreeLanternSettings",
            display_name="ADT-Tree LANTERN Relaxed Acceptance",
            category=CATEGORY_SETTINGS,
            description="LANTERN: also accept a draft token when it is one of the k latent neighbours of what "
                        "the model would pick, within a total-variation budget. Faster, slightly lossy.",
            inputs=[
                ARSpecSettings.Input("settings", optional=True, tooltip=_UPSTREAM),
                io.Int.Input("k", default=100, min=0, max=16384,
                             tooltip="Latent neighbours per token (0 turns LANTERN off)."),
                io.Float.Input("delta", default=0.1, min=0.0, max=1.0, step=0.01,
                               tooltip="Total-variation budget for moving probability onto neighbours."),
                io.Float.Input("relative_budget", display_name="lambda (LANTERN++)", default=0.0, min=0.0,
                               max=100.0, step=0.1, advanced=True,
                               tooltip="LANTERN++ relative budget (> 1) used instead of delta; 0 = off."),
                io.Boolean.Input("legacy", default=False, advanced=True,
                                 tooltip="Reproduce the original implementation's neighbour handling."),
            ],
            outputs=_settings_output(),
        )

    @classmethod
    def execute(cls, k, delta, relative_budget, legacy, settings=None) -> io.NodeOutput:
        return io.NodeOutput(support.lantern_settings(settings, k, delta, relative_budget, legacy))
