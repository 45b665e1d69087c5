"""Predict and export (paddle_cnn/inference.py) read the input contract a run was trained with."""
import json

import numpy as np
import pytest

from helpers import cli


@pytest.fixture(scope="module")
def odd_runs(csv_pair, tmp_path_factory):
    """A run at 32x32 and a run on 3 channels, trained by the CLI as a user would."""
    root = tmp_path_factory.mktemp("odd")
    common = ["--train-csv", csv_pair[0], "--test-csv", csv_pair[1], "--val-size", 80, "--epochs", 1,
              "--batch-size", 32, "--log-every", 1000]
    runs = {}
    for name, extra in (("size32", ["--net", "lenet", "--input-size", 32, 32]),
                        ("rgb", ["--net", "resnet18_small", "--in-channels", 3])):
        res = cli("train", *common, *extra, "--out", root / name)
        assert res.returncode == 0, res.stderr[-3000:]
        runs[name] = root / name
    return runs


@pytest.mark.parametrize("which", ["size32", "rgb"])
def test_predict_and_export_read_the_runs_input_contract(odd_runs, which, tmp_path):
    import cv2

    run = odd_runs[which]
    image = tmp_path / "shirt.png"
    img = np.zeros((60, 40), np.uint8)
    img[10:50, 8:32] = 200
    cv2.imwrite(str(image), img)
    res = cli("predict", run, image, "--save-grid", tmp_path / "grid.png")
    assert res.returncode == 0, res.stderr[-3000:]
    export = cli("export", run, "--out", tmp_path / "export")
    assert export.returncode == 0, export.stderr[-3000:]
    meta = json.loads((tmp_path / "export" / "paddle_cnn_export.json").read_text())
    shape = {"size32": [1, 32, 32], "rgb": [3, 28, 28]}[which]
    assert [meta["input"][k] for k in ("channels", "height", "width")] == shape
    assert meta["source"]["checkpoint"] == "best" and meta["source"]["best_val_acc"] is not None
    from_export = cli("predict", tmp_path / "export", image)
    assert from_export.returncode == 0 and from_export.stdout == cli("predict", run, image).stdout

