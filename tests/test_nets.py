"""The registry, and every registered network: a net is tested the moment it is registered."""
import numpy as np
import paddle
import pytest

from paddle_cnn import nets
from paddle_cnn.nets import InputTooSmallError, UnknownNetError


def _n_params(net):
    return sum(int(np.prod(p.shape)) for p in net.parameters())


@pytest.mark.parametrize("name", nets.list_nets())
def test_every_net_forward_shape_and_gradients(name):
    # 7 classes and 3 channels, so a hard-coded 10 or 1 anywhere is caught.
    info = nets.get_info(name)
    net = nets.create(name, num_classes=7, in_channels=3)
    net.train()
    x = paddle.randn((2,) + info.input_shape(3))
    out = net(x)
    logits = out[0] if isinstance(out, (tuple, list)) else out
    assert tuple(logits.shape) == (2, 7)
    assert np.isfinite(logits.numpy()).all()
    labels = paddle.to_tensor([[1], [5]], dtype="int64")
    outputs = out if isinstance(out, (tuple, list)) else [out]  # auxiliary heads train too
    loss = sum(paddle.nn.functional.cross_entropy(o, labels) for o in outputs)
    loss.backward()
    for pname, p in net.named_parameters():
        if p.stop_gradient:
            continue
        assert p.grad is not None, f"{name}: parameter {pname} got no gradient"
        g = p.grad.numpy()
        assert np.isfinite(g).all(), f"{name}: parameter {pname} has a non-finite gradient"
        assert np.any(g != 0), f"{name}: parameter {pname} got an all-zero gradient"


@pytest.mark.parametrize("name, expected", [
    ("standard_cnn", 334_154),
    ("dilated_cnn", 170_314),
    ("lenet", 61_706),
    ("lenet_subclassed", 61_610),
])
def test_seed_parameter_counts_pinned(name, expected):
    net = nets.create(name)
    assert paddle.summary(net, (64, 1, 28, 28))["total_params"] == expected
    assert _n_params(net) == expected


@pytest.mark.parametrize("name, shapes", [
    # Conv outputs after each conv and pool (C, H, W): the notebook's sizes.
    ("standard_cnn", [(16, 28, 28), (16, 14, 14), (32, 12, 12), (32, 6, 6)]),
    ("dilated_cnn", [(16, 26, 26), (16, 13, 13), (32, 9, 9), (32, 4, 4)]),
])
def test_seed_cnn_feature_shapes(name, shapes):
    net = nets.create(name)
    x = paddle.zeros((64, 1, 28, 28))
    got = []
    for layer in net:
        x = layer(x)
        if isinstance(layer, (paddle.nn.Conv2D, paddle.nn.AvgPool2D)):
            got.append(tuple(x.shape[1:]))
    assert got == shapes
    assert tuple(x.shape) == (64, 10)


def test_seed_cnns_are_sequential():
    for name in ("standard_cnn", "dilated_cnn", "lenet"):
        assert isinstance(nets.create(name), paddle.nn.Sequential)
    assert not isinstance(nets.create("lenet_subclassed"), paddle.nn.Sequential)


def test_layer_sizes_follow_the_input_size():
    # 32x32 input: standard CNN flattens 32 * 7 * 7 instead of 32 * 6 * 6.
    net = nets.create("standard_cnn", input_size=(32, 32))
    assert net[7].weight.shape == [32 * 7 * 7, 256]
    assert tuple(net(paddle.zeros((2, 1, 32, 32))).shape) == (2, 10)
    sub = nets.create("lenet_subclassed", in_channels=3, input_size=(32, 32))
    assert sub.fc1.weight.shape == [16 * 6 * 6, 120]


def test_flat_features_leaves_batchnorm_statistics_alone():
    bn = paddle.nn.BatchNorm2D(1)
    feats = paddle.nn.Sequential(paddle.nn.Conv2D(1, 1, 3), bn, paddle.nn.Flatten())
    feats.train()
    before = bn._mean.numpy().copy()
    assert nets.flat_features(feats, (1, 8, 8)) == 36
    assert feats.training
    np.testing.assert_array_equal(bn._mean.numpy(), before)


def test_unknown_name_lists_valid_names():
    with pytest.raises(UnknownNetError) as err:
        nets.create("lenett")
    message = str(err.value)
    assert "lenett" in message
    for name in nets.list_nets():
        assert name in message


def test_list_nets_wildcard_and_duplicate_registration():
    assert nets.list_nets("lenet*") == ["lenet", "lenet_bn", "lenet_subclassed"]
    assert nets.list_nets("*_cnn") == ["dilated_cnn", "standard_cnn"]
    assert nets.list_nets("nothing*") == []
    with pytest.raises(ValueError, match="already registered"):
        nets.register("lenet")(lambda **kw: None)


def test_create_rejects_nonsense_sizes():
    with pytest.raises(ValueError, match="num_classes"):
        nets.create("lenet", num_classes=0)


@pytest.mark.parametrize("kw", [
    dict(in_channels=1, out_channels=6, kernel_size=5, padding=2),
    dict(in_channels=16, out_channels=32, kernel_size=3, dilation=2),
    dict(in_channels=4, out_channels=8, kernel_size=3, stride=2, padding="SAME"),
    dict(in_channels=4, out_channels=8, kernel_size=3, groups=4, padding=1),
    dict(in_channels=3, out_channels=5, kernel_size=(1, 3), padding=(0, 1), data_format="NHWC"),
])
def test_bias_add_fallback_matches_paddle_conv_exactly(kw, monkeypatch):
    """Without the fast operators (switched off here; tests/test_fast_ops.py covers them), Conv2D only
    reorders the bias add."""
    from paddle_cnn import fast
    from paddle_cnn.nets._layers import Conv2D

    monkeypatch.setenv(fast.SWITCH, "0")
    stock, ours = paddle.nn.Conv2D(**kw), Conv2D(**kw)
    ours.set_state_dict(stock.state_dict())
    assert [n for n, _ in ours.named_parameters()] == [n for n, _ in stock.named_parameters()]
    shape = [3, kw["in_channels"], 11, 11] if "data_format" not in kw else [3, 11, 11, kw["in_channels"]]
    x = paddle.randn(shape)
    x.stop_gradient = False
    results = []
    for layer in (stock, ours):
        out = layer(x)
        (out * out).sum().backward()
        results.append((out.numpy(), x.grad.numpy().copy(), layer.weight.grad.numpy(), layer.bias.grad.numpy()))
        x.clear_gradient()
    (out_a, gx_a, gw_a, gb_a), (out_b, gx_b, gw_b, gb_b) = results
    for a, b in ((out_a, out_b), (gx_a, gx_b), (gw_a, gw_b)):
        np.testing.assert_array_equal(a, b)  # forward, input and weight gradients: bit for bit
    np.testing.assert_allclose(gb_b, gb_a, rtol=1e-5, atol=1e-5)  # bias gradient: summed in another order


@pytest.mark.parametrize("name", nets.list_nets())
def test_every_net_refuses_an_input_below_its_derived_minimum(name):
    info = nets.get_info(name)
    small = info.min_input_size()
    assert small is not None and 1 <= small[-1] <= info.input_size[-1]
    nets.create(name, input_size=info.input_size[1:-2] + small[-2:])  # the minimum itself builds
    if small[-1] > 1:
        below = info.input_size[1:-2] + (small[-2] - 1, small[-1] - 1)
        with pytest.raises(InputTooSmallError, match=rf"{name} cannot take .* its smallest input is"):
            nets.create(name, input_size=below)


def test_building_a_net_leaves_batch_norm_statistics_alone():
    paddle.seed(1)
    net = nets.create("inception_v2_small")  # aux heads sized by a probe of the stem at build time
    norms = [m for m in net.sublayers() if isinstance(m, paddle.nn.BatchNorm2D)]
    assert norms and net.training and all(m.training for m in norms)
    for m in norms:
        assert float(m._mean.abs().max()) == 0.0 and float((m._variance - 1).abs().max()) == 0.0


@pytest.mark.parametrize("mode", ["zeros", "reflect", "replicate", "circular"])
def test_conv2d_honours_padding_mode(mode):
    from paddle_cnn.nets._layers import Conv2D

    paddle.seed(3)
    ours = Conv2D(2, 3, 3, padding=1, padding_mode=mode)
    ref = paddle.nn.Conv2D(2, 3, 3, padding=1, padding_mode=mode)
    ref.set_state_dict(ours.state_dict())
    x = paddle.randn([2, 2, 7, 5])
    np.testing.assert_allclose(ours(x).numpy(), ref(x).numpy(), rtol=1e-5, atol=1e-6)

