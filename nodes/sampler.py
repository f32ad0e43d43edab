"""The sampler node: class labels in, images plus acceptance statistics out."""
from comfy_api.latest import io, ui

from . import runtime, support
from .sockets import CATEGORY, ARDraftHead, ARModel, ARSpecSettings, ARStats


class ADTTreeSampler(io.ComfyNode):
    @classmethod
    def define_schema(cls):
        return io.Schema(
            node_id="ADTTreeSampler",
            display_name="ADT-Tree AR Sampler",
            category=CATEGORY,
            description="Generates images token by token with a LlamaGen model, accelerated by speculative "
                        "decoding (ADT-Tree adaptive trees, EAGLE-2 trees, optional LANTERN), and reports how "
                        "many tokens each target forward produced.",
            search_aliases=["llamagen", "speculative decoding", "eagle", "lantern", "autoregressive sampler"],
            inputs=[
                ARModel.Input("model", tooltip="From 'ADT-Tree Load AR Model'."),
                ARDraftHead.Input("draft_head", optional=True,
                                  tooltip="From 'ADT-Tree Load Draft Head'; needed by every method but vanilla."),
                ARSpecSettings.Input("settings", optional=True,
                                     tooltip="Tree / ADT-Tree / LANTERN settings; defaults are used without it."),
                io.Combo.Input("method", options=list(support.SAMPLER_METHODS), default="adt",
                               tooltip="adt: adaptive draft trees; eagle2: fixed-size dynamic trees; vanilla: "
                                       "one token per forward (the baseline, no draft head)."),
                io.String.Input("class_labels", default="0",
                                tooltip="Comma-separated class indices (ImageNet for LlamaGen, e.g. '207, 360'); "
                                        "the demo model also takes names such as 'meadow, seaside'."),
                io.Int.Input("seed", default=0, min=0, max=0xffffffffffffffff, control_after_generate=True,
                             tooltip="Random seed; the same seed and settings give the same images."),
                io.Int.Input("batch_size", default=1, min=1, max=64,
                             tooltip="Images per class label."),
                io.Float.Input("cfg_scale", default=4.0, min=0.0, max=20.0, step=0.1,
                               tooltip="Classifier-free guidance; 1 or less turns it off (and halves the work)."),
                io.Float.Input("temperature", default=1.0, min=0.0, max=5.0, step=0.05,
                               tooltip="Sampling temperature; 0 = greedy."),
                io.Int.Input("top_k", default=0, min=0, max=65536,
                             tooltip="Keep the k most likely tokens (0 = off). LlamaGen uses 2000, the demo 64."),
                io.Float.Input("top_p", default=1.0, min=0.01, max=1.0, step=0.01,
                               tooltip="Nucleus sampling threshold (1 = off)."),
                io.Int.Input("cfg_interval", default=-1, min=-1, max=4096, advanced=True,
                             tooltip="Stop guiding after this many tokens (-1 = guide every token)."),
            ],
            outputs=[
                io.Image.Output(display_name="images"),
                ARStats.Output(display_name="stats", tooltip="For the heatmap and compare nodes."),
                io.String.Output(display_name="stats_json", tooltip="The same statistics as JSON."),
            ],
            hidden=[io.Hidden.unique_id, io.Hidden.extra_pnginfo],
        )

    @classmethod
    def execute(cls, model, method, class_labels, seed, batch_size, cfg_scale, temperature, top_k, top_p,
                cfg_interval, draft_head=None, settings=None) -> io.NodeOutput:
        config = model.pipeline.target.gpt.config
        labels = support.repeat_labels(
            support.parse_class_labels(class_labels, model.class_names, config.num_classes), batch_size)
        options = support.spec_options(method, settings, draft_head is not None, config.extra)
        sampling = support.sampling_config(temperature, top_k, top_p, cfg_scale, cfg_interval)
        draft = draft_head if method != "vanilla" else None
        pipe = support.with_draft(model, draft)

        runtime.load_to_device(model.patchers + (draft.patchers if draft else []),
                               support.kv_cache_bytes(pipe, len(labels), method, sampling.use_cfg))
        hooks = runtime.generation_hooks(pipe, len(labels), batched=method == "vanilla")
        try:
            result = pipe.generate(labels, options, sampling, seed, hooks=hooks)
        finally:
            pipe.release()

        record = support.stats_record(result, model, draft, options, labels, seed)
        if cls.hidden is not None:  # None only when execute() is called outside ComfyUI's executor
            support.add_to_pnginfo(cls.hidden.extra_pnginfo, cls.hidden.unique_id, record)
        return io.NodeOutput(runtime.to_output_image(result.images), record, support.stats_json(record),
                             ui=ui.PreviewText(support.stats_text(record)))
