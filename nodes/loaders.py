"""Loader nodes: the LlamaGen model with its VQ tokenizer, and a draft head checked against that model."""
import logging

from comfy_api.latest import io

from adt_core.pipeline import Pipeline

from . import runtime, support
from .sockets import CATEGORY_LOADERS, ARDraftHead, ARModel

logger = logging.getLogger(__name__)


class ADTTreeLoadModel(io.ComfyNode):
    @classmethod
    def define_schema(cls):
        return io.Schema(
            node_id="ADTTreeLoadModel",
            display_name="ADT-Tree Load AR Model",
            category=CATEGORY_LOADERS,
            description="Loads a class-conditional LlamaGen GPT and its VQ tokenizer (or the small bundled demo, "
                        "which runs on CPU). Weights are never downloaded.",
            search_aliases=["llamagen", "autoregressive", "ar model"],
            inputs=[
                io.Combo.Input("model", options=runtime.model_choices(support.FOLDER_MODELS),
                               default=support.DEMO_ENTRY,
                               tooltip="LlamaGen GPT checkpoint from models/ar_models (e.g. c2i_XL_384.pt), "
                                       "or the bundled demo."),
                io.Combo.Input("vq", options=runtime.model_choices(support.FOLDER_VQ), default=support.DEMO_ENTRY,
                               tooltip="VQ tokenizer from models/vq_models (e.g. vq_ds16_c2i.pt) that decodes the "
                                       "model's tokens; the demo model needs the demo tokenizer."),
                io.Combo.Input("precision", options=list(support.PRECISIONS), default="auto",
                               tooltip="Weight dtype. auto: bf16/fp16 where the GPU supports it, fp32 on CPU."),
                io.Combo.Input("image_size", options=list(support.IMAGE_SIZES), default="auto", advanced=True,
                               tooltip="Resolution the checkpoint was trained for. auto: from the file name "
                                       "(_256/_384) or the model's own config."),
            ],
            outputs=[ARModel.Output(display_name="model", tooltip="Model + tokenizer for the ADT-Tree sampler.")],
        )

    @classmethod
    def execute(cls, model, vq, precision, image_size) -> io.NodeOutput:
        gpt_path = runtime.resolve(support.FOLDER_MODELS, model, "gpt", "AR model")
        vq_path = runtime.resolve(support.FOLDER_VQ, vq, "vq", "VQ tokenizer")
        _, offload_device = runtime.devices()
        pipe = Pipeline.load(gpt_path, vq_path, image_size=support.parse_image_size(image_size),
                             device=str(offload_device), dtype=runtime.precision(precision))
        patchers = runtime.patchers(pipe.target.gpt, pipe.vq)
        c = pipe.target.gpt.config
        logger.info("ADT-Tree: loaded %s (%d layers x %d, %dx%d tokens, %s)", model, c.n_layer, c.dim,
                    c.grid_rows, c.grid_cols, pipe.target.dtype)
        return io.NodeOutput(support.ARModel(pipe, model, patchers))


class ADTTreeLoadDraftHead(io.ComfyNode):
    @classmethod
    def define_schema(cls):
        return io.Schema(
            node_id="ADTTreeLoadDraftHead",
            display_name="ADT-Tree Load Draft Head",
            category=CATEGORY_LOADERS,
            description="Loads an EAGLE/LANTERN draft head trained for the connected model; speculative "
                        "decoding needs one. The head must match the model's vocabulary and hidden size.",
            search_aliases=["eagle", "lantern", "draft model", "speculative"],
            inputs=[
                ARModel.Input("model", tooltip="The model this head was trained for; used to check the head."),
                io.Combo.Input("draft_head", options=runtime.model_choices(support.FOLDER_DRAFTS),
                               default=support.DEMO_ENTRY,
                               tooltip="A folder with config.json + model.safetensors (or a single weight "
                                       "file) in models/ar_draft_heads, or the bundled demo head."),
            ],
            outputs=[ARDraftHead.Output(display_name="draft_head", tooltip="Draft head for the ADT-Tree sampler.")],
        )

    @classmethod
    def execute(cls, model, draft_head) -> io.NodeOutput:
        path = runtime.resolve(support.FOLDER_DRAFTS, draft_head, "draft", "draft head")
        _, offload_device = runtime.devices()
        head = support.load_draft_for(model, path, draft_head, device=str(offload_device))
        logger.info("ADT-Tree: draft head %s loaded for %s", draft_head, model.name)
        return io.NodeOutput(support.ARDraftHead(head, draft_head, runtime.patchers(head)))
