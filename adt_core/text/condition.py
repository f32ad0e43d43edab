"""A condition batch with a key mask: caption features (LlamaGen t2i) or prompt token ids (Janus-Pro).

Both text families prepend a left-padded, variable-length condition to the image tokens, so a condition is
`values` [B, T, ...] plus `mask` [B, T] (True = a real position). The engines slice conditions per image
(`cond[i:i+1]`) and read `cond.shape[0]`, exactly as they do with a tensor of class labels, so this class
behaves like a tensor for those two uses and nothing more.
"""
from dataclasses import dataclass

import torch

from ..errors import InputError


@dataclass
class MaskedCondition:
    values: torch.Tensor   # [B, T, C] float features, or [B, T] long token ids
    mask: torch.Tensor     # [B, T] bool, True where the position is real (padding is on the left)

    def __post_init__(self):
        if self.mask.shape != self.values.shape[:2]:
            raise InputError(f"condition mask {tuple(self.mask.shape)} does not match values "
                             f"{tuple(self.values.shape)}")
        self.mask = self.mask.bool()

    @property
    def shape(self):
        return self.values.shape

    def __len__(self) -> int:
        return self.values.shape[0]

    def __getitem__(self, index) -> "MaskedCondition":
        if isinstance(index, int):
            index = slice(index, index + 1)
        return MaskedCondition(self.values[index], self.mask[index])

    def to(self, device) -> "MaskedCondition":
        return MaskedCondition(self.values.to(device), self.mask.to(device))

    @staticmethod
    def cat(parts) -> "MaskedCondition":
        return MaskedCondition(torch.cat([p.values for p in parts]), torch.cat([p.mask for p in parts]))
