"""`paddle-cnn` end to end in subprocesses, on a tiny run trained by the `train` subcommand."""
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest

from paddle_cnn import datasets as D
from paddle_cnn import images as I
from paddle_cnn.contract import InputContract
from paddle_cnn.inference import DygraphPredictor, InferencePredictor

FASHION_28 = InputContract(1, 28, 28, "fashion-mnist", "unit", 0.0, 1.0, D.class_names("fashion-mnist"))


def _cli(*args, timeout=600):
    return subprocess.run([sys.executable, "-m", "paddle_cnn", *map(str, args)], capture_output=True, text=True,
                          timeout=timeout)


@pytest.fixture(scope="module")
def trained_run(tmp_path_factory):
    from conftest import synthetic_images
    from paddle_cnn import datasets as D

    root = tmp_path_factory.mktemp("cli")
    tr_images, tr_labels = synthetic_images(400, seed=1)
    te_images, te_labels = synthetic_images(120, seed=2)
    train = D.write_csv(root / "train.csv", tr_images, labels=tr_labels)
    test = D.write_csv(root / "test.csv", te_images, labels=te_labels)
    res = _cli("train", "--net", "standard_cnn", "--train-csv", train, "--test-csv", test, "--val-size", "80",
               "--epochs", "2", "--batch-size", "32", "--log-every", "1000", "--out", root / "run")
    assert res.returncode == 0, res.stderr
    assert "standard_cnn: val acc" in res.stdout and "test acc" in res.stdout
    return root / "run", te_images, te_labels


@pytest.fixture(scope="module")
def image_files(trained_run, tmp_path_factory):
    """The same test image saved four ways, plus broken files."""
    _, images, labels = trained_run
    d = tmp_path_factory.mktemp("images")
    img = images[0]
    cv2.imwrite(str(d / "dark_bg.png"), img)  # like the training data
    white = 255 - cv2.resize(img, (140, 140), interpolation=cv2.INTER_NEAREST)
    cv2.imwrite(str(d / "white_bg_photo.jpg"), cv2.cvtColor(white, cv2.COLOR_GRAY2BGR), [cv2.IMWRITE_JPEG_QUALITY, 95])
    wide = np.full((100, 300), 255, np.uint8)
    wide[10:90, 110:190] = 255 - cv2.resize(img, (80, 80), interpolation=cv2.INTER_NEAREST)
    cv2.imwrite(str(d / "wide_white.png"), wide)
    (d / "corrupt.png").write_bytes(b"\x89PNG\r\n\x1a\n" + b"\0" * 40)
    (d / "empty.jpg").write_bytes(b"")
    (d / "notes.txt").write_text("not an image")
    return d, int(labels[0])


def test_train_wrote_a_run_and_evaluate_prints_whole_set_metrics(trained_run):
    run, _, _ = trained_run
    assert (run / "results.json").is_file() and (run / "checkpoints" / "best").is_dir()
    res = _cli("evaluate", run, "--which", "latest")
    assert res.returncode == 0, res.stderr
    assert "val: loss" in res.stdout and "(n=80," in res.stdout
    assert "test: loss" in res.stdout and "(n=120," in res.stdout and "epoch 2" in res.stdout


def test_predict_prints_top_k_and_reports_bad_files_per_file(trained_run, image_files, tmp_path):
    run, _, _ = trained_run
    d, label = image_files
    grid = tmp_path / "grid.png"
    res = _cli("predict", run, d / "dark_bg.png", d / "white_bg_photo.jpg", d / "corrupt.png", d / "empty.jpg",
               d / "notes.txt", d / "wide_white.png", "--top-k", "2", "--save-grid", grid)
    assert res.returncode == 1  # some files failed, the others were predicted
    lines = {line.split(":")[0]: line for line in res.stdout.splitlines() if ": " in line}
    for good in ("dark_bg.png", "white_bg_photo.jpg", "wide_white.png"):
        line = lines[str(d / good)]
        assert len(line.split("  ")) >= 2 and line.count(".") >= 3  # two classes with probabilities
    assert "(inverted)" in lines[str(d / "white_bg_photo.jpg")] and "(inverted)" not in lines[str(d / "dark_bg.png")]
    for bad, why in (("corrupt.png", "not a readable image"), ("empty.jpg", "file is empty"),
                     ("notes.txt", "not a readable image")):
        assert f"{d / bad}: {why}" in res.stderr
    assert grid.stat().st_size > 0
    zh = _cli("predict", run, d / "dark_bg.png", "--lang", "zh", "--top-k", "10")
    assert zh.returncode == 0 and "T恤" in zh.stdout


def test_white_background_photo_becomes_the_training_polarity(image_files):
    d, _ = image_files
    dark = I.load_for_model(d / "dark_bg.png", FASHION_28)
    photo = I.load_for_model(d / "white_bg_photo.jpg", FASHION_28)
    wide = I.load_for_model(d / "wide_white.png", FASHION_28)
    assert photo.inverted and wide.inverted and not dark.inverted
    for p in (dark, photo, wide):
        assert p.image.shape == (28, 28) and p.image.dtype == np.uint8
        assert p.image[0].mean() < 40 and p.image[-1].mean() < 40  # dark border, light object
    # The 140x140 JPEG of the same picture comes back close to the 28x28 original.
    assert np.abs(photo.image.astype(int) - dark.image.astype(int)).mean() < 25


def test_mnist_framing_fits_a_20_pixel_box_centred_by_mass():
    img = np.full((200, 100), 255, np.uint8)
    img[20:180, 40:60] = 0  # a dark "1" on white paper
    p = I.prepare(img, "mnist")
    ys, xs = np.nonzero(p.image > 30)
    assert ys.max() - ys.min() + 1 <= 20 and 12 <= ys.mean() <= 15 and 12 <= xs.mean() <= 15


def test_export_then_predict_from_the_export_gives_the_same_probabilities(trained_run, image_files, tmp_path):
    run, test_images, _ = trained_run
    out = tmp_path / "export"
    res = _cli("export", run, "--out", out)
    assert res.returncode == 0, res.stderr
    assert (out / "model.pdiparams").is_file() and (out / "paddle_cnn_export.json").is_file()
    again = _cli("export", run, "--out", out)
    assert again.returncode == 2 and "already holds files" in again.stderr

    batch = test_images[:37]  # a batch size the export never saw: the batch dimension is dynamic
    dygraph = DygraphPredictor(run).probabilities(batch)
    exported = InferencePredictor(out).probabilities(batch)
    np.testing.assert_allclose(exported, dygraph, rtol=1e-4, atol=1e-5)

    d, _ = image_files
    from_run = _cli("predict", run, d / "dark_bg.png", d / "white_bg_photo.jpg")
    from_export = _cli("predict", out, d / "dark_bg.png", d / "white_bg_photo.jpg")
    assert from_run.returncode == from_export.returncode == 0
    assert from_run.stdout == from_export.stdout


def test_errors_are_one_clear_line(trained_run, tmp_path):
    run, _, _ = trained_run
    cases = [
        (("evaluate", tmp_path / "nowhere"), "no such run folder"),
        (("predict", tmp_path, "x.png"), "neither a run folder"),
        (("train", "--net", "resnet9000", "--out", tmp_path / "r"), "unknown network 'resnet9000'"),
        (("train", "--resume", run, "--lr", "0.5"), "disagrees with the run's config.json"),
        (("evaluate", run, "--which", "epoch_99"), "not a checkpoint folder"),
    ]
    for args, message in cases:
        res = _cli(*args)
        assert res.returncode == 2, (args, res.stdout, res.stderr)
        assert message in res.stderr and "Traceback" not in res.stderr, res.stderr
        assert len(res.stderr.strip().splitlines()) == 1, res.stderr


def test_help_of_every_subcommand_and_the_console_script():
    for sub in ("list", "summary", "train", "evaluate", "predict", "export"):
        res = _cli(sub, "--help")
        assert res.returncode == 0 and "usage: paddle-cnn " + sub in res.stdout
    script = Path(sys.executable).parent / "paddle-cnn"
    assert script.is_file(), "setup.py must install the paddle-cnn console command"
    res = subprocess.run([str(script), "list"], capture_output=True, text=True, timeout=120)
    assert res.returncode == 0 and "dilated_cnn" in res.stdout


def test_the_console_script_records_the_command_as_typed(synthetic_csvs, tmp_path):
    """`paddle-cnn train ...` (the installed script, not python -m) is recorded as such: the command a
    README table cites, without the virtualenv's path to the script."""
    import json
    import os
    import shutil

    script = shutil.which("paddle-cnn", path=os.pathsep.join([str(Path(sys.executable).parent), os.environ["PATH"]]))
    assert script, "the paddle-cnn console script is not installed (pip install -e .)"
    train, test = synthetic_csvs
    res = subprocess.run([script, "train", "--net", "lenet", "--train-csv", train, "--test-csv", test, "--val-size",
                          "80", "--epochs", "1", "--log-every", "1000", "--out", tmp_path / "run"],
                         capture_output=True, text=True, timeout=600)
    assert res.returncode == 0, res.stderr[-2000:]
    (command,) = json.loads((tmp_path / "run" / "results.json").read_text())["commands"]
    assert command.startswith("paddle-cnn train --net lenet "), command
