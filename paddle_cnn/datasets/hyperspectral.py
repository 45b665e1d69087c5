"""Hyperspectral scenes (a .mat cube and its ground truth) and the HybridSN paper's protocol.

Protocol (Roy et al. 2019, as their official notebook does it): labelled pixels only (label 0
is "unlabelled"), the cube reduced by a whitened PCA fitted on the whole scene, zero-padded by
half the window, one window centred on each labelled pixel, a stratified split of the labelled
pixels (30% train), here with a validation part carved from the training pixels.

The windows are never materialised: Salinas has 54,129 labelled pixels, 2 GB as float32 25x25
windows of 15 bands. :class:`SceneWindows` cuts each batch from the padded PCA cube through a
strided view. PCA, the stratified split and kappa are numpy equivalents of scikit-learn's, tested
against it.
"""
from __future__ import annotations

import urllib.error
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Dict, Optional, Tuple, Union

import numpy as np
import paddle

from . import registry
from .errors import DataError, DataFileNotFoundError
from .idx import ENV_VAR, data_root, download, verify_md5

PathLike = Union[str, Path]
MAT5_MAGIC = b"MATLAB 5.0 MAT-file"
HDF5_MAGIC = b"\x89HDF\r\n\x1a\n"  # MATLAB v7.3 files are HDF5 with a 512-byte MATLAB header


def _is_mat73(path: Path) -> bool:
    """True for a MATLAB v7.3 (HDF5) file, False for v5/v6/v7; a missing or foreign file is refused."""
    if not path.is_file():
        raise DataFileNotFoundError(path, "file not found" if not path.exists() else "is not a file")
    with open(path, "rb") as f:
        head = f.read(520)
    if head[512:520] == HDF5_MAGIC or head[:8] == HDF5_MAGIC:
        return True
    if not head.startswith(MAT5_MAGIC):
        raise DataError(path, f"not a MATLAB .mat file (it starts {head[:20]!r}); expected the official "
                              "scene files, e.g. Indian_pines_corrected.mat")
    return False


def _h5py(path: Path):
    try:
        import h5py
    except ImportError:
        raise DataError(path, "is a MATLAB v7.3 (HDF5) file, which needs h5py: pip install h5py") from None
    return h5py


def mat_contents(path: PathLike) -> Dict[str, Tuple[int, ...]]:
    """The arrays a MATLAB file holds, by name, with their shapes (nothing is loaded)."""
    path = Path(path)
    v73 = _is_mat73(path)
    try:
        if v73:
            with _h5py(path).File(path, "r") as f:  # HDF5 lists MATLAB's column-major axes reversed
                return {k: tuple(reversed(f[k].shape)) for k in f.keys() if not k.startswith("#")}
        import scipy.io

        return {name: tuple(shape) for name, shape, _ in scipy.io.whosmat(str(path))}
    except DataError:
        raise
    except Exception as exc:  # a truncated or damaged file: the readers' own errors vary by the damage
        raise DataError(path, f"cannot be read as a MATLAB{' v7.3' if v73 else ''} file "
                              f"({type(exc).__name__}: {exc})") from None


def read_mat(path: PathLike, key: str) -> np.ndarray:
    """The numeric array ``key`` of a MATLAB file (v5/v6/v7 through scipy, v7.3 through h5py)."""
    path = Path(path)
    names = mat_contents(path)
    if key not in names:
        raise DataError(path, f"holds no key {key!r} (it holds: {', '.join(names) or 'nothing'})")
    v73 = _is_mat73(path)
    try:
        if v73:
            with _h5py(path).File(path, "r") as f:
                value = np.asarray(f[key]).T
        else:
            import scipy.io

            value = scipy.io.loadmat(str(path), variable_names=[key])[key]
    except Exception as exc:
        raise DataError(path, f"cannot be read as a MATLAB{' v7.3' if v73 else ''} file "
                              f"({type(exc).__name__}: {exc})") from None
    if not isinstance(value, np.ndarray) or value.dtype.kind not in "iuf":
        raise DataError(path, f"key {key!r} is not a numeric array ({getattr(value, 'dtype', type(value))})")
    return value


def scene_folder(name: str, root: Optional[PathLike] = None) -> Path:
    return data_root(root) / registry.get_dataset(name).folder


def ensure_scene(name: str, root: Optional[PathLike] = None, *, download_missing: bool = True,
                 verify: bool = True) -> Dict[str, Path]:
    """{'cube': path, 'ground-truth': path}, fetched from the publisher (landing only on an md5 match)
    when missing and allowed, md5-checked when ``verify``."""
    info = registry.get_dataset(name)
    folder = scene_folder(name, root)
    paths = {f.role: folder / f.name for f in info.files}
    missing = [f for f in info.files if not paths[f.role].is_file()]
    failures = []
    if missing and download_missing:
        for f in missing:
            for url in f.urls:
                try:
                    download(url, paths[f.role], f.md5)
                    break
                except (urllib.error.URLError, OSError, DataError) as exc:
                    failures.append(f"{url}: {exc}")
        missing = [f for f in info.files if not paths[f.role].is_file()]
    if missing:
        why = "downloading is switched off" if not download_missing else "download failed (" + "; ".join(failures) + ")"
        listing = "\n".join(f"  {paths[f.role]}  (md5 {f.md5}; {f.urls[0]})" for f in missing)
        raise DataFileNotFoundError(
            folder, f"{len(missing)} {name} file(s) missing and {why}.\nPut the official files here:\n{listing}\n"
                    f"or point ${ENV_VAR} (or --data-dir) at a folder holding {info.folder}/.")
    if verify:
        for f in info.files:
            try:
                verify_md5(paths[f.role], f.md5)
            except DataError as exc:
                raise DataError(paths[f.role], f"{exc.problem}; for a copy of your own in the official layout "
                                               "(a crop, say) pass --no-verify-md5") from None
    return paths


def check_scene(cube: np.ndarray, gt: np.ndarray, num_classes: int, cube_path, gt_path) -> None:
    """A cube (H, W, bands) of finite numbers and a ground truth (H, W) of labels 0..K on the same grid."""
    if cube.ndim != 3:
        raise DataError(cube_path, f"the cube must be H x W x bands, got shape {cube.shape}")
    if gt.ndim != 2:
        raise DataError(gt_path, f"the ground truth must be H x W, got shape {gt.shape}")
    if cube.shape[:2] != gt.shape:
        raise DataError(gt_path, f"ground truth is {gt.shape[0]} x {gt.shape[1]} but the cube {cube_path} is "
                                 f"{cube.shape[0]} x {cube.shape[1]}: they must cover the same pixels")
    if gt.dtype.kind == "f" and not np.array_equal(gt, np.round(gt)):
        raise DataError(gt_path, "the ground truth holds non-integer labels")
    bad = np.argwhere((gt < 0) | (gt > num_classes))
    if len(bad):
        r, c = bad[0]
        raise DataError(gt_path, f"label {gt[r, c]:g} at row {r}, column {c} is outside 0..{num_classes} "
                                 f"(0 = unlabelled, 1..{num_classes} the classes)")
    if not (gt > 0).any():
        raise DataError(gt_path, "no labelled pixel (every label is 0)")
    if cube.dtype.kind == "f":
        _check_finite(cube, cube_path)


def _check_finite(cube: np.ndarray, path) -> None:
    bad = np.argwhere(~np.isfinite(cube))
    if len(bad):
        r, c, b = bad[0]
        raise DataError(path, f"holds {cube[r, c, b]} at row {r}, column {c}, band {b} "
                              f"({len(bad):,} non-finite values in all)")


def load_scene(name: str, root: Optional[PathLike] = None, *, download: bool = True,
               verify: bool = True) -> Tuple[np.ndarray, np.ndarray]:
    """(cube float32 (H, W, bands), ground truth int64 (H, W)) of a registered scene, checked."""
    info = registry.get_dataset(name)
    paths = ensure_scene(name, root, download_missing=download, verify=verify)
    cube_file, gt_file = info.file("cube"), info.file("ground-truth")
    cube = read_mat(paths["cube"], cube_file.key)
    gt = read_mat(paths["ground-truth"], gt_file.key)
    check_scene(cube, gt, info.num_classes, paths["cube"], paths["ground-truth"])
    return cube.astype(np.float32), gt.astype(np.int64)


# -- the protocol

def pca_whiten(cube: np.ndarray, n_components: int) -> Tuple[np.ndarray, float]:
    """The cube's pixels projected on their first ``n_components`` principal axes, each scaled to unit
    variance (scikit-learn's ``PCA(whiten=True).fit_transform``), and the share of variance kept.

    Signs follow scikit-learn's convention (each axis's largest loading is positive), so the result
    does not depend on the eigen-solver."""
    h, w, bands = cube.shape
    if not 1 <= n_components <= bands:
        raise ValueError(f"n_components must be between 1 and the {bands} bands, got {n_components}")
    x = cube.reshape(-1, bands).astype(np.float64)
    x -= x.mean(axis=0)
    cov = x.T @ x / (len(x) - 1)
    values, vectors = np.linalg.eigh(cov)  # ascending
    order = np.argsort(values)[::-1][:n_components]
    values, vectors = values[order], vectors[:, order]
    flip = np.sign(vectors[np.abs(vectors).argmax(axis=0), np.arange(n_components)])
    vectors *= flip
    kept = float(values.sum() / np.clip(np.linalg.eigvalsh(cov), 0, None).sum())
    out = (x @ vectors) / np.sqrt(np.maximum(values, np.finfo(np.float64).tiny))
    return out.reshape(h, w, n_components).astype(np.float32), kept


def cohen_kappa(confusion: np.ndarray) -> float:
    """Cohen's kappa of a confusion matrix (rows true, columns predicted): agreement beyond chance."""
    confusion = np.asarray(confusion, dtype=np.float64)
    n = confusion.sum()
    observed = np.trace(confusion) / n
    expected = float(confusion.sum(axis=0) @ confusion.sum(axis=1)) / n ** 2
    return 1.0 if expected == 1 else float((observed - expected) / (1 - expected))


def scene_metrics(confusion: np.ndarray) -> Dict[str, object]:
    """The paper's three numbers: overall accuracy, average (per-class) accuracy and kappa."""
    confusion = np.asarray(confusion, dtype=np.int64)
    per_class = np.diag(confusion) / np.maximum(confusion.sum(axis=1), 1)
    present = confusion.sum(axis=1) > 0
    return {"oa": float(np.trace(confusion) / confusion.sum()), "aa": float(per_class[present].mean()),
            "kappa": cohen_kappa(confusion),
            "per_class_acc": [float(v) if p else None for v, p in zip(per_class, present)]}  # None: not in the split


@dataclass
class PreparedScene:
    """A scene after PCA and padding, with its labelled pixels (row, column, label 0..K-1)."""

    padded: np.ndarray  # (H + 2m, W + 2m, bands) float32, zero-padded PCA cube
    window: int
    rows: np.ndarray
    cols: np.ndarray
    labels: np.ndarray
    shape: Tuple[int, int]  # H, W of the scene
    variance_kept: float

    @property
    def bands(self) -> int:
        return self.padded.shape[2]

    def windows_view(self) -> np.ndarray:
        """(H, W, bands, window, window): the window centred on every pixel, as a view (no copy)."""
        return np.lib.stride_tricks.sliding_window_view(self.padded, (self.window, self.window), axis=(0, 1))

    def reduced(self) -> np.ndarray:
        """(H, W, bands): the PCA cube without its padding (a view)."""
        m = self.window // 2
        return self.padded[m:m + self.shape[0], m:m + self.shape[1]]

    def ground_truth(self) -> np.ndarray:
        """(H, W) labels 1..K of the labelled pixels, 0 elsewhere (as the ground-truth file has them)."""
        truth = np.zeros(self.shape, np.int64)
        truth[self.rows, self.cols] = self.labels + 1
        return truth


def prepare_scene(cube: np.ndarray, gt: Optional[np.ndarray], bands: int, window: int) -> PreparedScene:
    """PCA to ``bands``, zero padding by half the ``window``; the labelled pixels of ``gt`` (none
    without one: a new scene to map)."""
    if window < 1 or window % 2 == 0:
        raise ValueError(f"the window must be an odd number of pixels, got {window}")
    reduced, kept = pca_whiten(cube, bands)
    m = window // 2
    padded = np.pad(reduced, ((m, m), (m, m), (0, 0)))
    gt = np.zeros(cube.shape[:2], np.int64) if gt is None else gt
    rows, cols = np.nonzero(gt > 0)
    return PreparedScene(padded, window, rows, cols, (gt[rows, cols] - 1).astype(np.int64), gt.shape, kept)


def read_cube(path: PathLike, key: Optional[str] = None, min_bands: int = 1) -> np.ndarray:
    """A scene's cube from a .mat file: ``key``, or the file's only 3-D numeric array; float32,
    checked (at least ``min_bands`` bands, finite)."""
    path = Path(path)
    if key is None:
        contents = mat_contents(path)
        arrays = [name for name, shape in contents.items() if len(shape) == 3]
        if len(arrays) != 1:
            what = f"several 3-D arrays ({', '.join(arrays)})" if arrays else \
                f"no 3-D array (it holds: {', '.join(contents) or 'nothing'})"
            raise DataError(path, f"holds {what}; a scene's cube is H x W x bands: name it with --key")
        key = arrays[0]
    cube = read_mat(path, key)
    if cube.ndim != 3:
        raise DataError(path, f"key {key!r} is {cube.ndim}-D; a scene's cube is H x W x bands")
    if cube.shape[2] < min_bands:
        raise DataError(path, f"the cube has {cube.shape[2]} bands; the model's PCA keeps {min_bands}, so it "
                              f"needs at least that many (a scene of the sensor it was trained on)")
    cube = cube.astype(np.float32)
    _check_finite(cube, path)
    return cube


class SceneWindows(paddle.io.Dataset):
    """Labelled pixels of a prepared scene as samples: float32 (1, bands, window, window) windows
    (HybridSN's input), cut per batch from the shared padded cube.

    Like :class:`~paddle_cnn.datasets.arrays.ArrayDataset` it has ``labels``, ``batch`` and
    ``loader``, so the batch loader, the trainer and evaluation take it unchanged.
    """

    colour = False
    transform = None

    def __init__(self, scene: PreparedScene, indices: np.ndarray, source: str, seed: int = 0):
        super().__init__()
        self.scene = scene
        self.indices = np.asarray(indices, dtype=np.int64)
        self.labels = scene.labels[self.indices]
        self.rows, self.cols = scene.rows[self.indices], scene.cols[self.indices]
        self.source = source
        self.channels = 1
        self.seed = seed
        self._view = scene.windows_view()

    has_labels = True

    def __len__(self) -> int:
        return len(self.indices)

    def batch(self, indices: np.ndarray, epoch: Optional[int] = None) -> np.ndarray:
        """float32 (n, 1, bands, window, window) of ``indices``: one fancy index into the view."""
        return np.ascontiguousarray(self._view[self.rows[indices], self.cols[indices]][:, None])

    def __getitem__(self, index: int):
        return self.batch(np.array([index]))[0], self.labels[index:index + 1]

    def subset(self, indices) -> "SceneWindows":
        return SceneWindows(self.scene, self.indices[np.asarray(indices, dtype=np.int64)], self.source, self.seed)

    def loader(self, batch_size: int = 64, shuffle: bool = False, drop_last: bool = False, seed: int = 0,
               rank: int = 0, world_size: int = 1):
        from .arrays import BatchLoader

        return BatchLoader(self, batch_size, shuffle=shuffle, drop_last=drop_last, seed=seed, rank=rank,
                           world_size=world_size)

    def counts(self, num_classes: int) -> list:
        return np.bincount(self.labels, minlength=num_classes).tolist()


def train_count(labelled: int, train_fraction: float) -> int:
    """How many of ``labelled`` pixels :func:`split_scene` puts in training (validation included)."""
    return int(round(train_fraction * labelled))


def split_scene(scene: PreparedScene, train_fraction: float, val_size: int, seed: int, source: str
                ) -> Tuple[SceneWindows, SceneWindows, SceneWindows]:
    """Stratified train / validation / test of the labelled pixels: ``train_fraction`` of each class
    trains (the paper: 30%), ``val_size`` of those are held out for validation (stratified too)."""
    from .arrays import split_indices

    n = len(scene.labels)
    train, test = split_indices(n, n - train_count(n, train_fraction), "stratified", seed, scene.labels)
    fit, val = split_indices(len(train), val_size, "stratified", seed + 1, scene.labels[train])
    make = lambda idx: SceneWindows(scene, idx, source, seed)  # noqa: E731
    return make(train[fit]), make(train[val]), make(test)


class ScenePixels:
    """Windows of every pixel of the scene in row-major order, labelled or not (for the whole-scene
    map); what :func:`~paddle_cnn.training.evaluation.predict_logits` takes."""

    def __init__(self, scene: PreparedScene):
        self.scene = scene
        self._view = scene.windows_view()

    def __len__(self) -> int:
        return self.scene.shape[0] * self.scene.shape[1]

    def batch(self, indices: np.ndarray) -> np.ndarray:
        rows, cols = np.divmod(np.asarray(indices), self.scene.shape[1])
        return np.ascontiguousarray(self._view[rows, cols][:, None])


def map_scene(scores: Callable[[np.ndarray], np.ndarray], scene: PreparedScene, batch_size: int = 1024,
              report: Optional[Callable[[int, int, float], None]] = None) -> np.ndarray:
    """Labels 1..K for every pixel of ``scene`` (H, W); ``scores`` maps float32 windows (n, 1, bands,
    window, window) to (n, K). ``report(done, total, pixels_per_s)`` is called after each tenth."""
    import time

    h, w = scene.shape
    chunk = max(batch_size, -(-h * w // 10))
    pixels, labels, started = ScenePixels(scene), [], time.perf_counter()
    for start in range(0, h * w, chunk):
        for lo in range(start, min(start + chunk, h * w), batch_size):
            labels.append(np.asarray(scores(pixels.batch(np.arange(lo, min(lo + batch_size, h * w))))).argmax(1) + 1)
        done = min(start + chunk, h * w)
        if report is not None:
            report(done, h * w, done / (time.perf_counter() - started))
    return np.concatenate(labels).reshape(h, w)


def write_scene(folder: PathLike, name: str, cube: np.ndarray, gt: np.ndarray, *, v73: bool = False) -> Dict[str, Path]:
    """A scene in the official layout (``folder/<name>/`` with the registered file names and keys);
    for tests and for crops of your own."""
    import scipy.io

    info = registry.get_dataset(name)
    out = Path(folder) / info.folder
    out.mkdir(parents=True, exist_ok=True)
    paths = {}
    for f, value in ((info.file("cube"), cube), (info.file("ground-truth"), gt)):
        paths[f.role] = out / f.name
        if v73:
            import h5py

            with h5py.File(paths[f.role], "w", userblock_size=512) as h5:
                h5.create_dataset(f.key, data=np.asarray(value).T)
            with open(paths[f.role], "r+b") as raw:
                raw.write(b"MATLAB 7.3 MAT-file, written by paddle_cnn".ljust(128, b" "))
        else:
            scipy.io.savemat(str(paths[f.role]), {f.key: value})
    return paths
