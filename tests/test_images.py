"""Reading users' image files (paddle_cnn/images.py): limits checked from the header, errors that name the file."""
import numpy as np
import pytest
from PIL import Image

from helpers import cli
from paddle_cnn import images as I
from paddle_cnn.contract import InputContract
from test_faults_cli import write_png

FASHION_28 = InputContract(1, 28, 28, "fashion-mnist", "unit", 0.0, 1.0, [str(i) for i in range(10)])


@pytest.mark.parametrize("width, height", [(20000, 20000), (11000, 11000), (120_001, 1000)])
def test_an_image_over_the_pixel_limit_is_refused_from_its_header(tmp_path, width, height, monkeypatch):
    path = write_png(tmp_path / "big.png", width, height)
    decoded = []
    monkeypatch.setattr(I.cv2, "imdecode", lambda *a: decoded.append(a) or None)
    with pytest.raises(I.ImageError, match=rf"big.png: .*{width * height:,} pixels.*{I.MAX_PIXELS:,}"):
        I.read_image(path)
    assert not decoded, "the pixels were decoded before the size was checked"


def test_an_image_at_the_limit_is_read(tmp_path, monkeypatch):
    monkeypatch.setattr(I, "MAX_PIXELS", 64 * 48)
    Image.fromarray(np.full((48, 64), 7, np.uint8)).save(tmp_path / "ok.png")
    assert I.read_image(tmp_path / "ok.png").shape == (48, 64)
    Image.fromarray(np.full((48, 65), 7, np.uint8)).save(tmp_path / "over.png")
    with pytest.raises(I.ImageError, match="65x48 is 3,120 pixels, more than the 3,072"):
        I.read_image(tmp_path / "over.png")


def _shirt(h=60, w=40):
    img = np.zeros((h, w), np.uint8)
    img[8:h - 8, 6:w - 6] = 210
    img[8:20, :6] = img[8:20, w - 6:] = 210  # sleeves: the shape is not symmetric top to bottom
    return img


@pytest.mark.parametrize("orientation", [3, 6, 8])
def test_exif_orientation_is_applied(tmp_path, orientation):
    from PIL import Image

    from paddle_cnn import images as I

    upright = _shirt()
    stored = {3: np.rot90(upright, 2), 6: np.rot90(upright, 1), 8: np.rot90(upright, -1)}[orientation]
    exif = Image.Exif()
    exif[0x0112] = orientation
    path = tmp_path / "phone.jpg"
    Image.fromarray(np.ascontiguousarray(stored)).save(path, exif=exif.tobytes(), quality=98)
    got = I.read_image(path)
    got = got if got.ndim == 2 else I.to_grey(got)
    assert got.shape == upright.shape
    assert np.abs(got.astype(int) - upright.astype(int)).mean() < 6


@pytest.mark.parametrize("object_level", [230, 25])
def test_an_object_on_a_transparent_background_stays_visible(tmp_path, object_level):
    import cv2

    from paddle_cnn import images as I

    bgra = np.zeros((60, 40, 4), np.uint8)  # fully transparent, colour channels black
    mask = _shirt() > 0
    bgra[mask, :3] = object_level
    bgra[mask, 3] = 255
    path = tmp_path / "cutout.png"
    cv2.imwrite(str(path), bgra)
    prepared = I.load_for_model(path, FASHION_28)
    # What the user means: the opaque shape, light on dark like the training data, whatever its colour.
    expected = I.prepare(np.where(mask, 230, 0).astype(np.uint8), "fashion-mnist").image
    assert np.abs(prepared.image.astype(int) - expected.astype(int)).mean() < 12
    assert (prepared.image > 100).mean() > 0.3


def test_a_directory_is_reported_as_a_directory(finished_run, tmp_path):
    res = cli("predict", finished_run, tmp_path)
    assert res.returncode == 1 and f"{tmp_path}: is a directory, not an image file" in res.stderr


def test_non_ascii_file_names_draw_without_missing_glyphs(finished_run, tmp_path):
    import cv2

    names = ["chemise_été.png", "衬衫.png", "рубашка.png"]
    for name in names:
        cv2.imwrite(str(tmp_path / name), _shirt())
    res = cli("predict", finished_run, *[tmp_path / n for n in names], "--save-grid", tmp_path / "grid.png")
    assert res.returncode == 0, res.stderr
    assert "Glyph" not in res.stderr and "missing from" not in res.stderr, res.stderr
    from paddle_cnn.training.plots import displayable

    assert displayable("chemise_été.png", "image 1")[0] == "chemise_été.png"  # the default font has é
    text, family = displayable("衬衫.png", "image 2")
    assert family is not None or text == "image 2"  # a CJK font if one is installed, else the index

