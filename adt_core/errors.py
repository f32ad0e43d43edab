"""Error types. Both subclass ValueError so ComfyUI and the CLI show them as readable user errors."""


class CheckpointError(ValueError):
    """A model file is missing, unreadable, unsafe, or not what it was expected to be."""


class InputError(ValueError):
    """A generation setting or a combination of models is invalid."""
