"""Datasets backed by in-memory uint8 arrays, the 59k/1k split, and a loader that builds whole
batches with array operations instead of per-item Python work."""
from __future__ import annotations

from pathlib import Path
from typing import Callable, Iterator, List, Optional, Sequence, Tuple, Union

import numpy as np
import paddle

from ..errors import ConfigError
from . import csv_format, registry

PathLike = Union[str, Path]

FASHION_MNIST_MEAN, FASHION_MNIST_STD = registry.FASHION_MNIST.mean, registry.FASHION_MNIST.std
MNIST_MEAN, MNIST_STD = registry.MNIST.mean, registry.MNIST.std
# Class names by dataset and language, as lists (the registry's records hold them).
CLASS_NAMES = {name: {lang: list(names) for lang, names in registry.get_dataset(name).classes.items()}
               for name in registry.list_datasets()}

Normalize = Union[None, str, Tuple[float, float]]
Stat = Union[float, Tuple[float, ...]]


def class_names(dataset: str = "fashion-mnist", lang: str = "en") -> List[str]:
    """Class names by label; ``lang`` is 'en' or, where the tutorials give them, 'zh'."""
    return list(registry.get_dataset(dataset).class_names(lang))


def mean_std(normalize: Normalize) -> Tuple[Stat, Stat]:
    """(shift, scale) applied after dividing by 255: 'unit' -> [0, 1]; a dataset's name -> its z-scores
    (per channel for colour ones); or an explicit (mean, std)."""
    if normalize is None or normalize == "unit":
        return 0.0, 1.0
    if isinstance(normalize, str) and normalize in registry.normalisations():
        info = registry.get_dataset(normalize)
        return info.mean, info.std
    if isinstance(normalize, (tuple, list)) and len(normalize) == 2:
        return float(normalize[0]), float(normalize[1])
    raise ValueError(f"normalize must be one of {', '.join(registry.normalisations())} or (mean, std), "
                     f"got {normalize!r}")


class ArrayDataset(paddle.io.Dataset):
    """Images (N, H, W) grey or (N, H, W, 3) RGB, uint8, with labels (N,) int64, or without labels.

    Items are ``(image float32 [C, H, W], label int64 [1])`` like ``paddle.vision`` datasets; an
    unlabelled dataset yields ``(image,)`` only, so nothing downstream mistakes a made-up label
    for a real one. ``transform`` gets the uint8 (H, W, 1) or (H, W, 3) image, and, if it has ``takes_rng = True``, a numpy
    Generator seeded by (``seed``, epoch, index) only, so an augmented item is the same whatever process,
    batch or resume draws it; if it returns uint8, scaling and ``normalize`` are applied afterwards.
    ``channels`` > 1 repeats a grey image (for nets built for colour input); colour images keep their 3.
    """

    def __init__(self, images: np.ndarray, labels: Optional[np.ndarray] = None, *,
                 transform: Optional[Callable] = None, normalize: Normalize = "unit", source: str = "<arrays>",
                 channels: int = 1, seed: int = 0):
        super().__init__()
        images = np.asarray(images)
        if images.dtype != np.uint8 or not (images.ndim == 3 or (images.ndim == 4 and images.shape[3] == 3)):
            raise ValueError(f"{source}: images must be uint8 of shape (N, H, W) or (N, H, W, 3), "
                             f"got {images.dtype} {images.shape}")
        if labels is not None:
            labels = np.asarray(labels, dtype=np.int64).reshape(-1)
            if len(labels) != len(images):
                raise ValueError(f"{source}: {len(labels)} labels for {len(images)} images")
        self.images = images
        self.labels = labels
        self.transform = transform
        self.normalize = normalize
        self.source = source
        self.colour = images.ndim == 4
        self.channels = 3 if self.colour else channels
        self.seed = seed
        self.epoch = 0  # the epoch __getitem__ draws augmentations for; BatchLoader passes its own
        self._shift, self._scale = mean_std(normalize)

    @property
    def has_labels(self) -> bool:
        return self.labels is not None

    def __len__(self) -> int:
        return len(self.images)

    def scale(self, images_uint8: np.ndarray) -> np.ndarray:
        """uint8 images (..., H, W[, 3]) -> float32 (..., C, H, W) scaled and normalised, in one array op."""
        from ..contract import normalize

        return normalize(images_uint8, self._shift, self._scale, self.channels, colour=self.colour)

    def image(self, index: int, epoch: Optional[int] = None):
        img = self.images[index]
        if self.transform is None:
            return self.scale(img)
        rng = np.random.default_rng([self.seed, self.epoch if epoch is None else epoch, int(index)])
        # Our transforms take the generator; others (paddle.vision.transforms) take the image only.
        img = img if self.colour else img[:, :, None]
        out = self.transform(img, rng) if getattr(self.transform, "takes_rng", False) else self.transform(img)
        if isinstance(out, np.ndarray) and out.dtype == np.uint8:
            return self.scale(out if self.colour else out.reshape(out.shape[:2]))
        return out

    def batch(self, indices: np.ndarray, epoch: Optional[int] = None) -> np.ndarray:
        """float32 (N, C, H, W) images of ``indices``: one array op without a transform, else item by item."""
        if self.transform is None:
            return self.scale(self.images[indices])
        return np.stack([np.asarray(self.image(i, epoch), dtype=np.float32) for i in indices])

    def __getitem__(self, index: int):
        image = self.image(index)
        if self.labels is None:
            return (image,)
        return image, self.labels[index:index + 1]

    def subset(self, indices: Sequence[int]) -> "ArrayDataset":
        """A new dataset holding only ``indices`` (copied, so the parent can be freed)."""
        indices = np.asarray(indices, dtype=np.int64)
        return ArrayDataset(self.images[indices], None if self.labels is None else self.labels[indices],
                            transform=self.transform, normalize=self.normalize, source=self.source,
                            channels=self.channels, seed=self.seed)

    def loader(self, batch_size: int = 64, shuffle: bool = False, drop_last: bool = False,
               seed: int = 0, rank: int = 0, world_size: int = 1) -> "BatchLoader":
        return BatchLoader(self, batch_size, shuffle=shuffle, drop_last=drop_last, seed=seed, rank=rank,
                           world_size=world_size)


class BatchLoader:
    """Iterates ``[images, labels]`` batches of an :class:`ArrayDataset` built by array slicing.

    ``paddle.Model.fit/evaluate/predict`` accept it in place of a DataLoader. Shuffling uses a
    generator seeded by ``(seed, epoch)``; the epoch advances at the end of each full pass (or is
    set with :meth:`set_epoch`), so a resumed run draws exactly the order it would have drawn.
    Datasets with a per-item ``transform`` fall back to calling it item by item.

    For data-parallel training with ``world_size`` processes, ``batch_size`` is the global batch:
    every process draws the same order and takes its ``rank``'s equal share of each global batch,
    so averaged gradients equal those of one process with the whole batch. That needs every
    global batch, the last one included, to divide evenly; other sizes are refused.
    """

    def __init__(self, dataset: ArrayDataset, batch_size: int = 64, *, shuffle: bool = False,
                 drop_last: bool = False, seed: int = 0, rank: int = 0, world_size: int = 1):
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        if not 0 <= rank < world_size:
            raise ValueError(f"rank must be in [0, {world_size}), got {rank}")
        check_even_shards(len(dataset), batch_size, world_size, drop_last)
        self.rank, self.world_size = rank, world_size
        self.dataset = dataset
        self.batch_size = batch_size
        self.shuffle = shuffle
        self.drop_last = drop_last
        self.seed = seed
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        full, rest = divmod(len(self.dataset), self.batch_size)
        return full + (1 if rest and not self.drop_last else 0)

    def order(self) -> np.ndarray:
        n = len(self.dataset)
        if not self.shuffle:
            return np.arange(n)
        return np.random.default_rng([self.seed, self.epoch]).permutation(n)

    def __iter__(self) -> Iterator[list]:
        ds = self.dataset
        order = self.order()
        for b in range(len(self)):
            idx_ = order[b * self.batch_size:(b + 1) * self.batch_size]
            if self.world_size > 1:
                idx_ = np.split(idx_, self.world_size)[self.rank]
            images = ds.batch(idx_, self.epoch)
            if ds.labels is None:
                yield [images]
            else:
                yield [images, ds.labels[idx_][:, None]]
        self.epoch += 1


def check_even_shards(n: int, batch_size: int, world_size: int, drop_last: bool = False) -> None:
    """Refuse a global batch size whose batches (the last one too) do not split evenly over the
    processes: an uneven share would weight some images more than one process does."""
    if world_size == 1:
        return
    last = n % batch_size
    bad = [size for size in (batch_size, 0 if drop_last else last) if size % world_size]
    if bad:
        raise ConfigError(f"{n} images in global batches of {batch_size} give a batch of {bad[0]}, which does not "
                         f"split evenly over {world_size} processes; choose a batch size that divides by "
                         f"{world_size} and leaves a last batch that does too")


def split_indices(n: int, val_size: int = 1000, method: str = "tail", seed: int = 0,
                  labels: Optional[np.ndarray] = None) -> Tuple[np.ndarray, np.ndarray]:
    """Train and validation indices of ``n`` rows.

    - ``tail``: the last ``val_size`` rows are validation, as the notebook does (59k/1k of 60k).
    - ``random``: a permutation seeded by ``seed``.
    - ``stratified``: per class in proportion to its frequency (largest remainders fill the
      rounding gap), rows drawn with ``seed``; needs ``labels``.
    Both index arrays are sorted, so the split does not depend on anything but its arguments.
    """
    if not 0 < val_size < n:
        raise ConfigError(f"val_size must be between 1 and {n - 1} for {n} rows, got {val_size}")
    if method == "tail":
        return np.arange(n - val_size), np.arange(n - val_size, n)
    rng = np.random.default_rng(seed)
    if method == "random":
        val = np.sort(rng.permutation(n)[:val_size])
    elif method == "stratified":
        if labels is None or len(labels) != n:
            raise ValueError("a stratified split needs one label per row")
        labels = np.asarray(labels)
        classes, counts = np.unique(labels, return_counts=True)
        exact = counts * val_size / n
        take = np.floor(exact).astype(int)
        take[np.argsort(-(exact - take), kind="stable")[:val_size - take.sum()]] += 1
        val = np.sort(np.concatenate([rng.permutation(np.flatnonzero(labels == c))[:k]
                                      for c, k in zip(classes, take)]))
    else:
        raise ValueError(f"split method must be 'tail', 'random' or 'stratified', got {method!r}")
    train = np.setdiff1d(np.arange(n), val, assume_unique=True)
    return train, val


class FashionMNISTCSV(ArrayDataset):
    """A Fashion-MNIST CSV file (labelled Kaggle layout or unlabelled ``ID`` layout) as a Dataset.

    ``ids`` holds the ID column of the unlabelled layout (None for the labelled one).
    """

    def __init__(self, path: PathLike, *, transform: Optional[Callable] = None, normalize: Normalize = "unit",
                 cache_dir: Optional[PathLike] = None, use_cache: bool = True):
        data = csv_format.load_csv(path, cache_dir=cache_dir, use_cache=use_cache)
        super().__init__(data.images, data.labels, transform=transform, normalize=normalize, source=str(path))
        self.ids = data.ids


def open_dataset(name: str, mode: str = "train", root: Optional[PathLike] = None, *,
                 transform: Optional[Callable] = None, normalize: Normalize = "unit", download: bool = True,
                 verify_md5: bool = True) -> ArrayDataset:
    """Split ``mode`` ('train' or 'test') of the official files of the image dataset ``name``,
    read by its registered reader (md5-checked unless ``verify_md5`` is off)."""
    info = registry.get_dataset(name)
    if info.kind != "images":
        raise ValueError(f"{name} is a {info.kind}, not a set of images: its samples come from "
                         "paddle_cnn.datasets.hyperspectral")
    images, labels = info.load(mode, root, download=download, verify=verify_md5)
    from .idx import data_root

    ds = ArrayDataset(images, labels, transform=transform, normalize=normalize,
                      source=f"{data_root(root) / info.folder} ({mode})")
    ds.mode = mode
    return ds


class IDXDataset(ArrayDataset):
    """One split ('train' or 'test') of a registered dataset's official files, md5-checked; a
    subclass names the dataset (``dataset_name``), as ``paddle.vision.datasets.MNIST`` does."""

    dataset_name = ""

    def __init__(self, mode: str = "train", root: Optional[PathLike] = None, *, transform: Optional[Callable] = None,
                 normalize: Normalize = "unit", download: bool = True, verify_md5: bool = True):
        ds = open_dataset(self.dataset_name, mode, root, download=download, verify_md5=verify_md5)
        super().__init__(ds.images, ds.labels, transform=transform, normalize=normalize, source=ds.source)
        self.mode = mode


class FashionMNISTIDX(IDXDataset):
    dataset_name = "fashion-mnist"


class MNISTIDX(IDXDataset):
    dataset_name = "mnist"


class Cifar10(IDXDataset):
    """The 50k training or 10k test images of CIFAR-10 from the official archive."""

    dataset_name = "cifar10"


def train_val_split(dataset: ArrayDataset, val_size: int = 1000, method: str = "tail",
                    seed: int = 0) -> Tuple[ArrayDataset, ArrayDataset]:
    """The notebook's split by default: the first 59,000 rows train, the last 1,000 validate."""
    train, val = split_indices(len(dataset), val_size, method, seed, dataset.labels)
    return dataset.subset(train), dataset.subset(val)
