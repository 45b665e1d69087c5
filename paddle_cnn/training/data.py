"""Turn a RunConfig's data fields into train/validation/test datasets."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, List, Optional

import cv2
import numpy as np

from .. import datasets as D
from .config import RunConfig


@dataclass
class RunData:
    train: D.ArrayDataset  # or a hyperspectral.SceneWindows: both batch, label and load alike
    val: D.ArrayDataset
    test: D.ArrayDataset
    class_names: List[str]
    scene: Optional[Any] = None  # the hyperspectral.PreparedScene the windows come from (for its map)


class FlipCrop:
    """Random horizontal flip and a random crop of the image padded by ``pad`` pixels (uint8 HxWxC in and out;
    2 pixels for 28x28 grey images, 4 for 32x32 colour ones as the ResNet paper's CIFAR recipe).

    Draws from the generator it is given, which the dataset seeds by (seed, epoch, index).
    """

    takes_rng = True

    def __init__(self, pad: int = 2, flip: bool = True):
        self.pad, self.flip = pad, flip

    def __call__(self, img: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        if rng.random() < 0.5 and self.flip:  # drawn either way: crop positions do not depend on flip
            img = img[:, ::-1]
        p = self.pad
        padded = np.pad(img, ((p, p), (p, p), (0, 0)))
        dy, dx = rng.integers(0, 2 * p + 1, size=2)
        return np.ascontiguousarray(padded[dy:dy + img.shape[0], dx:dx + img.shape[1]])


class RandomErasing:
    """With probability ``p``, one rectangle of 2-33% of the image (aspect ratio 0.3-3.3) filled with
    uniform random pixels: Zhong et al. 2017's random erasing, as zalando's Fashion-MNIST benchmark
    and timm (``RandomErasing(mode='pixel')``) use it. Up to 10 draws find a rectangle that fits;
    otherwise the image is left whole, as in the paper.
    """

    takes_rng = True

    def __init__(self, p: float, area=(0.02, 1 / 3), ratio=(0.3, 3.3)):
        self.p, self.area, self.log_ratio = p, area, (np.log(ratio[0]), np.log(ratio[1]))

    def __call__(self, img: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        if rng.random() >= self.p:
            return img
        h, w, c = img.shape
        for _ in range(10):
            target = rng.uniform(*self.area) * h * w
            aspect = np.exp(rng.uniform(*self.log_ratio))
            eh, ew = int(round(np.sqrt(target * aspect))), int(round(np.sqrt(target / aspect)))
            if 0 < eh < h and 0 < ew < w:
                y, x = rng.integers(0, h - eh + 1), rng.integers(0, w - ew + 1)
                out = img.copy()
                out[y:y + eh, x:x + ew] = rng.integers(0, 256, size=(eh, ew, c), dtype=np.uint8)
                return out
        return img


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
    if train and config.augment in ("flip-crop", "crop"):  # a mirrored digit is another digit (or none)
        steps.append(FlipCrop(pad=D.registry.get_dataset(config.dataset).augment_pad, flip=config.augment != "crop"))
    if config.input_size is not None:
        steps.append(Resize(config.input_size))
    if train and config.random_erasing:  # after resizing: the rectangle has sharp edges at the net's size
        steps.append(RandomErasing(config.random_erasing))
    return Compose(steps) if steps else None


def val_count(config: RunConfig, rows: int) -> int:
    """How many of ``rows`` training rows validate: ``val_fraction`` of them if set, else ``val_size``."""
    return max(1, int(round(config.val_fraction * rows))) if config.val_fraction else config.val_size


def _limit(ds: D.ArrayDataset, n: int, sample: str = "first", seed: int = 0) -> D.ArrayDataset:
    """The first ``n`` rows, or ``n`` random ones in random order (the tf.keras tutorial's subsets)."""
    if not n:
        return ds
    if sample == "random":
        return ds.subset(np.random.default_rng([seed, 17]).permutation(len(ds))[:min(n, len(ds))])
    return ds.subset(np.arange(min(n, len(ds))))


def build_data(config: RunConfig) -> RunData:
    """Datasets for a run: the training set split (``val_size`` rows validate), and the test set."""
    if D.get_dataset(config.dataset).kind == "scene":
        return _scene_data(config)
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
    full = _limit(full, config.train_limit, config.limit_sample, config.seed)
    train, val = D.train_val_split(full, val_count(config, len(full)), config.split, config.seed)
    test = _limit(test, config.test_limit, config.limit_sample, config.seed + 1)
    train.transform = make_transform(config, train=True)
    val.transform = test.transform = make_transform(config, train=False)
    for ds in (train, val, test):
        ds.channels, ds.seed = config.input_shape()[0], config.seed
    return RunData(train, val, test, D.class_names(config.dataset))


def _scene_data(config: RunConfig) -> RunData:
    """A hyperspectral scene under the HybridSN protocol: PCA to ``pca_bands``, a window of
    ``input_size`` around each labelled pixel, a stratified ``train_fraction`` split, ``val_size``
    of the training pixels held out."""
    from ..datasets import hyperspectral as H

    info = D.get_dataset(config.dataset)
    cube, gt = info.load("all", config.data_dir, download=config.download, verify=config.verify_md5)
    _, bands, window, _ = config.input_shape()
    folder = H.scene_folder(config.dataset, config.data_dir)
    if bands > cube.shape[2]:
        raise D.DataError(folder,
                          f"pca_bands={bands} but the cube has only {cube.shape[2]} bands")
    scene = H.prepare_scene(cube, gt, bands, window)
    train_pixels = H.train_count(len(scene.labels), config.train_fraction)
    train, val, test = H.split_scene(scene, config.train_fraction, val_count(config, train_pixels), config.seed,
                                     str(folder))
    train, test = _limit(train, config.train_limit), _limit(test, config.test_limit)
    return RunData(train, val, test, D.class_names(config.dataset), scene=scene)
