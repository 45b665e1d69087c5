"""The CIFAR-10 reader (paddle_cnn/datasets/cifar.py) on tarballs in the official layout made here,
and a CIFAR-10 run from training to predicting colour photos."""
import io
import json
import os
import pickle
import subprocess
import sys
import tarfile

import cv2
import numpy as np
import pytest

from helpers import CLI_ENV, ROOT, cli
from paddle_cnn import datasets as D
from paddle_cnn.contract import normalize
from paddle_cnn.datasets import cifar
from paddle_cnn.training import RunConfig


def _cifar_split(n, seed):
    """Learnable 32x32 colour images: class c is bright in channel c % 3 at a row band of its own."""
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, 10, n)
    images = rng.integers(0, 60, (n, 32, 32, 3)).astype(np.uint8)
    for i, c in enumerate(labels):
        images[i, 3 * c:3 * c + 4, 4:28, c % 3] = 230
    return images, labels


@pytest.fixture
def cifar_root(tmp_path):
    root = tmp_path / "data"
    cifar.write_archive(root / "cifar-10" / cifar.ARCHIVE, {"train": _cifar_split(500, 1), "test": _cifar_split(120, 2)})
    return root


def test_cifar10_reads_the_official_layout_pixel_for_pixel(cifar_root):
    images, labels = cifar.load_cifar10("train", cifar_root, verify=False)
    want_images, want_labels = _cifar_split(500, 1)
    assert images.shape == (500, 32, 32, 3) and images.dtype == np.uint8
    np.testing.assert_array_equal(images, want_images)
    np.testing.assert_array_equal(labels, want_labels)
    test = D.open_dataset("cifar10", "test", cifar_root, verify_md5=False, normalize="cifar10")
    assert len(test) == 120 and test[0][0].shape == (3, 32, 32)
    first = _cifar_split(120, 2)[0][0].transpose(2, 0, 1) / 255.0
    expected = (first - np.array(cifar.MEAN)[:, None, None]) / np.array(cifar.STD)[:, None, None]
    np.testing.assert_allclose(test.batch(np.array([0]))[0], expected, rtol=1e-5, atol=1e-5)


def test_normalisation_is_per_channel():
    img = np.zeros((1, 2, 2, 3), np.uint8)
    img[..., 1] = 255
    out = normalize(img, (0.5, 0.25, 0.0), (0.5, 0.25, 1.0), channels=3, colour=True)
    assert out.shape == (1, 3, 2, 2)
    np.testing.assert_allclose(out[0, :, 0, 0], [-1.0, 3.0, 0.0])


class _Boom:
    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


@pytest.mark.parametrize("payload", ["os.system", "object array"])
def test_cifar10_reader_refuses_anything_but_arrays_and_runs_nothing(payload, tmp_path):
    marker = tmp_path / "ran"
    if payload == "os.system":
        batch = {b"data": _Boom(marker), b"labels": [0]}
    else:
        batch = {b"data": np.array([_Boom(marker)], dtype=object), b"labels": [0]}
    raw = pickle.dumps(batch, protocol=2)
    path = tmp_path / "data" / "cifar-10" / cifar.ARCHIVE
    path.parent.mkdir(parents=True)
    with tarfile.open(path, "w:gz") as tar:
        for name in cifar.MEMBERS["train"]:
            info = tarfile.TarInfo(f"cifar-10-batches-py/{name}")
            info.size = len(raw)
            tar.addfile(info, io.BytesIO(raw))
    with pytest.raises(D.DataError, match=r"data_batch_1: refused to load: the pickle asks for (posix|os)\.system"):
        cifar.load_cifar10("train", tmp_path / "data", verify=False)
    assert not marker.exists()


def test_cifar10_errors_name_the_file_and_what_to_do(cifar_root, tmp_path):
    with pytest.raises(D.DataError, match=r"cifar-10-python.tar.gz: md5 is .* expected c58f3.*--no-verify-md5"):
        cifar.load_cifar10("train", cifar_root)
    with pytest.raises(D.DataFileNotFoundError, match=r"(?s)switched off.*c58f30108f718f92721af3b95e74349a"):
        cifar.load_cifar10("train", tmp_path / "empty", download_missing=False)
    broken = tmp_path / "broken" / "cifar-10" / cifar.ARCHIVE
    broken.parent.mkdir(parents=True)
    broken.write_bytes(b"not a tarball")
    with pytest.raises(D.DataError, match="not a readable .tar.gz"):
        cifar.load_cifar10("train", tmp_path / "broken", verify=False)
    with pytest.raises(Exception, match="in_channels=1: cifar10 images have 3 channels"):
        RunConfig(dataset="cifar10", in_channels=1).validate()


def test_train_on_cifar10_then_predict_colour_photos(cifar_root, tmp_path):
    res = cli("train", "--dataset", "cifar10", "--data-dir", cifar_root, "--no-verify-md5", "--net", "lenet_bn",
              "--epochs", "3", "--lr", "3e-3", "--normalize", "cifar10", "--augment", "flip-crop", "--val-size", "100",
              "--out", tmp_path / "run", cwd=tmp_path)
    assert res.returncode == 0, res.stderr[-3000:]
    results = json.loads((tmp_path / "run" / "results.json").read_text())
    assert results["input_shape"] == [3, 32, 32] and results["test"]["n"] == 120
    assert results["test"]["acc"] > 0.5, results["test"]  # the synthetic classes are learnable
    state = json.loads((tmp_path / "run" / "checkpoints" / "best" / "state.json").read_text())
    assert state["input"]["mean"] == list(cifar.MEAN) and state["input"]["channels"] == 3
    # A colour photo with alpha and an upright JPEG, at sizes other than 32x32.
    images, labels = _cifar_split(120, 2)
    big = cv2.resize(images[0], (96, 64), interpolation=cv2.INTER_NEAREST)  # wider than tall: centre-cropped
    cv2.imwrite(str(tmp_path / "photo.jpg"), cv2.cvtColor(big, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, 98])
    rgba = np.dstack([cv2.cvtColor(images[1], cv2.COLOR_RGB2BGR), np.full((32, 32), 255, np.uint8)])
    cv2.imwrite(str(tmp_path / "alpha.png"), rgba)
    res = cli("predict", tmp_path / "run", tmp_path / "photo.jpg", tmp_path / "alpha.png", "--save-grid",
              tmp_path / "grid.png", cwd=tmp_path)
    assert res.returncode == 0, res.stderr[-3000:]
    names = cifar.CLASS_NAMES
    lines = res.stdout.splitlines()
    assert lines[1].startswith(f"{tmp_path / 'alpha.png'}: {names[labels[1]]} ")  # opaque PNG = the image itself
    assert lines[0].split(": ")[1].split()[0] in names
    grid = cv2.imread(str(tmp_path / "grid.png"))
    assert grid is not None and (np.abs(grid[..., 0].astype(int) - grid[..., 2]) > 60).any()  # drawn in colour


def test_the_classic_zoo_has_cifar10_recipes(tmp_path):
    res = subprocess.run([sys.executable, "-m", "experiments.classic_zoo", "--dataset", "cifar10", "--list-recipes"],
                         capture_output=True, text=True, timeout=600, cwd=ROOT, env=CLI_ENV)
    assert res.returncode == 0, res.stderr[-2000:]
    lines = res.stdout.strip().splitlines()
    assert [line.split(":")[0] for line in lines] == ["nin_small", "resnet18_small", "nin_small"]
    assert all("augment flip-crop, normalize cifar10" in line for line in lines[:2])
    # The NIN tutorial's own recipe, listed beside ours.
    assert lines[2] == ("nin_small: momentum 0.9 lr 0.01 (x0.6 every 10 epochs), weight decay 0.0005, batch 64, "
                        "100 epochs, augment none, normalize cifar10  [--recipe tutorial]")


def test_the_nin_tutorial_recipe_runs_as_written(cifar_root, tmp_path):
    res = subprocess.run([sys.executable, "-m", "experiments.classic_zoo", "--dataset", "cifar10", "--data-dir",
                          str(cifar_root), "--no-verify-md5", "--nets", "nin_small", "--recipe", "tutorial",
                          "--epochs", "1", "--val-size", "100", "--out", str(tmp_path / "zoo")],
                         capture_output=True, text=True, timeout=600, cwd=ROOT, env=CLI_ENV)
    assert res.returncode == 0, res.stderr[-3000:]
    saved = json.loads((tmp_path / "zoo" / "nin_small" / "config.json").read_text())
    assert {k: saved[k] for k in ("optimizer", "lr", "momentum", "weight_decay", "schedule", "step_size", "gamma",
                                  "batch_size", "augment")} == dict(
        optimizer="momentum", lr=0.01, momentum=0.9, weight_decay=5e-4, schedule="step", step_size=10, gamma=0.6,
        batch_size=64, augment="none")
    res = subprocess.run([sys.executable, "-m", "experiments.classic_zoo", "--nets", "lenet", "--recipe", "tutorial",
                          "--list-recipes"], capture_output=True, text=True, timeout=600, cwd=ROOT, env=CLI_ENV)
    assert res.returncode == 0  # listing ignores --recipe
    res = subprocess.run([sys.executable, "-m", "experiments.classic_zoo", "--nets", "lenet", "--recipe", "tutorial",
                          "--out", str(tmp_path / "x")], capture_output=True, text=True, timeout=600, cwd=ROOT,
                         env=CLI_ENV)
    assert res.returncode == 2 and "no tutorial recipe for lenet on fashion-mnist" in res.stderr
