"""CIFAR-10 from the official ``cifar-10-python.tar.gz`` (the pickled batches the NIN, GoogLeNet and
ResNet tutorials train on), read without running code from the file.

The batches are Python pickles. :func:`~paddle_cnn.safe_pickle.restricted_load` lets a pickle build numpy arrays, bytes, str,
numbers and plain containers, and nothing else: a tarball with any other global (``os.system``,
``builtins.eval``...) is refused before that object is built, and object arrays are refused too.
"""
from __future__ import annotations

import io
import pickle
import tarfile
from pathlib import Path
from typing import Dict, Optional, Tuple, Union

import numpy as np

from ..safe_pickle import Refused, restricted_load
from . import registry
from .errors import DataError, DataFileNotFoundError
from .idx import ENV_VAR, data_root, download, verify_md5

PathLike = Union[str, Path]

FOLDER = registry.CIFAR10.folder
_FILE = registry.CIFAR10.file("archive")
ARCHIVE, MD5, URLS = _FILE.name, _FILE.md5, _FILE.urls
MEMBERS = {"train": [f"data_batch_{i}" for i in range(1, 6)], "test": ["test_batch"]}
CLASS_NAMES = list(registry.CIFAR10.class_names("en"))
MEAN, STD = registry.CIFAR10.mean, registry.CIFAR10.std

def _key(d: dict, name: str):
    for k in (name.encode(), name):
        if k in d:
            return d[k]
    return None


def _read_batch(raw: bytes, source: str) -> Tuple[np.ndarray, np.ndarray]:
    try:
        batch = restricted_load(io.BytesIO(raw), encoding="bytes")
    except Refused as exc:
        raise DataError(source, f"refused to load: the pickle asks for {exc.what}; a CIFAR-10 batch holds only "
                                "numpy arrays, bytes and lists") from None
    except Exception as exc:  # a truncated or foreign file: say which member
        raise DataError(source, f"not a CIFAR-10 batch pickle ({type(exc).__name__}: {exc})") from None
    if not isinstance(batch, dict):
        raise DataError(source, f"expected a dict with 'data' and 'labels', got {type(batch).__name__}")
    data, labels = _key(batch, "data"), _key(batch, "labels")
    if not isinstance(data, np.ndarray) or data.dtype != np.uint8 or data.ndim != 2 or data.shape[1] != 3072:
        got = f"{data.dtype} {data.shape}" if isinstance(data, np.ndarray) else type(data).__name__
        raise DataError(source, f"key 'data' must be a uint8 array of shape (N, 3072), got {got}")
    if not isinstance(labels, (list, np.ndarray)) or len(labels) != len(data):
        raise DataError(source, f"key 'labels' must be a list of {len(data)} integers")
    labels = np.asarray(labels)
    if labels.dtype.kind not in "iu" or (len(labels) and (labels.min() < 0 or labels.max() > 9)):
        raise DataError(source, f"key 'labels' must hold integers 0-9, got {labels.dtype} "
                                f"{labels.min() if len(labels) else ''}..{labels.max() if len(labels) else ''}")
    # Rows are 1024 red, 1024 green, 1024 blue values, each 32x32 row-major: to (N, 32, 32, 3) RGB.
    images = np.ascontiguousarray(data.reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1))
    return images, labels.astype(np.int64)


def archive_path(root: Optional[PathLike] = None) -> Path:
    return data_root(root) / FOLDER / ARCHIVE


def ensure_archive(root: Optional[PathLike] = None, *, download_missing: bool = True,
                   verify: bool = True) -> Path:
    """The archive's path, downloaded (md5-checked, landing only when it matches) if missing and allowed."""
    path = archive_path(root)
    if path.is_file():
        if verify:
            try:
                verify_md5(path, MD5)
            except DataError as exc:
                raise DataError(path, f"{exc.problem}; for a copy of your own (e.g. a subset in the official "
                                      "layout) pass --no-verify-md5") from None
        return path
    failure = "downloading is switched off"
    if download_missing:
        errors = []
        for url in URLS:
            try:
                return download(url, path, MD5)
            except (OSError, DataError) as exc:
                errors.append(f"{url}: {exc}")
        failure = "download failed (" + "; ".join(errors) + ")"
    raise DataFileNotFoundError(
        path.parent, f"{ARCHIVE} missing and {failure}.\nPut the official file (md5 {MD5}) here:\n  {path}\n"
                     f"or point ${ENV_VAR} (or the data-dir option) at a folder holding {FOLDER}/.")


_CACHE: Dict[Tuple[str, float, int, str], Tuple[np.ndarray, np.ndarray]] = {}


def load_cifar10(mode: str = "train", root: Optional[PathLike] = None, *, download_missing: bool = True,
                 verify: bool = True) -> Tuple[np.ndarray, np.ndarray]:
    """(images uint8 (N, 32, 32, 3) RGB, labels int64 (N,)) of the 50k training or 10k test images."""
    if mode not in MEMBERS:
        raise ValueError(f"mode must be 'train' or 'test', got {mode!r}")
    path = ensure_archive(root, download_missing=download_missing, verify=verify)
    stat = path.stat()
    key = (str(path.resolve()), stat.st_mtime, stat.st_size, mode)
    if key in _CACHE:  # the two splits and repeated runs in one process read the tarball once each
        return _CACHE[key]
    try:
        with tarfile.open(path, "r:gz") as tar:
            found = {Path(m.name).name: m for m in tar.getmembers() if m.isfile()}
            images, labels = [], []
            for name in MEMBERS[mode]:
                if name not in found:
                    raise DataError(path, f"member cifar-10-batches-py/{name} is missing; is this the official "
                                          f"{ARCHIVE}?")
                raw = tar.extractfile(found[name]).read()
                x, y = _read_batch(raw, f"{path}: {found[name].name}")
                images.append(x)
                labels.append(y)
    except (tarfile.TarError, EOFError, OSError) as exc:
        raise DataError(path, f"not a readable .tar.gz ({exc})") from None
    result = (np.concatenate(images), np.concatenate(labels))
    _CACHE.clear()
    _CACHE[key] = result
    return result


def write_archive(path: PathLike, splits: Dict[str, Tuple[np.ndarray, np.ndarray]]) -> Path:
    """A tarball in the official layout from (images (N, 32, 32, 3) uint8, labels) per split, pickled
    as the official files are (protocol 2, bytes keys); for tests and small local copies."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)

    def add(tar, name, obj):
        raw = pickle.dumps(obj, protocol=2)
        info = tarfile.TarInfo(f"cifar-10-batches-py/{name}")
        info.size = len(raw)
        tar.addfile(info, io.BytesIO(raw))

    with tarfile.open(path, "w:gz") as tar:
        add(tar, "batches.meta", {b"label_names": [n.encode() for n in CLASS_NAMES], b"num_vis": 3072})
        for mode, (images, labels) in splits.items():
            names = MEMBERS[mode]
            for i, part in enumerate(np.array_split(np.arange(len(images)), len(names))):
                rows = images[part].transpose(0, 3, 1, 2).reshape(len(part), 3072)
                add(tar, names[i], {b"batch_label": f"{mode} batch {i + 1}".encode(),
                                    b"labels": [int(v) for v in labels[part]], b"data": np.ascontiguousarray(rows),
                                    b"filenames": [f"img_{j}.png".encode() for j in part]})
    return path
