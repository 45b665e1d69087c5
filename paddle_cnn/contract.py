"""What a trained network takes as input, recorded with it (checkpoint, export) and read by every consumer.

timm attaches ``pretrained_cfg`` (input size, mean, std) to each model for the same reason: a
net trained at 32x32 or on 3 channels must be fed 32x32 or 3 channels by ``predict``, ``export``
and ``evaluate``, not whatever the tutorials used.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any, Dict, List, Tuple

import numpy as np

from .typed import from_dict


@dataclass(frozen=True)
class InputContract:
    channels: int
    height: int
    width: int
    dataset: str  # how images are framed (see images.FRAMING) and which class names apply
    normalize: str  # the RunConfig name: unit, fashion-mnist, mnist
    mean: float  # after dividing by 255: (x / 255 - mean) / std
    std: float
    class_names: List[str]

    @property
    def shape(self) -> Tuple[int, int, int]:
        return (self.channels, self.height, self.width)

    def to_dict(self) -> Dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: Any, source: str) -> "InputContract":
        return from_dict(cls, data, source)

    def normalize_images(self, images: np.ndarray) -> np.ndarray:
        """uint8 grey (N, H, W) at this contract's size -> float32 (N, C, H, W), as in training."""
        return normalize(images, self.mean, self.std, self.channels)


def normalize(images: np.ndarray, mean: float, std: float, channels: int = 1) -> np.ndarray:
    """uint8 grey (..., H, W) -> float32 (..., C, H, W): (x / 255 - mean) / std.

    The one normalisation of the project: the training loader and every predictor call it. For a
    net that takes ``channels`` > 1 the grey image is repeated on each channel.
    """
    x = images.astype(np.float32)[..., None, :, :]
    x *= np.float32(1.0 / (255.0 * std))
    if mean:
        x -= np.float32(mean / std)
    return np.repeat(x, channels, axis=-3) if channels > 1 else x
