"""paddle-cnn explain: feature maps, Grad-CAM and effective receptive fields, as a user runs it."""
import re

import cv2
import numpy as np
import paddle
import pytest

from helpers import cli, one_line_error, tiny_config
from paddle_cnn import nets
from paddle_cnn import explain as E
from paddle_cnn.training import train_and_evaluate


def test_stages_are_the_last_convolution_at_each_resolution():
    stages = E.conv_stages(nets.create("resnet18_small"), (1, 28, 28))
    assert [s.layer for s in stages] == [f"stages.{i}.1.conv2" for i in range(4)]
    assert [s.shape[1] for s in stages] == [28, 14, 7, 4]
    assert [s.receptive_field[0] for s in stages] == [11, 25, 53, 109]


def test_the_theoretical_box_is_where_the_gradient_of_a_linear_net_is_nonzero():
    """With ReLUs removed every weight reaches the input: the gradient's support is exactly the field."""
    for dilation, padding in ((1, 1), (2, 0), (1, 0)):
        net = paddle.nn.Sequential(paddle.nn.Conv2D(1, 4, 3, padding=padding, dilation=dilation),
                                   paddle.nn.AvgPool2D(2), paddle.nn.Conv2D(4, 4, 3, dilation=dilation))
        for p in net.parameters():
            p.set_value(paddle.full_like(p, 0.1))
        full = _with_head(net)
        stage = E.conv_stages(full, (1, 28, 28))[-1]
        assert stage.layer == "features.2"
        ex = E.explain(full, np.random.default_rng(0).normal(size=(1, 28, 28)).astype(np.float32), [stage])
        ys, xs = np.nonzero(ex.fields[stage.layer] > 0)
        top, left, bottom, right = stage.box(stage.centre_unit())
        assert (ys.min(), xs.min(), ys.max(), xs.max()) == (top, left, bottom, right), (dilation, padding)


def _with_head(features):
    class Net(paddle.nn.Layer):
        def __init__(self):
            super().__init__()
            self.features = features
            self.head = paddle.nn.Sequential(paddle.nn.AdaptiveAvgPool2D(1), paddle.nn.Flatten(),
                                             paddle.nn.Linear(4, 10))

        def forward(self, x):
            return self.head(self.features(x))

    return Net()


def test_grad_cam_and_fields_are_normalised_maps_over_the_input():
    net = nets.create("lenet_bn")
    stages = E.conv_stages(net, (1, 28, 28))
    ex = E.explain(net, np.random.default_rng(1).normal(size=(1, 28, 28)).astype(np.float32), stages)
    assert ex.grad_cam.shape == (28, 28) and 0 <= ex.grad_cam.min() and ex.grad_cam.max() <= 1
    assert all(f.shape == (28, 28) and f.max() == pytest.approx(1.0) for f in ex.fields.values())
    assert ex.probs.sum() == pytest.approx(1.0, abs=1e-5) and net.training  # mode restored


@pytest.fixture(scope="module")
def seed_pair(tmp_path_factory):
    """standard_cnn and dilated_cnn trained briefly on learnable synthetic images."""
    from conftest import synthetic_images
    from paddle_cnn import datasets as D

    root = tmp_path_factory.mktemp("explain")
    images, labels = synthetic_images(400, seed=1)
    train = D.write_csv(root / "train.csv", images, labels=labels)
    test_images, test_labels = synthetic_images(120, seed=2)
    test = D.write_csv(root / "test.csv", test_images, labels=test_labels)
    runs = {}
    for net in ("standard_cnn", "dilated_cnn"):
        train_and_evaluate(tiny_config((train, test), net=net, epochs=2), root / net, verbose=False)
        runs[net] = root / net
    cv2.imwrite(str(root / "bar.png"), 255 - test_images[0])  # dark on light, as photos are: inverted
    return root, runs


def test_explain_writes_three_pictures_per_image_and_the_dilated_net_sees_wider(seed_pair, tmp_path):
    root, runs = seed_pair
    measured = {}
    for net, run in runs.items():
        res = cli("explain", run, root / "bar.png", "--out", tmp_path / net)
        assert res.returncode == 0, res.stderr[-3000:]
        for kind in ("maps", "gradcam", "fields"):
            img = cv2.imread(str(tmp_path / net / f"bar_{kind}.png"))
            assert img is not None and img.shape[0] > 100 and img.std() > 10, kind
        fields = re.findall(r"(\S+) (\d+)/(\d+)", res.stdout.split("effective/theoretical field")[1])
        measured[net] = [(int(e), int(t)) for _, e, t in fields]
    (std_eff, std_theory), (dil_eff, dil_theory) = measured["standard_cnn"][-1], measured["dilated_cnn"][-1]
    assert (std_theory, dil_theory) == (8, 14)  # the last convolution's field, before its pooling
    assert dil_eff > std_eff, measured


def test_explain_draws_chinese_class_names_without_missing_glyphs(seed_pair, tmp_path):
    root, runs = seed_pair
    res = cli("explain", runs["standard_cnn"], root / "bar.png", "--out", tmp_path, "--lang", "zh")
    assert res.returncode == 0, res.stderr[-3000:]
    assert "missing from" not in res.stderr and "Glyph" not in res.stderr, res.stderr[-2000:]
    from paddle_cnn.datasets import get_dataset
    assert any(name in res.stdout for name in get_dataset("fashion-mnist").classes["zh"])


def test_explain_refuses_an_unreadable_image_in_one_line_and_draws_the_rest(seed_pair, tmp_path):
    root, runs = seed_pair
    (tmp_path / "broken.png").write_bytes(b"not a png")
    res = cli("explain", runs["standard_cnn"], tmp_path / "broken.png", root / "bar.png", "--out", tmp_path / "o")
    assert res.returncode == 1 and "broken.png" in res.stderr and "Traceback" not in res.stderr
    assert (tmp_path / "o" / "bar_fields.png").is_file()
    one_line_error(cli("explain", tmp_path / "nope", root / "bar.png"), "nope")
