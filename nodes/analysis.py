"""Nodes that explain a run: where drafts were accepted (heatmap) and how much faster it was (compare)."""
from comfy_api.latest import io, ui

from . import runtime, support
from .sockets import CATEGORY_STATS, ARStats


class ADTTreeHeatmap(io.ComfyNode):
    @classmethod
    def define_schema(cls):
        return io.Schema(
            node_id="ADTTreeHeatmap",
            display_name="ADT-Tree Acceptance Heatmap",
            category=CATEGORY_STATS,
            description="Paints every token with the number of tokens its target forward committed (bright = "
                        "long accepted drafts), optionally over the generated image, with a legend below.",
            inputs=[
                ARStats.Input("stats", tooltip="The sampler's stats output."),
                io.Image.Input("images", optional=True,
                               tooltip="The same sampler's images to draw the heatmap over (optional)."),
                io.Float.Input("opacity", default=0.55, min=0.0, max=1.0, step=0.05,
                               tooltip="Heatmap opacity over the images (ignored without images)."),
            ],
            outputs=[io.Image.Output(display_name="heatmap")],
        )

    @classmethod
    def execute(cls, stats, opacity, images=None) -> io.NodeOutput:
        return io.NodeOutput(runtime.to_output_image(support.heatmap_batch(stats, images, opacity)))


class ADTTreeCompare(io.ComfyNode):
    @classmethod
    def define_schema(cls):
        return io.Schema(
            node_id="ADTTreeCompare",
            display_name="ADT-Tree Compare Runs",
            category=CATEGORY_STATS,
            description="Speedup table of a fast run against a baseline run (e.g. ADT-Tree vs vanilla with the "
                        "same labels and seed): target forwards, accepted length, seconds, tokens/s.",
            inputs=[
                ARStats.Input("fast", tooltip="Stats of the accelerated run."),
                ARStats.Input("baseline", tooltip="Stats of the baseline run (usually method 'vanilla')."),
            ],
            outputs=[io.String.Output(display_name="table")],
            is_output_node=True,
        )

    @classmethod
    def execute(cls, fast, baseline) -> io.NodeOutput:
        text = support.compare_text(fast, baseline)
        return io.NodeOutput(text, ui=ui.PreviewText(text))
