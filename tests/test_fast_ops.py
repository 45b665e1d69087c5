"""The oneDNN operators against Paddle's own kernels: outputs and every gradient, on random shapes.

CI builds the operators (``.ci/run``) and sets PADDLE_CNN_REQUIRE_FAST_OPS=1, so these tests fail,
not skip, when the build is broken there.
"""
import os
import subprocess
import sys

import numpy as np
import paddle
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from paddle_cnn import fast
from paddle_cnn.nets import _layers
from paddle_cnn.nets._layers import AvgPool2D, BatchNorm2D, Conv2D, MaxPool2D, ReLU, Sigmoid, relu, sigmoid


@pytest.fixture(scope="module")
def ops():
    module = fast.ops()
    if module is None:
        message = f"fast operators unavailable: {fast.unavailable_reason() or 'switched off'}"
        if os.environ.get("PADDLE_CNN_REQUIRE_FAST_OPS") == "1":
            pytest.fail(message)
        pytest.skip(message)
    return module


@pytest.fixture
def stock(monkeypatch):
    """A context in which the project's layers take Paddle's own kernels."""
    def switch(off: bool):
        monkeypatch.setenv(fast.SWITCH, "0" if off else "1")
    return switch


def _grads(layer, x, dy):
    out = layer(x)
    params = [p for p in layer.parameters()]
    inputs = ([x] if not x.stop_gradient else []) + params
    return [out] + list(paddle.grad([out], inputs, [dy]))


_CASES = settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])


@_CASES
@given(data=st.data())
def test_conv2d_equals_paddle_on_random_geometry(ops, stock, data):
    groups = data.draw(st.sampled_from([1, 1, 2, 3]))
    cin = groups * data.draw(st.integers(1, 4))
    cout = groups * data.draw(st.integers(1, 4))
    k = data.draw(st.tuples(st.integers(1, 5), st.integers(1, 5)))
    stride = data.draw(st.tuples(st.integers(1, 3), st.integers(1, 3)))
    dilation = data.draw(st.tuples(st.integers(1, 3), st.integers(1, 3)))
    padding = data.draw(st.one_of(st.integers(0, 2), st.tuples(st.integers(0, 2), st.integers(0, 2)),
                                  st.tuples(*[st.integers(0, 2)] * 4).map(list)))
    pads = padding if not isinstance(padding, int) else (padding,) * 4
    pads = pads if len(pads) == 4 else (pads[0], pads[0], pads[1], pads[1])
    h = data.draw(st.integers(max(1, (k[0] - 1) * dilation[0] + 1 - pads[0] - pads[1]), 13))
    w = data.draw(st.integers(max(1, (k[1] - 1) * dilation[1] + 1 - pads[2] - pads[3]), 13))
    n = data.draw(st.sampled_from([1, 2, 5]))
    bias = data.draw(st.booleans())
    needs_dx = data.draw(st.booleans())
    paddle.seed(data.draw(st.integers(0, 1000)))
    layer = Conv2D(cin, cout, k, stride=stride, padding=padding, dilation=dilation, groups=groups,
                   bias_attr=None if bias else False)
    x = paddle.randn([n, cin, h, w])
    x.stop_gradient = not needs_dx
    dy = paddle.randn(layer(x).shape)
    stock(True)
    want = _grads(layer, x, dy)
    stock(False)
    got = _grads(layer, x, dy)
    assert len(got) == len(want) == 1 + needs_dx + 1 + bias
    for g, w_ in zip(got, want):
        scale = float(w_.abs().max()) + 1.0
        np.testing.assert_allclose(g.numpy(), w_.numpy(), atol=2e-5 * scale, rtol=1e-4)


@_CASES
@given(data=st.data())
def test_pooling_equals_paddle_on_random_geometry(ops, stock, data):
    kind = data.draw(st.sampled_from(["max", "avg", "avg-inclusive"]))
    k = data.draw(st.tuples(st.integers(1, 4), st.integers(1, 4)))
    stride = data.draw(st.one_of(st.none(), st.tuples(st.integers(1, 3), st.integers(1, 3))))
    pad = data.draw(st.integers(0, min(k) // 2))
    h = data.draw(st.integers(k[0], 12))
    w = data.draw(st.integers(k[1], 12))
    n, c = data.draw(st.sampled_from([1, 3])), data.draw(st.integers(1, 5))
    if kind == "max":
        layer = MaxPool2D(k, stride=stride, padding=pad)
    else:
        layer = AvgPool2D(k, stride=stride, padding=pad, exclusive=kind == "avg")
    paddle.seed(data.draw(st.integers(0, 1000)))
    x = paddle.randn([n, c, h, w])  # continuous values: no ties for the max
    x.stop_gradient = False
    dy = paddle.randn(layer(x).shape)
    stock(True)
    want = _grads(layer, x, dy)
    stock(False)
    got = _grads(layer, x, dy)
    for g, w_ in zip(got, want):
        np.testing.assert_allclose(g.numpy(), w_.numpy(), atol=1e-5, rtol=1e-5)


@_CASES
@given(data=st.data())
def test_activations_equal_paddle_on_random_shapes(ops, stock, monkeypatch, data):
    monkeypatch.setattr(_layers, "ACT_MIN_ELEMENTS", 0)  # the operator on every size drawn here
    mode = data.draw(st.sampled_from(["relu", "sigmoid"]))
    layer = data.draw(st.sampled_from([ReLU(), relu] if mode == "relu" else [Sigmoid(), sigmoid]))
    shape = data.draw(st.lists(st.integers(1, 9), min_size=1, max_size=4))
    paddle.seed(data.draw(st.integers(0, 1000)))
    x = paddle.randn(shape) * 6
    x = paddle.where(paddle.rand(shape) < 0.2, paddle.zeros(shape), x)  # ReLU's kink, exactly at 0
    x.stop_gradient = False
    dy = paddle.randn(shape)
    stock(True)
    want = _grads(layer, x, dy) if isinstance(layer, paddle.nn.Layer) else [layer(x), *paddle.grad([layer(x)], [x], [dy])]
    stock(False)
    got = _grads(layer, x, dy) if isinstance(layer, paddle.nn.Layer) else [layer(x), *paddle.grad([layer(x)], [x], [dy])]
    for g, w_ in zip(got, want):
        np.testing.assert_allclose(g.numpy(), w_.numpy(), atol=1e-6, rtol=1e-5)


@_CASES
@given(data=st.data())
def test_batch_norm_with_running_statistics_equals_paddle(ops, stock, data):
    c = data.draw(st.integers(1, 6))
    h, w = data.draw(st.sampled_from([(14, 14), (15, 17), (28, 28), (7, 7), (1, 3)]))
    n = data.draw(st.sampled_from([1, 2, 5]))
    rng = np.random.default_rng(data.draw(st.integers(0, 1000)))
    layer = BatchNorm2D(c, epsilon=data.draw(st.sampled_from([1e-5, 1e-3])))
    for t, values in ((layer._mean, rng.normal(size=c)), (layer._variance, rng.uniform(0.1, 3, c)),
                      (layer.weight, rng.normal(size=c)), (layer.bias, rng.normal(size=c))):
        t.set_value(values.astype("float32"))
    layer.eval()
    x = paddle.to_tensor(rng.normal(size=(n, c, h, w)).astype("float32") * 3)
    with paddle.no_grad():
        stock(True)
        want = layer(x).numpy()
        stock(False)
        got = layer(x).numpy()
    np.testing.assert_allclose(got, want, atol=2e-5 * (np.abs(want).max() + 1), rtol=1e-5)


def test_batch_norm_keeps_paddles_kernel_where_gradients_or_batch_statistics_are_wanted(ops, monkeypatch):
    calls = []
    monkeypatch.setattr(ops, "pcnn_batch_norm_infer", lambda *a: calls.append(a))
    layer = BatchNorm2D(3)
    x = paddle.randn([2, 3, 16, 16])
    x.stop_gradient = False
    layer(x).sum().backward()  # training: batch statistics, Paddle's kernel
    layer.eval()
    layer(x).sum().backward()  # evaluation under autograd (a frozen-BN fine-tune): gradients flow
    assert x.grad is not None and layer.weight.grad is not None and calls == []


def test_the_layers_really_call_the_operators(ops, monkeypatch):
    """A guard against a fast path that silently never runs (the tests above would pass either way)."""
    calls = []
    for name in ("pcnn_conv2d_bias_wgrad", "pcnn_conv2d", "pcnn_pool2d", "pcnn_act", "pcnn_batch_norm_infer"):
        original = getattr(ops, name)
        monkeypatch.setattr(ops, name, lambda *a, _f=original, _n=name: calls.append(_n) or _f(*a))
    x = paddle.randn([2, 1, 8, 8])  # the images: no gradient wanted, so the weight-only variant
    hidden = MaxPool2D(2)(Conv2D(1, 4, 3)(x))
    Conv2D(4, 2, 3, bias_attr=False)(hidden)
    assert calls == ["pcnn_conv2d_bias_wgrad", "pcnn_pool2d", "pcnn_conv2d"]
    big = paddle.randn([4, 8, 32, 32])  # above the activations' size floor and the norm's 14x14
    ReLU()(big), Sigmoid()(big), relu(big), sigmoid(big)
    ReLU()(paddle.randn([4, 10]))  # a small tensor: Paddle's own kernel is faster
    norm = BatchNorm2D(8)
    norm.eval()
    with paddle.no_grad():
        norm(big)
        norm(paddle.randn([4, 8, 7, 7]))  # small maps: Paddle's kernel
    assert calls[3:] == ["pcnn_act"] * 4 + ["pcnn_batch_norm_infer"]


def test_freed_memory_is_kept_unless_the_user_tunes_malloc():
    code = "from paddle_cnn import fast; print('kept', fast.keep_freed_memory())"
    for env, want in (({}, "kept True"), ({"MALLOC_MMAP_THRESHOLD_": "65536"}, "kept False")):
        res = subprocess.run([sys.executable, "-c", code], env={**os.environ, **env}, capture_output=True, text=True,
                             timeout=120)
        assert want in res.stdout, res.stderr[-2000:]


def test_options_the_operators_do_not_cover_take_paddles_path(ops, stock):
    x = paddle.randn([2, 3, 9, 9])
    for layer in (MaxPool2D(3, 2, ceil_mode=True), AvgPool2D(3, 2, ceil_mode=True), Conv2D(3, 4, 3, padding="SAME"),
                  Conv2D(3, 4, 3, padding=1, padding_mode="reflect"), AvgPool2D(2, divisor_override=3)):
        stock(True)
        want = layer(x).numpy()
        stock(False)
        np.testing.assert_allclose(layer(x).numpy(), want, rtol=1e-5, atol=1e-6)


def test_training_curves_match_the_stock_kernels(ops, stock, tmp_path, synthetic_csvs):
    from paddle_cnn.training import RunConfig, train_and_evaluate

    train, test = synthetic_csvs
    config = RunConfig(net="standard_cnn", train_csv=str(train), test_csv=str(test), val_size=80, epochs=2,
                       batch_size=32, log_every=1000)
    stock(True)
    _, slow = train_and_evaluate(config, tmp_path / "stock", verbose=False)
    stock(False)
    _, quick = train_and_evaluate(config, tmp_path / "fast", verbose=False)
    # Same seed, same data: only float summation order differs, so the curves agree closely.
    assert quick["val"]["loss"] == pytest.approx(slow["val"]["loss"], rel=2e-3)
    assert quick["test"]["loss"] == pytest.approx(slow["test"]["loss"], rel=2e-3)
    assert abs(quick["test"]["acc"] - slow["test"]["acc"]) <= 2 / 120


def test_unavailable_operators_fall_back_with_one_line(tmp_path):
    """No oneDNN headers here (and a cache with no build): one line on stderr, Paddle's kernels, right numbers."""
    code = ("import paddle; from paddle_cnn import nets, fast; net = nets.create('lenet'); "
            "y = net(paddle.zeros([2, 1, 28, 28])); print('ops', fast.ops() is None, tuple(y.shape))")
    env = dict(os.environ, PADDLE_CNN_CACHE=str(tmp_path / "cache"), PADDLE_CNN_ONEDNN_INCLUDE=str(tmp_path),
               PATH="/nonexistent")  # no compiler on PATH either
    env.pop("PADDLE_CNN_FAST_OPS", None)
    res = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=300,
                         cwd=tmp_path)
    assert res.returncode == 0, res.stderr[-2000:]
    assert "ops True (2, 10)" in res.stdout
    lines = [ln for ln in res.stderr.splitlines() if "paddle_cnn:" in ln]
    assert len(lines) == 1 and "fast CPU conv/pool operators unavailable" in lines[0], res.stderr


def test_the_switch_turns_them_off(monkeypatch):
    monkeypatch.setenv(fast.SWITCH, "0")
    assert fast.ops() is None
