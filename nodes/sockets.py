"""Custom socket types and menu categories shared by the node modules."""
from comfy_api.latest import io

ARModel = io.Custom("AR_MODEL")
ARDraftHead = io.Custom("AR_DRAFT_HEAD")
ARSpecSettings = io.Custom("AR_SPEC_SETTINGS")
ARStats = io.Custom("AR_STATS")

CATEGORY = "sampling/autoregressive"
CATEGORY_LOADERS = f"{CATEGORY}/loaders"
CATEGORY_SETTINGS = f"{CATEGORY}/settings"
CATEGORY_STATS = f"{CATEGORY}/stats"
