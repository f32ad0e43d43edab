"""Loading transformers models from a local folder only (never a download), across transformers versions."""
import torch


def from_pretrained_local(cls, folder: str, dtype: torch.dtype):
    """`cls.from_pretrained(folder)` with local_files_only=True in `dtype`. transformers renamed the
    `torch_dtype` argument to `dtype` in 4.56; older versions would silently ignore the new name."""
    import transformers
    from packaging.version import Version
    key = "dtype" if Version(transformers.__version__.split("+")[0]) >= Version("4.56") else "torch_dtype"
    return cls.from_pretrained(folder, local_files_only=True, **{key: dtype})
