"""The classic zoo: counts pinned to the tutorials, the blocks' defining properties, FLOPs by hand,
GoogLeNet's auxiliary heads in training, HybridSN on synthetic cubes, and the zoo experiment."""
import json

import numpy as np
import paddle
import pytest
from paddle import nn

from experiments import classic_zoo
from paddle_cnn import analysis, nets, report
from paddle_cnn.nets.googlenet import Inception, conv_path
from paddle_cnn.nets.resnet import BasicBlock, Bottleneck
from paddle_cnn.training import RunConfig, train_and_evaluate
from paddle_cnn.training.losses import AuxiliaryLoss, MainAccuracy


def _count(layer, trainable=None):
    return sum(int(np.prod(p.shape)) for p in layer.parameters()
               if trainable is None or (not p.stop_gradient) == trainable)


def _weights(layer):
    return sum(int(np.prod(p.shape)) for name, p in layer.named_parameters() if name.endswith("weight"))


# The tutorials' printed totals. Paddle keeps batch-norm running mean and variance as
# non-trainable parameters and counts them in paddle.summary's total; PyTorch keeps them as
# buffers and leaves them out, so a PyTorch tutorial's count is our trainable count.
@pytest.mark.parametrize("name, shape, total, bn_stats", [
    ("alexnet", (1, 227, 227), 58_299_082, 0),
    ("vgg16", (1, 224, 224), 134_300_362, 0),
    ("resnet18", (1, 224, 224), 11_186_186, 7_808),
])
def test_tutorial_parameter_counts(name, shape, total, bn_stats):
    net = nets.create(name, in_channels=shape[0], input_size=shape[1:])
    summary = paddle.summary(net, (1,) + shape)
    assert summary["total_params"] == total == _count(net)
    assert total - summary["trainable_params"] == bn_stats == _count(net, trainable=False)


def test_googlenet_main_path_count_excludes_the_auxiliary_heads():
    with_aux = nets.create("googlenet", in_channels=3)
    main_only = nets.create("googlenet", in_channels=3, aux=False)
    assert _count(main_only) == 5_983_802
    assert _count(with_aux) == 5_983_802 + _count(with_aux.aux1) + _count(with_aux.aux2)
    # The heads follow the paper: 128 1x1 channels on a 4x4 map (14x14 pooled 5/3) into FC 1024.
    assert with_aux.aux1.classifier[0].weight.shape == [128 * 4 * 4, 1024]


def test_inception_3x3_path_weights_with_and_without_the_reduction():
    assert _weights(conv_path(192, 128, 3)) == 192 * 128 * 9 == 221_184
    assert _weights(conv_path(192, 128, 3, reduce=96)) == 192 * 96 + 96 * 128 * 9 == 129_024


def test_factorised_inception_paths_keep_the_receptive_field_and_cut_weights():
    for style in ("v1", "v2", "v3"):
        path = conv_path(32, 32, 5, style=style)
        assert analysis.receptive_field(path, (32, 15, 15)) == (5, 5)
        assert tuple(path(paddle.zeros([1, 32, 15, 15])).shape) == (1, 32, 15, 15)
    w = {s: _weights(conv_path(32, 32, 5, style=s)) for s in ("v1", "v2", "v3")}
    assert w["v1"] == 32 * 32 * 25 and w["v2"] == 2 * 32 * 32 * 9 and w["v3"] == 4 * 32 * 32 * 3
    # v3's n x n as 1 x n then n x 1, at n = 7 (the paper's 17x17 grid).
    seven = conv_path(16, 16, 7, style="v3")
    kernels = [tuple(m.weight.shape[2:]) for m in seven.sublayers() if isinstance(m, nn.Conv2D)]
    assert kernels == [(1, 7), (7, 1)]
    block = Inception(192, 64, (96, 128), (16, 32), 32)
    assert block.out_channels == 256 and block(paddle.zeros([1, 192, 7, 7])).shape == [1, 256, 7, 7]


def test_googlenet_returns_auxiliary_logits_only_in_training():
    net = nets.create("googlenet_small", num_classes=7)
    x = paddle.randn([2, 1, 28, 28])
    net.train()
    out = net(x)
    assert isinstance(out, tuple) and len(out) == 3 and all(o.shape == [2, 7] for o in out)
    net.eval()
    assert net(x).shape == [2, 7]
    label = paddle.to_tensor([[1], [2]], dtype="int64")
    ce = nn.functional.cross_entropy
    want = ce(out[0], label) + 0.3 * ce(out[1], label) + 0.3 * ce(out[2], label)
    assert float(AuxiliaryLoss(net.aux_weights)(*out, label)) == pytest.approx(float(want), rel=1e-6)
    assert float(AuxiliaryLoss(net.aux_weights)(out[0], label)) == pytest.approx(float(ce(out[0], label)), rel=1e-6)
    metric = MainAccuracy()
    metric.update(metric.compute(*out, label))
    main_acc = paddle.metric.Accuracy()
    main_acc.update(main_acc.compute(out[0], label))
    assert metric.accumulate() == main_acc.accumulate()


@pytest.mark.parametrize("topk", [(1,), (1, 3)])
@pytest.mark.parametrize("labels", ["column", "flat", "one-hot"])
def test_main_accuracy_gives_paddles_correct_mask(topk, labels):
    rng = np.random.default_rng(len(labels) + len(topk))
    scores = rng.normal(size=(40, 10)).astype("float32")
    scores[:5] = np.round(scores[:5])  # rows with tied scores: compared on the tie rule below instead
    y = rng.integers(0, 10, 40)
    label = {"column": y[:, None], "flat": y, "one-hot": np.eye(10, dtype="float32")[y]}[labels]
    pred, label = paddle.to_tensor(scores), paddle.to_tensor(label)
    ours, paddles = MainAccuracy(topk=topk), paddle.metric.Accuracy(topk=topk)
    got, want = ours.compute(pred, label).numpy(), paddles.compute(pred, label).numpy()
    rows_without_ties = np.array([len(set(r)) == len(r) for r in scores])
    np.testing.assert_array_equal(got[rows_without_ties], want[rows_without_ties])
    assert got.shape == want.shape and got.dtype == want.dtype
    # A tie is decided for the lower class index, as argmax decides it.
    tie = paddle.to_tensor(np.array([[1.0, 3.0, 3.0, 0.0]], dtype="float32"))
    assert MainAccuracy().compute(tie, paddle.to_tensor(np.array([[1]]))).numpy().tolist() == [[1.0]]


def test_resnet_projection_only_where_the_shape_changes():
    assert BasicBlock(64, 64).shortcut is None
    assert BasicBlock(64, 128, stride=2).shortcut.weight.shape == [128, 64, 1, 1]
    assert Bottleneck(64, 64).shortcut.weight.shape == [256, 64, 1, 1]  # channels change 64 -> 256
    # ResNeXt 32x4d: the 3x3 of the first stage is 32 groups of 4 channels (128 wide).
    block = Bottleneck(64, 64, groups=32, base_width=4)
    assert block.conv2._groups == 32 and block.conv2.weight.shape == [128, 4, 3, 3]
    # The small stem keeps 28x28 maps: stages at 28, 14, 7, 4.
    net = nets.create("resnet18_small")
    sizes = [r.output_shape[1:] for r in analysis.layer_table(net, (1, 28, 28)) if r.type == "Conv2D"]
    assert sizes[0] == (28, 28) and sizes[-1] == (4, 4)


def test_mobilenet_uses_depthwise_then_pointwise_convolutions():
    net = nets.create("mobilenet_v1")
    convs = [m for m in net.sublayers() if isinstance(m, nn.Conv2D)]
    depthwise = [c for c in convs if c._groups > 1]
    assert len(depthwise) == 13 and all(c._groups == c._in_channels == c._out_channels for c in depthwise)
    pointwise = [c for c in convs if tuple(c.weight.shape[2:]) == (1, 1)]
    assert len(pointwise) == 13
    assert tuple(net(paddle.zeros([1, 1, 224, 224])).shape) == (1, 10)


def test_nin_has_no_fully_connected_layer():
    net = nets.create("nin_small")
    assert not any(isinstance(m, nn.Linear) for m in net.sublayers())
    assert isinstance(net[-2], nn.AdaptiveAvgPool2D)


def test_lenet_bn_normalises_every_conv_and_hidden_layer():
    net = nets.create("lenet_bn")
    assert sum(isinstance(m, (nn.BatchNorm2D, nn.BatchNorm1D)) for m in net) == 4


# standard_cnn, by hand (FLOPs = 2 per MAC, + bias adds, + 1 per activation or pooled input):
#   conv1 16x28x28 outputs x 9 MACs = 112,896    conv2 32x12x12 x (16 x 9) = 663,552
#   fc 1152x256 = 294,912, 256x128 = 32,768, 128x10 = 1,280
#   biases 12,544 + 4,608 + 256 + 128 + 10; ReLUs 12,544 + 4,608 + 256 + 128
#   avg pools 16x14x14 x 4 = 12,544 and 32x6x6 x 4 = 4,608
def test_flops_of_standard_cnn_counted_by_hand():
    macs = 112_896 + 663_552 + 294_912 + 32_768 + 1_280
    flops = 2 * macs + (12_544 + 4_608 + 256 + 128 + 10) + (12_544 + 4_608 + 256 + 128) + 12_544 + 4_608
    net = nets.create("standard_cnn")
    net.train()
    cost = analysis.count_flops(net, (1, 28, 28))
    assert (cost.macs, cost.flops) == (macs, flops) == (1_105_408, 2_263_050)
    assert net.training  # counting does not leave the net in eval mode


def test_flops_of_grouped_and_bias_free_convolutions_and_batch_norm():
    net = nn.Sequential(nn.Conv2D(8, 8, 3, padding=1, groups=8, bias_attr=False), nn.BatchNorm2D(8),
                        nn.AdaptiveAvgPool2D(1))
    cost = analysis.count_flops(net, (8, 10, 10))
    assert cost.macs == 800 * 9  # depthwise: each output sees one input channel
    assert cost.flops == 2 * 800 * 9 + 2 * 800 + 8 * 100


def test_paddle_flops_agrees_with_our_macs_or_fails_for_the_known_reason():
    net = nets.create("standard_cnn")
    ours = analysis.count_flops(net, (1, 28, 28))
    try:
        paddle_count = paddle.flops(net, [1, 1, 28, 28])
    except TypeError as exc:  # Paddle 3.3 calls int() on a 1-element array, which NumPy >= 2.4 refuses
        assert np.lib.NumpyVersion(np.__version__) >= "2.4.0", exc
        assert "only 0-dimensional arrays can be converted to Python scalars" in str(exc)
        return
    # paddle.flops reports MACs plus one per bias add of conv and linear layers.
    assert paddle_count == ours.macs + 12_544 + 4_608 + 256 + 128 + 10


def test_summary_command_prints_flops(capsys):
    from paddle_cnn import cli

    assert cli.main(["summary", "standard_cnn"]) == 0
    assert "2,263,050 FLOPs" in capsys.readouterr().out


def _cubes(n, rng, bands=15, size=11, classes=3):
    """Synthetic hyperspectral patches: class c is bright in band range c, in a random blob."""
    labels = rng.integers(0, classes, n)
    x = rng.normal(0, 0.3, (n, 1, bands, size, size)).astype("float32")
    per = bands // classes
    for i, c in enumerate(labels):
        r, q = rng.integers(2, size - 2, 2)
        x[i, 0, c * per:(c + 1) * per, r - 2:r + 3, q - 2:q + 3] += 1.5
    return x, labels.astype("int64")


def test_hybridsn_learns_spectral_classes_of_synthetic_cubes():
    rng = np.random.default_rng(0)
    paddle.seed(0)
    x, y = _cubes(192, rng)
    xt, yt = _cubes(96, rng)
    net = nets.create("hybridsn", num_classes=3, input_size=(15, 11, 11))
    opt = paddle.optimizer.Adam(1e-3, parameters=net.parameters())
    net.train()
    for epoch in range(6):
        for i in range(0, len(x), 32):
            loss = nn.functional.cross_entropy(net(paddle.to_tensor(x[i:i + 32])), paddle.to_tensor(y[i:i + 32, None]))
            loss.backward()
            opt.step()
            opt.clear_grad()
    net.eval()
    acc = float((net(paddle.to_tensor(xt)).numpy().argmax(1) == yt).mean())
    assert acc > 0.9, acc
    with pytest.raises(nets.InputTooSmallError, match=r"hybridsn cannot take a 10x25x25 input: layer 2 \(Conv3D\) "
                                                      r"has a 5-wide window but its input is 4 wide .* no height and "
                                                      r"width fit those other dims; the declared input is 30x25x25"):
        nets.create("hybridsn", input_size=(10, 25, 25))
    with pytest.raises(nets.InputTooSmallError, match=r"hybridsn cannot take a 15x6x6 input: .* smallest input is "
                                                      r"15x9x9 .* --input-size 9 9"):
        nets.create("hybridsn", input_size=(15, 6, 6))


def test_trainer_trains_a_net_with_auxiliary_heads_and_records_flops(tmp_path, synthetic_csvs):
    train, test = synthetic_csvs
    config = RunConfig(net="googlenet_small", train_csv=str(train), test_csv=str(test), val_size=80, epochs=1,
                       batch_size=32, lr=2e-3, log_every=1000, train_limit=200, test_limit=60)
    _, results = train_and_evaluate(config, tmp_path / "run", verbose=False)
    # The auxiliary heads run in training only: the recorded cost is that of the net without them.
    without_aux = analysis.count_flops(nets.create("googlenet_small", aux=False), (1, 28, 28))
    assert (results["macs"], results["flops"]) == (without_aux.macs, without_aux.flops) == (23_567_216, 48_176_326)
    assert results["input_shape"] == [1, 28, 28] and results["test"]["n"] == 60


def test_every_recipe_names_a_registered_28x28_net():
    for name in list(classic_zoo.RECIPES) + classic_zoo.DEFAULT_NETS:
        assert nets.get_info(name).input_size == (1, 28, 28), name
        assert classic_zoo.recipe(name).net == name


def test_classic_zoo_experiment_end_to_end(tmp_path, synthetic_csvs, capsys):
    train, test = synthetic_csvs
    out = tmp_path / "zoo"
    args = ["--nets", "lenet_bn", "resnext_small", "--train-csv", str(train), "--test-csv", str(test),
            "--val-size", "80", "--epochs", "1", "--train-limit", "240", "--test-limit", "60", "--out", str(out),
            "--log-every", "1000"]
    summary = classic_zoo.main(args)
    assert [r["net"] for r in summary["results"]] == ["lenet_bn", "resnext_small"]  # cheapest first
    for name in ("zoo.md", "zoo.csv", "zoo.json", "curves.png", "cost_accuracy.png"):
        assert (out / name).stat().st_size > 0, name
    table = (out / "zoo.md").read_text()
    assert table.splitlines()[0].startswith("| net | input | params | MFLOPs/img |")
    lenet = summary["results"][0]
    assert f"| lenet_bn | 1x28x28 | 45,330 | {lenet['flops'] / 1e6:.1f} | 1 |" in table
    assert f"`{lenet['commands'][0]}`" in table and lenet["commands"][0].startswith("python -m ")
    assert json.loads((out / "lenet_bn" / "config.json").read_text())["schedule"] == "onecycle"
    # The table command rebuilds the same table from the run folders.
    assert report.markdown_table(report.load_results([out / "lenet_bn", out / "resnext_small"]),
                                 report.ZOO_COLUMNS) == table.strip()
    # A second call skips finished nets instead of refusing or retraining them.
    capsys.readouterr()
    classic_zoo.main(args)
    assert capsys.readouterr().out.count("finished already") == 2
    # --overwrite moves the old run aside; the table lists each net once, from its new run.
    summary = classic_zoo.main(args[:1] + ["lenet_bn"] + args[3:] + ["--overwrite"])
    assert len(list(out.glob("lenet_bn.replaced-*"))) == 1
    assert [r["net"] for r in summary["results"]] == ["lenet_bn", "resnext_small"]
