"""The IDX files (`*-ubyte.gz`) that `paddle.vision.datasets` downloads: locate, verify, download, parse.

Data is looked for in an explicit folder, else ``$PADDLE_CNN_DATA``, else the repository's
``data/``; each dataset lives in a sub-folder named like ``fashion-mnist/``.
"""
from __future__ import annotations

import gzip
import os
import shutil
import tempfile
import urllib.error
import urllib.request
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, Optional, Tuple, Union

import numpy as np

from . import registry
from .errors import DataError, DataFileNotFoundError

PathLike = Union[str, Path]

ENV_VAR = "PADDLE_CNN_DATA"
_REPO_DATA = Path(__file__).resolve().parents[2] / "data"

# IDX magic numbers: two zero bytes, element type 0x08 (unsigned byte), number of dimensions.
LABELS_MAGIC = 0x00000801
IMAGES_MAGIC = 0x00000803


@dataclass(frozen=True)
class IDXFile:
    filename: str
    md5: str


@dataclass(frozen=True)
class IDXSpec:
    """The four files of one dataset, with the md5s of the official copies and where Paddle fetches them."""

    name: str
    url_prefix: str
    train_images: IDXFile
    train_labels: IDXFile
    test_images: IDXFile
    test_labels: IDXFile
    num_classes: int = 10

    def files(self, mode: str) -> Tuple[IDXFile, IDXFile]:
        if mode == "train":
            return self.train_images, self.train_labels
        if mode == "test":
            return self.test_images, self.test_labels
        raise ValueError(f"mode must be 'train' or 'test', got {mode!r}")

    def all_files(self) -> Tuple[IDXFile, ...]:
        return self.train_images, self.train_labels, self.test_images, self.test_labels


def _spec(name: str) -> IDXSpec:
    info = registry.get_dataset(name)
    files = [IDXFile(info.file(role).name, info.file(role).md5)
             for role in ("train-images", "train-labels", "test-images", "test-labels")]
    prefix = info.file("train-images").urls[0].rsplit("/", 1)[0] + "/"
    return IDXSpec(name, prefix, *files, num_classes=info.num_classes)


# From the registry's records (the md5s and URLs paddle.vision.datasets.{MNIST,FashionMNIST} use);
# a dict, so a test can point one at another URL.
SPECS: Dict[str, IDXSpec] = {name: _spec(name) for name in ("fashion-mnist", "mnist")}


def get_spec(name: str) -> IDXSpec:
    try:
        return SPECS[name]
    except KeyError:
        raise ValueError(f"unknown dataset {name!r}; known: {', '.join(sorted(SPECS))}") from None


def data_root(root: Optional[PathLike] = None) -> Path:
    """Where data lives: ``root`` if given, else ``$PADDLE_CNN_DATA``, else the repository's ``data/``."""
    if root is not None:
        return Path(root)
    env = os.environ.get(ENV_VAR)
    if env:
        return Path(env)
    return _REPO_DATA


def md5sum(path: PathLike) -> str:
    from ..fileio import file_digest

    return file_digest(path, "md5")


def verify_md5(path: PathLike, expected: str) -> None:
    actual = md5sum(path)
    if actual != expected:
        raise DataError(path, f"md5 is {actual}, expected {expected} (the official file): "
                              "the file is corrupt, truncated or a different version; delete it and fetch it again")


def download(url: str, dest: PathLike, md5: str, timeout: float = 30.0) -> Path:
    """Fetch ``url`` to ``dest``. The bytes go to a temporary file outside ``dest``'s folder; only an
    md5-verified file creates that folder and lands there, so a failed download (or a typo in the
    data folder's name) leaves nothing behind."""
    from ..fileio import atomic_write

    dest = Path(dest)
    with tempfile.TemporaryDirectory(prefix="paddle_cnn-download-") as scratch:
        tmp = Path(scratch) / dest.name
        with open(tmp, "wb") as out, urllib.request.urlopen(url, timeout=timeout) as response:
            shutil.copyfileobj(response, out, 1 << 20)
        actual = md5sum(tmp)
        if actual != md5:
            raise DataError(url, f"downloaded file has md5 {actual}, expected {md5}; nothing was saved")
        atomic_write(dest, lambda part: shutil.copyfile(tmp, part))
    return dest


def ensure_files(name: str, root: Optional[PathLike] = None, *, download_missing: bool = True,
                 url_prefix: Optional[str] = None) -> Path:
    """Return the dataset folder, downloading missing files (md5-checked) when possible.

    If files are missing and cannot be fetched, the error lists each file, its md5 and the
    folder to put it in.
    """
    spec = get_spec(name)
    folder = data_root(root) / spec.name
    missing = [f for f in spec.all_files() if not (folder / f.filename).is_file()]
    if not missing:
        return folder
    failure = "downloading is switched off"
    if download_missing:
        prefix = url_prefix or spec.url_prefix
        try:
            for f in missing:
                download(prefix + f.filename, folder / f.filename, f.md5)
            return folder
        except (urllib.error.URLError, OSError, DataError) as exc:
            failure = f"download from {prefix} failed: {exc}"
    listing = "\n".join(f"  {folder / f.filename}  (md5 {f.md5})" for f in missing)
    raise DataFileNotFoundError(
        folder, f"{len(missing)} {spec.name} file(s) missing and {failure}.\n"
                f"Put the official files here:\n{listing}\n"
                f"or point ${ENV_VAR} (or the data-dir option) at a folder holding {spec.name}/.")


def _read_bytes(path: Path) -> bytes:
    if not path.is_file():
        raise DataFileNotFoundError(path, "file not found")
    raw = path.read_bytes()
    if path.suffix != ".gz":
        return raw
    try:
        return gzip.decompress(raw)
    except (OSError, EOFError, zlib.error) as exc:
        raise DataError(path, f"not a readable gzip file (truncated or corrupt): {exc}") from None


def read_idx(path: PathLike, expected_magic: Optional[int] = None) -> np.ndarray:
    """Parse an IDX file of unsigned bytes (optionally gzipped) into a uint8 array, strictly."""
    path = Path(path)
    data = _read_bytes(path)
    if len(data) < 4:
        raise DataError(path, f"too short for an IDX header ({len(data)} bytes)")
    magic = int.from_bytes(data[:4], "big")
    if magic >> 8 != 0x08 or (expected_magic is not None and magic != expected_magic):
        want = f"0x{expected_magic:08x}" if expected_magic is not None else "0x000008NN (unsigned bytes)"
        raise DataError(path, f"wrong IDX magic number 0x{magic:08x}, expected {want}")
    ndim = magic & 0xFF
    header = 4 + 4 * ndim
    if ndim == 0 or len(data) < header:
        raise DataError(path, f"IDX header declares {ndim} dimensions but the file has only {len(data)} bytes")
    dims = tuple(int.from_bytes(data[4 + 4 * i: 8 + 4 * i], "big") for i in range(ndim))
    expected = header + int(np.prod(dims, dtype=np.int64))
    if len(data) != expected:
        raise DataError(path, f"IDX length is {len(data)} bytes, expected {expected} for shape {dims}")
    return np.frombuffer(data, dtype=np.uint8, offset=header).reshape(dims)


def write_idx(path: PathLike, array: np.ndarray) -> None:
    """Write a uint8 array as an IDX file (gzipped if the name ends in .gz); used for exports and tests."""
    array = np.ascontiguousarray(array, dtype=np.uint8)
    header = bytes([0, 0, 0x08, array.ndim]) + b"".join(int(d).to_bytes(4, "big") for d in array.shape)
    payload = header + array.tobytes()
    path = Path(path)
    path.write_bytes(gzip.compress(payload, mtime=0) if path.suffix == ".gz" else payload)


def load_idx_pair(images_path: PathLike, labels_path: PathLike, num_classes: int = 10,
                  image_md5: Optional[str] = None, label_md5: Optional[str] = None):
    """Images (N, H, W) uint8 and labels (N,) int64 from a matching pair of IDX files."""
    if image_md5:
        verify_md5(images_path, image_md5)
    if label_md5:
        verify_md5(labels_path, label_md5)
    images = read_idx(images_path, IMAGES_MAGIC)
    labels = read_idx(labels_path, LABELS_MAGIC).astype(np.int64)
    if len(images) != len(labels):
        raise DataError(labels_path, f"{len(labels)} labels for {len(images)} images in {images_path}")
    bad = np.flatnonzero(labels >= num_classes)
    if bad.size:
        raise DataError(labels_path, f"label {labels[bad[0]]} at index {bad[0]} is outside 0..{num_classes - 1}")
    return images, labels


def load_idx(name: str, mode: str = "train", root: Optional[PathLike] = None, *, download_missing: bool = True,
             verify: bool = True):
    """Images and labels of ``name`` ('fashion-mnist' or 'mnist'), ``mode`` 'train' or 'test'."""
    spec = get_spec(name)
    folder = ensure_files(name, root, download_missing=download_missing)
    img, lab = spec.files(mode)
    return load_idx_pair(folder / img.filename, folder / lab.filename, spec.num_classes,
                         img.md5 if verify else None, lab.md5 if verify else None)
