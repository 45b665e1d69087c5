"""Turn a RunConfig's data fields into train/validation/test datasets."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, List, Optional

import cv2
import numpy as np

from .. import datasets as D
from .config import RunConfig


@dataclass
class RunData:
    train: D.ArrayDataset
    val: D.ArrayDataset
    test: D.ArrayDataset
    class_names: List[str]


class FlipCrop:
    """Random horizontal flip and a random crop of the image padded by ``pad`` pixels (uint8 HxWxC in and out;
    2 pixels for 28x28 grey images, 4 for 32x32 colour ones as the ResNet paper's CIFAR recipe).

    Draws from the generator it is given, which the dataset seeds by (seed, epoch, index).
    """

    takes_rng = True

    def __init__(self, pad: int = 2):
        self.pad = pad

    def __call__(self, img: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        if rng.random() < 0.5:
            img = img[:, ::-1]
        p = self.pad
        padded = np.pad(img, ((p, p), (p, p), (0, 0)))
        dy, dx = rng.integers(0, 2 * p + 1, size=2)
        return np.ascontiguousarray(padded[dy:dy + img.shape[0], dx:dx + img.shape[1]])


class Resize:
    """Bilinear resize of a uint8 HxWxC image to ``(height, width)`` (full-size nets on 28x28 data)."""

    takes_rng = True

    def __init__(self, size):
        self.height, self.width = int(size[0]), int(size[1])

    def __call__(self, img: np.ndarray, rng: Optional[np.random.Generator] = None) -> np.ndarray:
        out = cv2.resize(img, (self.width, self.height), interpolation=cv2.INTER_LINEAR)
        return out[:, :, None] if out.ndim == 2 else out


class Compose:
    takes_rng = True

    def __init__(self, steps: List[Callable]):
        self.steps = steps

    def __call__(self, img, rng: np.random.Generator):
        for step in self.steps:
            img = step(img, rng)
        return img


def make_transform(config: RunConfig, train: bool) -> Optional[Callable]:
    steps: List[Callable] = []
    if train and config.augment == "flip-crop":
        steps.append(FlipCrop(pad=4 if config.dataset == "cifar10" else 2))
    if config.input_size is not None:
        steps.append(Resize(config.input_size))
    return Compose(steps) if steps else None


def _limit(ds: D.ArrayDataset, n: int) -> D.ArrayDataset:
    return ds.subset(np.arange(min(n, len(ds)))) if n else ds


def build_data(config: RunConfig) -> RunData:
    """Datasets for a run: the training set split (``val_size`` rows validate), and the test set."""
    kw = dict(normalize=config.normalize)
    if config.train_csv:
        full = D.FashionMNISTCSV(config.train_csv, **kw)
    else:
        full = D.open_dataset(config.dataset, "train", config.data_dir, verify_md5=config.verify_md5,
                              download=config.download, **kw)
    if config.test_csv:
        test = D.FashionMNISTCSV(config.test_csv, **kw)
    else:
        test = D.open_dataset(config.dataset, "test", config.data_dir, verify_md5=config.verify_md5,
                              download=config.download, **kw)
    for name, ds in (("training", full), ("test", test)):
        if not ds.has_labels:
            raise D.DataError(ds.source, f"the {name} data has no labels (ID layout); training and evaluation "
                                         "need the labelled layout 'label,pixel1,...'")
    full = _limit(full, config.train_limit)
    train, val = D.train_val_split(full, config.val_size, config.split, config.seed)
    test = _limit(test, config.test_limit)
    train.transform = make_transform(config, train=True)
    val.transform = test.transform = make_transform(config, train=False)
    for ds in (train, val, test):
        ds.channels, ds.seed = config.input_shape()[0], config.seed
    return RunData(train, val, test, D.class_names(config.dataset))
