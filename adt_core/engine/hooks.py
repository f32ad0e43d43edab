"""Callbacks a caller (CLI progress bar, ComfyUI node) can hang on a generation loop."""
from dataclasses import dataclass
from typing import Callable, List, Optional


@dataclass
class Hooks:
    # progress(image_index, tokens_done, tokens_total, tokens) after every committed run of tokens.
    # Speculative loops (one image at a time): `tokens` is that image's prefix so far. The batched vanilla
    # loop advances all images together: while running it reports image 0 with `tokens` = the newest token
    # of every image (one per image); at the end it reports each image once with its full token list.
    progress: Optional[Callable[[int, int, int, List[int]], None]] = None
    # called once per round / decoding step; raise from it to stop (e.g. ComfyUI's interrupt)
    check_interrupt: Optional[Callable[[], None]] = None

    def tick(self, image: int, done: int, total: int, tokens: List[int]) -> None:
        if self.check_interrupt is not None:
            self.check_interrupt()
        if self.progress is not None:
            self.progress(image, done, total, tokens)
