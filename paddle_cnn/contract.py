"""What a trained network takes as input, recorded with it (checkpoint, export) and read by every consumer.

timm attaches ``pretrained_cfg`` (input size, mean, std) to each model for the same reason: a
net trained at 32x32 or on 3 channels must be fed 32x32 or 3 channels by ``predict``, ``export``
and ``evaluate``, not whatever the tutorials used.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any, Dict, List, Sequence, Tuple, Union

import numpy as np

from .typed import from_dict


@dataclass(frozen=True)
class InputContract:
    channels: int
    height: int
    width: int
    dataset: str  # its registry record says how images are framed, coloured and named
    normalize: str  # the RunConfig name: unit, fashion-mnist, mnist, cifar10
    mean: Union[float, List[float]]  # after dividing by 255: (x / 255 - mean) / std; a list is per channel
    std: Union[float, List[float]]
    class_names: List[str]
    bands: int = 0  # a hyperspectral window's spectral depth (after PCA); 0 for pictures

    @property
    def colour(self) -> bool:
        """Whether the images are colour (H, W, 3) rather than grey (H, W)."""
        from .datasets.registry import get_dataset

        return get_dataset(self.dataset).colour

    @property
    def shape(self) -> Tuple[int, ...]:
        """(C, H, W), or (C, bands, H, W) for a hyperspectral window."""
        return (self.channels, self.bands, self.height, self.width) if self.bands else (
            self.channels, self.height, self.width)

    def to_dict(self) -> Dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: Any, source: str) -> "InputContract":
        return from_dict(cls, data, source)

    def normalize_images(self, images: np.ndarray) -> np.ndarray:
        """uint8 grey (N, H, W) or colour (N, H, W, 3) at this contract's size -> float32 (N, C, H, W),
        as in training."""
        return normalize(images, self.mean, self.std, self.channels, colour=self.colour)


Stat = Union[float, Sequence[float]]


def normalize(images: np.ndarray, mean: Stat, std: Stat, channels: int = 1, colour: bool = False) -> np.ndarray:
    """uint8 grey (..., H, W) or colour (..., H, W, C) -> float32 (..., C, H, W): (x / 255 - mean) / std,
    with ``mean``/``std`` one number or one per channel.

    The one normalisation of the project: the training loader and every predictor call it. For a
    net that takes ``channels`` > 1 a grey image is repeated on each channel.
    """
    if colour:
        x = np.moveaxis(images, -1, -3).astype(np.float32)
    else:
        x = images.astype(np.float32)[..., None, :, :]
    m = np.asarray(mean, np.float32).reshape(-1, 1, 1)
    s = np.asarray(std, np.float32).reshape(-1, 1, 1)
    x *= np.float32(1.0 / 255.0) / s
    if np.any(m):
        x -= m / s
    return np.repeat(x, channels, axis=-3) if channels > 1 and not colour else x
