"""How alike two screenshots are: SSIM (scikit-image) and the share of pixels that visibly differ."""

from __future__ import annotations

import io
from dataclasses import dataclass

import numpy as np
from PIL import Image
from skimage.metrics import structural_similarity

# A channel has to move by more than this (of 255) for a pixel to count as different: anti-aliasing
# noise stays under it, a missing border or a re-wrapped line does not.
PIXEL_TOLERANCE = 24


@dataclass(frozen=True)
class Likeness:
    ssim: float
    mismatch_ratio: float  # share of pixels that differ by more than PIXEL_TOLERANCE in any channel


def rgb(png: bytes) -> np.ndarray:
    return np.asarray(Image.open(io.BytesIO(png)).convert("RGB"))


def likeness(live_png: bytes, replay_png: bytes) -> Likeness:
    live, replay = rgb(live_png), rgb(replay_png)
    if live.shape != replay.shape:
        raise ValueError(f"screenshots differ in size: live {live.shape}, replay {replay.shape}")
    ssim = structural_similarity(live, replay, channel_axis=2, data_range=255)
    differs = (np.abs(live.astype(np.int16) - replay.astype(np.int16)) > PIXEL_TOLERANCE).any(axis=2)
    return Likeness(round(float(ssim), 4), round(float(differs.mean()), 5))


def diff_png(live_png: bytes, replay_png: bytes) -> bytes:
    """The live screenshot dimmed, with the pixels that differ in red: where to look first."""
    live, replay = rgb(live_png), rgb(replay_png)
    differs = (np.abs(live.astype(np.int16) - replay.astype(np.int16)) > PIXEL_TOLERANCE).any(axis=2)
    out = (live * 0.35 + 160).astype(np.uint8)
    out[differs] = (220, 20, 20)
    buf = io.BytesIO()
    Image.fromarray(out).save(buf, format="PNG")
    return buf.getvalue()
