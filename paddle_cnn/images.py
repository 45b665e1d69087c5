"""Turn ordinary photos and scans into the inputs the networks were trained on.

Fashion-MNIST images are grey, 28x28, a light object on a dark background, scaled so the object's
longer side fills the frame; MNIST digits are fitted into a 20x20 box centred by mass in 28x28.
Photos usually show a dark object on a light background, so the polarity is flipped when the
image's border is brighter than mid-grey. CIFAR-10 images are whole 32x32 colour scenes: a photo
is centre-cropped to a square and resized, in RGB.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Union

import cv2
import numpy as np

from .errors import UserError

PathLike = Union[str, Path]



class ImageError(UserError):
    """A file that cannot be used as an input image; the message names the file."""


@dataclass
class Prepared:
    image: np.ndarray  # uint8 (H, W) grey or (H, W, 3) RGB, what the model sees before scaling
    inverted: bool


# The largest image decoded (width x height, from the file's header, before any pixel is read): a
# 108-megapixel phone photo fits; a 20000x20000 "decompression bomb" PNG of a few KB, which would take
# 400 MB to 1.6 GB once decoded, does not.
MAX_PIXELS = 120_000_000


def _header_size(path: Path):
    """(width, height) from the header, or None where Pillow does not know the format (OpenCV may)."""
    import warnings

    from PIL import Image, UnidentifiedImageError

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            with Image.open(path) as im:
                return im.size
    except Image.DecompressionBombError as exc:  # over twice Pillow's own limit: only its message has the size
        import re

        found = re.search(r"\((\d+) pixels\)", str(exc))
        pixels = f"{int(found.group(1)):,} pixels" if found else "more pixels than Pillow opens"
        raise ImageError(f"{path}: {pixels}, more than the {MAX_PIXELS:,} this command decodes; downscale it "
                         "first") from None
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError):
        return None


def read_image(path: PathLike) -> np.ndarray:
    """Any image OpenCV can decode (PNG, JPEG, BMP, ...), as uint8 grey or BGR(A); clear errors otherwise,
    and no image of over :data:`MAX_PIXELS` pixels is decoded."""
    path = Path(path)
    if path.is_dir():
        raise ImageError(f"{path}: is a directory, not an image file")
    if not path.is_file():
        raise ImageError(f"{path}: file not found")
    size = _header_size(path)
    if size is not None and size[0] * size[1] > MAX_PIXELS:
        raise ImageError(f"{path}: {size[0]}x{size[1]} is {size[0] * size[1]:,} pixels, more than the "
                         f"{MAX_PIXELS:,} this command decodes; downscale it first")
    try:
        raw = np.fromfile(str(path), dtype=np.uint8)  # np.fromfile + imdecode also handles non-ASCII paths
    except OSError as exc:
        raise ImageError(f"{path}: cannot read it ({exc.strerror})") from None
    if raw.size == 0:
        raise ImageError(f"{path}: file is empty")
    try:
        image = cv2.imdecode(raw, cv2.IMREAD_UNCHANGED)
    except cv2.error as exc:  # e.g. OpenCV's own pixel limit for a format Pillow did not know
        raise ImageError(f"{path}: OpenCV cannot decode it ({str(exc).strip().splitlines()[-1]})") from None
    if image is None or image.size == 0:
        raise ImageError(f"{path}: not a readable image (expected PNG, JPEG or another format OpenCV decodes)")
    if image.dtype == np.uint16:
        image = (image / 257).astype(np.uint8)
    elif image.dtype != np.uint8:
        raise ImageError(f"{path}: unsupported pixel type {image.dtype}")
    return apply_orientation(image, exif_orientation(path))


# EXIF orientation tag (0x0112) -> how to turn the stored pixels upright, as cameras intend.
_ORIENT = {
    2: lambda a: a[:, ::-1], 3: lambda a: a[::-1, ::-1], 4: lambda a: a[::-1],
    5: lambda a: np.swapaxes(a, 0, 1), 6: lambda a: np.rot90(a, -1), 7: lambda a: np.rot90(a, 1)[::-1],
    8: lambda a: np.rot90(a, 1),
}


def exif_orientation(path: Path) -> int:
    """The EXIF orientation of any format Pillow reads EXIF from (JPEG, PNG, WebP, TIFF); 1 if none.
    OpenCV's IMREAD_UNCHANGED, which keeps the alpha channel, does not apply it."""
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as im:
            value = im.getexif().get(0x0112, 1)
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError):
        return 1
    return value if isinstance(value, int) else 1


def apply_orientation(image: np.ndarray, orientation: int) -> np.ndarray:
    turn = _ORIENT.get(orientation)
    return image if turn is None else np.ascontiguousarray(turn(image))


def to_grey(image: np.ndarray) -> np.ndarray:
    """uint8 grey from grey, BGR, grey+alpha or BGRA.

    Transparent pixels are composited onto black for a light object and onto white for a dark
    one (judged from the opaque pixels), so the object stays visible whatever its colour.
    """
    if image.ndim == 2:
        return image
    if image.shape[2] in (2, 4):
        colour, alpha = image[:, :, :-1], image[:, :, -1].astype(np.float32) / 255.0
        grey = (colour[:, :, 0] if colour.shape[2] == 1 else cv2.cvtColor(colour, cv2.COLOR_BGR2GRAY))
        grey = grey.astype(np.float32)
        opaque = alpha > 0.5
        light_object = opaque.any() and float(grey[opaque].mean()) > 127
        background = 0.0 if light_object else 255.0
        return np.clip(grey * alpha + background * (1 - alpha) + 0.5, 0, 255).astype(np.uint8)
    if image.shape[2] == 1:
        return image[:, :, 0]
    return cv2.cvtColor(image, cv2.COLOR_BGR2GRAY)


def _border(grey: np.ndarray) -> np.ndarray:
    w = max(1, min(grey.shape) // 20)
    return np.concatenate([grey[:w].ravel(), grey[-w:].ravel(), grey[:, :w].ravel(), grey[:, -w:].ravel()])


def prepare(image: np.ndarray, dataset: str = "fashion-mnist", invert: str = "auto") -> Prepared:
    """Grey, polarity (``invert``: 'auto', 'yes' or 'no'), crop to the object, aspect-preserving fit, centring."""
    from .datasets.registry import get_dataset, list_datasets

    info = get_dataset(dataset)
    if info.framing is None:  # how the dataset frames its objects: (box the object is fitted into, canvas)
        framed = [n for n in list_datasets() if get_dataset(n).framing]
        raise ValueError(f"{dataset} has no framing for single photos; known: {', '.join(framed)}")
    grey = to_grey(image)
    inverted = invert == "yes" or (invert == "auto" and float(np.median(_border(grey))) > 127)
    if inverted:
        grey = 255 - grey
    # Subtract the background level so it becomes 0, then crop to where the object is.
    grey = np.clip(grey.astype(np.int16) - int(np.median(_border(grey))), 0, 255).astype(np.uint8)
    mask = grey > max(16, int(grey.max()) // 5)
    if mask.any():
        ys, xs = np.nonzero(mask)
        grey = grey[ys.min():ys.max() + 1, xs.min():xs.max() + 1]
    box, canvas = info.framing
    h, w = grey.shape
    scale = box / max(h, w)
    new_h, new_w = max(1, round(h * scale)), max(1, round(w * scale))
    interp = cv2.INTER_AREA if scale < 1 else cv2.INTER_LINEAR
    small = cv2.resize(grey, (new_w, new_h), interpolation=interp)
    out = np.zeros((canvas, canvas), np.uint8)
    top, left = (canvas - new_h) // 2, (canvas - new_w) // 2
    if info.centre_by_mass:
        m = cv2.moments(small)
        if m["m00"] > 0:
            top = int(round(canvas / 2 - m["m01"] / m["m00"]))
            left = int(round(canvas / 2 - m["m10"] / m["m00"]))
            top = min(max(top, 0), canvas - new_h)
            left = min(max(left, 0), canvas - new_w)
    out[top:top + new_h, left:left + new_w] = small
    return Prepared(out, inverted)


def to_rgb(image: np.ndarray) -> np.ndarray:
    """uint8 RGB from grey, BGR, grey+alpha or BGRA (transparent pixels over white, as photos show)."""
    if image.ndim == 2:
        return np.repeat(image[:, :, None], 3, axis=2)
    if image.shape[2] in (2, 4):
        colour, alpha = image[:, :, :-1].astype(np.float32), image[:, :, -1:].astype(np.float32) / 255.0
        image = np.clip(colour * alpha + 255.0 * (1 - alpha) + 0.5, 0, 255).astype(np.uint8)
    if image.shape[2] == 1:
        return np.repeat(image, 3, axis=2)
    return cv2.cvtColor(image, cv2.COLOR_BGR2RGB)


def prepare_scene(image: np.ndarray, height: int, width: int) -> Prepared:
    """A colour photo as a CIFAR-style input: RGB, centre crop to the target's aspect ratio, resize."""
    rgb = to_rgb(image)
    h, w = rgb.shape[:2]
    target = width / height
    if w / h > target:
        new_w = max(1, round(h * target))
        rgb = rgb[:, (w - new_w) // 2:(w - new_w) // 2 + new_w]
    else:
        new_h = max(1, round(w / target))
        rgb = rgb[(h - new_h) // 2:(h - new_h) // 2 + new_h]
    interp = cv2.INTER_AREA if rgb.shape[0] > height else cv2.INTER_LINEAR
    return Prepared(np.ascontiguousarray(cv2.resize(rgb, (width, height), interpolation=interp)), False)


def load_for_model(path: PathLike, contract, invert: str = "auto") -> Prepared:
    """An image file prepared as the run's data was: a grey object framed like its dataset (28x28),
    then resized to the contract's H x W with the training loader's interpolation; or, for colour
    datasets, an RGB scene cropped and resized to H x W."""
    if getattr(contract, "colour", False):
        return prepare_scene(read_image(path), contract.height, contract.width)
    prepared = prepare(read_image(path), contract.dataset, invert)
    if prepared.image.shape != (contract.height, contract.width):
        from .training.data import Resize

        prepared = Prepared(Resize((contract.height, contract.width))(prepared.image[:, :, None])[:, :, 0],
                            prepared.inverted)
    return prepared
