"""ComfyUI nodes of the ADT-Tree pack.

Deliberately empty: the node modules import ComfyUI, while `support` must stay importable without it
(CI tests it alone), so nothing is imported here. ComfyUI reaches the nodes through the root
`comfy_entrypoint`, which imports `extension` lazily.
"""
