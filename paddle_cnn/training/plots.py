"""Pictures of a run (PNG). Figures are made with matplotlib's object API and drawn by Agg, so
no display is needed and importing this module selects no backend for the rest of the program."""
from __future__ import annotations

from dataclasses import asdict, is_dataclass
from pathlib import Path
from typing import Dict, List, Optional, Sequence

import numpy as np

from ..fileio import atomic_write


def subplots(*args, figsize=None, constrained_layout=False, **kwargs):
    """A figure and its axes without pyplot's global state (safe in threads and in tests)."""
    from matplotlib.figure import Figure

    fig = Figure(figsize=figsize, constrained_layout=constrained_layout)
    return fig, fig.subplots(*args, **kwargs)


def save(fig, path) -> Path:
    """``fig`` as a PNG at ``path``, written atomically."""
    atomic_write(path, lambda tmp: fig.savefig(tmp, dpi=110, bbox_inches="tight", format="png"))
    return Path(path)


def tile_grid(images: np.ndarray, rows: int, cols: int, pad: int = 2) -> np.ndarray:
    """uint8 (N, H, W[, 3]) -> one uint8 (rows*(H+pad)+pad, cols*(W+pad)+pad[, 3]) mosaic, row-major."""
    n, h, w = images.shape[:3]
    grid = np.full((rows * (h + pad) + pad, cols * (w + pad) + pad) + images.shape[3:], 128, np.uint8)
    for i in range(min(n, rows * cols)):
        r, c = divmod(i, cols)
        grid[pad + r * (h + pad): pad + r * (h + pad) + h, pad + c * (w + pad): pad + c * (w + pad) + w] = images[i]
    return grid


def samples_by_class(images: np.ndarray, labels: np.ndarray, num_classes: int, per_class: int = 10) -> np.ndarray:
    """The first ``per_class`` images of each class, class by class (a classes x per_class grid)."""
    picked = []
    for c in range(num_classes):
        idx = np.flatnonzero(labels == c)[:per_class]
        block = np.zeros((per_class,) + images.shape[1:], np.uint8)
        block[: len(idx)] = images[idx]
        picked.append(block)
    return np.concatenate(picked)


def sample_grid(images: np.ndarray, labels: np.ndarray, class_names: Sequence[str], path,
                per_class: int = 10) -> Path:
    """A classes x ``per_class`` grid of training images, one class per row, named on the left."""
    k = len(class_names)
    grid = tile_grid(samples_by_class(images, labels, k, per_class), k, per_class)
    fig, ax = subplots(figsize=(per_class * 0.6 + 1.5, k * 0.6))
    ax.imshow(grid, cmap="gray", vmin=0, vmax=255)
    step = images.shape[1] + 2
    ax.set_yticks([2 + step * r + images.shape[1] / 2 for r in range(k)])
    ax.set_yticklabels(class_names)
    ax.set_xticks([])
    ax.set_title(f"{per_class} training images per class")
    return save(fig, path)


def training_curves(histories: Dict[str, List[dict]], path, title: str = "") -> Path:
    """Loss and accuracy per epoch for one or more runs: train (running, train mode) and val (whole set)."""
    fig, axes = subplots(1, 2, figsize=(11, 4))
    for name, rows in histories.items():
        rows = [asdict(r) if is_dataclass(r) else r for r in rows]
        epochs = [r["epoch"] for r in rows]
        for ax, key in zip(axes, ("loss", "acc")):
            line, = ax.plot(epochs, [r[f"val_{key}"] for r in rows], marker="o", label=f"{name} val")
            ax.plot(epochs, [r[f"train_{key}"] for r in rows], linestyle="--", color=line.get_color(),
                    label=f"{name} train (running)")
    for ax, key in zip(axes, ("loss", "accuracy")):
        ax.set_xlabel("epoch")
        ax.set_ylabel(key)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    if title:
        fig.suptitle(title)
    return save(fig, path)


def curves_grid(results: Sequence[dict], path, title: str = "", cols: int = 4) -> Path:
    """One small panel per run (train running accuracy, whole-set validation accuracy, the EMA's if
    kept), titled with its final test accuracy: many nets' curves stay readable where one panel of
    two dozen lines would not. ``results`` are results.json dicts with a ``history``."""
    from matplotlib.ticker import MaxNLocator

    results = [r for r in results if r.get("history")]
    if not results:
        raise ValueError("no run here has a per-epoch history to draw")
    rows = -(-len(results) // cols)
    cols = min(cols, len(results))
    fig, axes = subplots(rows, cols, figsize=(3.4 * cols, 2.7 * rows), squeeze=False, constrained_layout=True)
    for ax, r in zip(axes.flat, results):
        hist = [asdict(h) if is_dataclass(h) else h for h in r["history"]]
        epochs = [h["epoch"] for h in hist]
        ax.plot(epochs, [h["train_acc"] for h in hist], linestyle="--", color="C0", label="train (running)")
        ax.plot(epochs, [h["val_acc"] for h in hist], marker=".", color="C1", label="val (1k, whole set)")
        if any(h.get("ema_val_acc") is not None for h in hist):
            ax.plot(epochs, [h.get("ema_val_acc") for h in hist], color="C2", label="EMA val")
        test = (r.get("test") or {}).get("acc")
        if test is not None:
            ax.axhline(test, color="C3", linewidth=0.8, label="test after last epoch")
        ax.set_title(f"{r['net']}" + (f": test {test:.4f}" if test is not None else ""), fontsize=9)
        last = hist[-1]
        ax.set_ylim(max(0.0, min(last["train_acc"], last["val_acc"]) - 0.08), 1.0)
        ax.set_xlabel("epoch", fontsize=8)
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.tick_params(labelsize=7)
        ax.grid(alpha=0.3)
    for ax in list(axes.flat)[len(results):]:
        ax.set_visible(False)
    axes.flat[0].legend(fontsize=7, loc="lower right")
    if title:
        fig.suptitle(title)
    return save(fig, path)


def _confusion(matrix: np.ndarray, class_names: Sequence[str], title: str):
    fig, ax = subplots(figsize=(7, 6))
    ax.imshow(matrix, cmap="Blues")
    k = len(class_names)
    ax.set_xticks(range(k))
    ax.set_yticks(range(k))
    ax.set_xticklabels(class_names, rotation=45, ha="right", fontsize=8)
    ax.set_yticklabels(class_names, fontsize=8)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    threshold = matrix.max() / 2
    for (i, j), v in np.ndenumerate(matrix):
        ax.text(j, i, str(v), ha="center", va="center", fontsize=7, color="white" if v > threshold else "black")
    ax.set_title(title)
    fig.tight_layout()  # the rotated class names would be cut off at the figure's edge otherwise
    return fig


def confusion_figure(matrix: np.ndarray, class_names: Sequence[str], path, title: str = "confusion matrix") -> Path:
    return save(_confusion(matrix, class_names, title), path)


def confusion_image(matrix: np.ndarray, class_names: Sequence[str], title: str = "confusion matrix") -> np.ndarray:
    """The confusion figure as an RGB uint8 array (for VisualDL)."""
    fig = _confusion(matrix, class_names, title)
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    canvas = FigureCanvasAgg(fig)
    canvas.draw()
    return np.asarray(canvas.buffer_rgba())[..., :3].copy()


def image_grid(images: np.ndarray, captions: Sequence[str], path, *, cols: int = 6, red: Sequence[bool] = (),
               families: Sequence[Optional[str]] = (), title: Optional[str] = None, fontsize: int = 8) -> Path:
    """The one grid of grey (N, H, W) or RGB (N, H, W, 3) images with a caption above each (red where
    ``red[i]``); every picture of images in this module is one of these."""
    n = len(images)
    cols = max(1, min(cols, n))
    rows = -(-n // cols)
    lines = max((c.count("\n") + 1 for c in captions), default=1)
    fig, axes = subplots(rows, cols, figsize=(cols * 2.1, rows * (1.5 + 0.3 * lines)), squeeze=False)
    for ax, i in zip(axes.ravel(), range(rows * cols)):
        ax.axis("off")
        if i < n:
            ax.imshow(images[i], cmap="gray", vmin=0, vmax=255)
            ax.set_title(captions[i], fontsize=fontsize, color="red" if i < len(red) and red[i] else "black",
                         family=families[i] if i < len(families) else None)
    if title:
        fig.suptitle(title)
    return save(fig, path)


def prediction_grid(images: np.ndarray, labels: np.ndarray, probs: np.ndarray, class_names: Sequence[str], path,
                    cols: int = 6, title: Optional[str] = None) -> Path:
    """Images with predicted class and probability above the true class; wrong ones in red."""
    preds = probs.argmax(1)
    captions = [f"{class_names[p]} {probs[i, p]:.2f}\ntrue: {class_names[int(labels[i])]}" for i, p in enumerate(preds)]
    return image_grid(images, captions, path, cols=cols, red=list(preds != labels.reshape(-1)), title=title)


def comparison_predictions(images: np.ndarray, labels: np.ndarray, probs: Dict[str, np.ndarray],
                           class_names: Sequence[str], path, cols: int = 6) -> Path:
    """Random test images, each captioned with the true class and every run's prediction (red if wrong)."""
    captions, red = [], []
    for i, true in enumerate(int(v) for v in labels):
        lines = [f"true: {class_names[true]}"]
        for name, p in probs.items():
            pred = int(p[i].argmax())
            lines.append(f"{name}: {class_names[pred]} {p[i, pred]:.2f}")
        captions.append("\n".join(lines))
        red.append(any(int(p[i].argmax()) != true for p in probs.values()))
    return image_grid(images, captions, path, cols=cols, red=red, fontsize=7)


_CJK_NAMES = ("CJK", "WenQuanYi", "SimHei", "Heiti", "Noto Sans SC")


def cjk_family() -> Optional[str]:
    """A font family that draws Chinese, or None: an installed one, else the Noto Sans CJK SC that
    the ``zh`` extra (``pip install paddle-cnn[zh]``, the mplfonts package) ships, registered here."""
    from matplotlib import font_manager

    for f in font_manager.fontManager.ttflist:
        if any(k in f.name for k in _CJK_NAMES):
            return f.name
    try:
        import importlib.util

        spec = importlib.util.find_spec("mplfonts")
    except (ImportError, ValueError):
        spec = None
    if spec is None or not spec.submodule_search_locations:
        return None
    font = Path(list(spec.submodule_search_locations)[0]) / "fonts" / "NotoSansCJKsc-Regular.otf"
    if not font.is_file():
        return None
    font_manager.fontManager.addfont(str(font))
    return font_manager.FontProperties(fname=str(font)).get_name()


def has_cjk_font() -> bool:
    """Whether matplotlib can draw Chinese class names (otherwise they would render as boxes)."""
    return cjk_family() is not None


def input_grid(images: np.ndarray, probs: np.ndarray, class_names: Sequence[str], titles: Sequence[str],
               path, cols: int = 6) -> Path:
    """The inputs exactly as the model saw them (after inversion, fitting and resizing), with the top class."""
    captions, families = [], []
    for i, top in enumerate(probs.argmax(1)):
        name, family = displayable(titles[i][:18], f"image {i + 1}")
        captions.append(f"{name}\n{class_names[top]} {probs[i, top]:.2f}")
        families.append(family)
    return image_grid(images, captions, path, cols=cols, families=families)


def _charmap(path: str) -> set:
    from matplotlib.ft2font import FT2Font

    return set(FT2Font(path).get_charmap())


def displayable(text: str, fallback: str):
    """(text, font family) that draws without missing glyphs: the default font if it has every
    character, else an installed font that does, else the text transliterated to ASCII (é -> e), else
    ``fallback`` (e.g. the image's index)."""
    from matplotlib import font_manager

    codes = {ord(c) for c in text}
    default = font_manager.findfont(font_manager.FontProperties())
    if codes <= _charmap(default):
        return text, None
    cjk_family()  # registers the zh extra's font, if installed
    for font in font_manager.fontManager.ttflist:
        if any(k in font.name for k in _CJK_NAMES + ("Unifont",)):
            try:
                if codes <= _charmap(font.fname):
                    return text, font.name
            except (OSError, RuntimeError):
                continue
    import unicodedata

    ascii_text = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode()
    lost = sum(1 for c in text if not c.isascii() and not unicodedata.normalize("NFKD", c).encode("ascii", "ignore"))
    return (ascii_text, None) if ascii_text.strip() and not lost else (fallback, None)


def cost_accuracy(results: Sequence[dict], path, title: str = "test accuracy against cost") -> Path:
    """Test accuracy of each run against its forward FLOPs per image and its seconds per epoch."""
    from matplotlib.ticker import NullFormatter, ScalarFormatter

    fig, axes = subplots(1, 2, figsize=(12, 4.5), constrained_layout=True)
    colors = {r["net"]: f"C{i % 10}" for i, r in enumerate(results)}  # one colour per net in both panels
    for ax, key, label in ((axes[0], "flops", "forward MFLOPs per image (log)"),
                           (axes[1], "seconds_per_epoch", "seconds per training epoch on this machine (log)")):
        for r in results:
            if r.get(key) is None:
                continue
            x = r[key] / 1e6 if key == "flops" else r[key]
            ax.scatter([x], [r["test"]["acc"]], s=40, color=colors[r["net"]], label=r["net"])
        ax.set_xscale("log")
        ax.xaxis.set_major_formatter(ScalarFormatter())
        ax.xaxis.set_minor_formatter(NullFormatter())
        ax.margins(x=0.15, y=0.15)
        ax.set_xlabel(label)
        ax.set_ylabel("test accuracy (10k images)")
        ax.grid(alpha=0.3)
    axes[0].legend(fontsize=8, loc="upper left")
    fig.suptitle(title)
    return save(fig, path)


# A fixed legend for scene maps: label 0 (unlabelled) black, classes 1..16 in these colours, the
# same for every scene and every run so maps can be compared side by side.
SCENE_COLOURS = np.array([
    [0, 0, 0], [230, 25, 75], [60, 180, 75], [255, 225, 25], [0, 130, 200], [245, 130, 48], [145, 30, 180],
    [70, 240, 240], [240, 50, 230], [210, 245, 60], [250, 190, 212], [0, 128, 128], [220, 190, 255],
    [170, 110, 40], [255, 250, 200], [128, 0, 0], [170, 255, 195]], np.uint8)


def label_map_rgb(labels: np.ndarray) -> np.ndarray:
    """(H, W) labels 0..16 (0 = unlabelled) -> (H, W, 3) uint8 in the fixed scene legend."""
    labels = np.asarray(labels)
    if labels.min() < 0 or labels.max() >= len(SCENE_COLOURS):
        raise ValueError(f"scene labels must be 0..{len(SCENE_COLOURS) - 1}, got {labels.min()}..{labels.max()}")
    return SCENE_COLOURS[labels]


def false_colour(cube: np.ndarray) -> np.ndarray:
    """The first three bands of a (H, W, bands) cube stretched to uint8 RGB (2nd-98th percentile)."""
    rgb = np.asarray(cube[..., :3], np.float32)
    lo, hi = np.percentile(rgb, 2, axis=(0, 1)), np.percentile(rgb, 98, axis=(0, 1))
    return (np.clip((rgb - lo) / np.maximum(hi - lo, 1e-6), 0, 1) * 255).astype(np.uint8)


def classification_map(truth: Optional[np.ndarray], predicted: np.ndarray, class_names: Sequence[str], path,
                       title: str = "classification map") -> Path:
    """Ground truth, the prediction for every pixel, and the prediction on the labelled pixels only,
    side by side with the class legend (labels 1..K; 0 = unlabelled in ``truth``); without a ground
    truth, the prediction alone."""
    from matplotlib.patches import Patch

    if truth is None:
        panels = (("prediction, every pixel", predicted),)
    else:
        panels = (("ground truth", truth), ("prediction, every pixel", predicted),
                  ("prediction, labelled pixels", np.where(truth > 0, predicted, 0)))
    h, w = predicted.shape
    fig, axes = subplots(1, len(panels), figsize=(len(panels) * max(3.0, 4.0 * w / h) + 3.2, 4.6), squeeze=False)
    for ax, (name, labels) in zip(axes[0], panels):
        ax.imshow(label_map_rgb(labels), interpolation="nearest")
        ax.set_title(name, fontsize=10)
        ax.axis("off")
    handles = [Patch(color=SCENE_COLOURS[k + 1] / 255.0, label=f"{k + 1} {n}") for k, n in enumerate(class_names)]
    handles.append(Patch(color=SCENE_COLOURS[0] / 255.0, label="0 unlabelled"))
    fig.legend(handles=handles, loc="center right", fontsize=7, frameon=False)
    fig.suptitle(title)
    fig.subplots_adjust(right=0.78)
    return save(fig, path)
