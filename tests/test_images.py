"""Reading users' image files (paddle_cnn/images.py): limits checked from the header, errors that name the file."""
import numpy as np
import pytest
from PIL import Image

from paddle_cnn import images as I
from test_faults_cli import write_png


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
