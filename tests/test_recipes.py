"""The training recipes users expect from timm and Keras: label smoothing, random erasing, a moving
average of the weights, early stopping and ReduceLROnPlateau; each resumed exactly."""
import csv
import json

import numpy as np
import paddle
import pytest
from safetensors.numpy import load_file

from helpers import cli, one_line_error, tiny_config
from paddle_cnn import nets
from paddle_cnn.training import RunConfig, Trainer, load_model, train_and_evaluate
from paddle_cnn.training.config import ConfigError
from paddle_cnn.training.data import RandomErasing
from paddle_cnn.training.ema import WeightEMA, effective_decay
from paddle_cnn.training.losses import AuxiliaryLoss


def _latest(run, name):
    return load_file(str(run / "checkpoints" / "latest" / name))


@pytest.mark.parametrize("recipe", [
    dict(label_smoothing=0.1, random_erasing=0.5, ema_decay=0.9, augment="flip-crop"),
    dict(schedule="plateau", plateau_patience=0, gamma=0.5),
], ids=["smoothing-erasing-ema", "plateau"])
def test_resume_equals_an_uninterrupted_run(tmp_path, synthetic_csvs, recipe):
    cfg = tiny_config(synthetic_csvs, epochs=3, net="lenet_bn", lr=5e-3, **recipe)
    _, straight = train_and_evaluate(cfg, tmp_path / "a", verbose=False)
    Trainer(cfg, tmp_path / "b", verbose=False).fit(epochs=1)
    _, resumed = train_and_evaluate(cfg, tmp_path / "b", resume=True, verbose=False)
    files = ["model.safetensors", "optimizer.safetensors"] + (["ema.safetensors"] if cfg.ema_decay else [])
    for name in files:
        a, b = _latest(tmp_path / "a", name), _latest(tmp_path / "b", name)
        assert a.keys() == b.keys()
        for k in a:
            np.testing.assert_allclose(a[k], b[k], rtol=1e-6, atol=1e-7, err_msg=f"{name}:{k}")
    for key in ("val", "test"):
        assert resumed[key] == pytest.approx(straight[key], rel=1e-6), key
        if cfg.ema_decay:
            assert resumed["ema"][key] == pytest.approx(straight["ema"][key], rel=1e-6), key
    assert straight["test"]["acc"] > 0.5  # it learned: exactness at chance level would prove little
    rows = [json.loads((tmp_path / r / "checkpoints" / "latest" / "state.json").read_text())["run"]["history"]
            for r in ("a", "b")]
    assert [r["lr"] for r in rows[0]] == pytest.approx([r["lr"] for r in rows[1]], rel=1e-9)
    if cfg.schedule == "plateau":  # patience 0: every epoch without a new best halves the rate
        lrs = [r["lr"] for r in rows[0]]
        accs = [r["val_acc"] for r in rows[0]]
        for i in range(1, len(lrs)):
            improved = accs[i - 1] > max(accs[:i - 1], default=-1) * (1 + 1e-4)
            assert lrs[i] == pytest.approx(lrs[i - 1] * (1 if improved else 0.5)), (lrs, accs)


def test_label_smoothing_is_cross_entropy_against_the_smoothed_target():
    rng = np.random.default_rng(0)
    logits = rng.normal(size=(6, 10)).astype(np.float32) * 3
    labels = rng.integers(0, 10, size=(6, 1))
    for eps in (0.0, 0.1, 0.3):
        got = float(AuxiliaryLoss((), eps)(paddle.to_tensor(logits), paddle.to_tensor(labels)))
        target = np.full((6, 10), eps / 10)
        target[np.arange(6), labels[:, 0]] += 1 - eps
        logp = logits - np.log(np.exp(logits - logits.max(1, keepdims=True)).sum(1, keepdims=True)) \
            - logits.max(1, keepdims=True)
        assert got == pytest.approx(float(-(target * logp).sum(1).mean()), rel=1e-5)


def test_label_smoothing_changes_training_but_not_the_reported_validation_loss(tmp_path, synthetic_csvs):
    """The smoothed loss trains; val/test losses stay plain cross-entropy, comparable across runs."""
    plain = Trainer(tiny_config(synthetic_csvs, net="lenet"), tmp_path / "a", verbose=False)
    smooth = Trainer(tiny_config(synthetic_csvs, net="lenet", label_smoothing=0.2), tmp_path / "b", verbose=False)
    smooth.net.set_state_dict(plain.net.state_dict())
    x = paddle.to_tensor(plain.data.test.batch(np.arange(8)))
    y = paddle.to_tensor(plain.data.test.labels[:8].reshape(-1, 1))
    with paddle.no_grad():
        assert float(smooth.model._loss(smooth.net(x), y)) != pytest.approx(float(plain.model._loss(plain.net(x), y)))
    assert smooth.evaluate("val")["loss"] == pytest.approx(plain.evaluate("val")["loss"], rel=1e-6)


def test_random_erasing_erases_one_rectangle_of_noise_with_its_probability():
    img = np.full((28, 28, 1), 7, np.uint8)
    erase = RandomErasing(0.5)
    outs = [erase(img, np.random.default_rng([0, 1, i])) for i in range(400)]
    changed = [o for o in outs if not np.array_equal(o, img)]
    assert 0.4 < len(changed) / len(outs) < 0.6
    for o in changed:
        ys, xs = np.nonzero(o[:, :, 0] != 7)
        # One axis-aligned rectangle (noise may hit 7 inside it): its bounding box, 2-33% of the image.
        box = (ys.max() - ys.min() + 1) * (xs.max() - xs.min() + 1)
        assert 0.015 * 784 <= box <= 0.34 * 784 * 1.1
        assert (o[ys.min():ys.max() + 1, xs.min():xs.max() + 1] != 7).mean() > 0.9
    assert img.max() == 7  # the input is not written
    assert all(np.array_equal(erase(img, np.random.default_rng([0, 1, i])), outs[i]) for i in range(20))


def test_random_erasing_reaches_only_training_images(tmp_path, synthetic_csvs):
    t = Trainer(tiny_config(synthetic_csvs, random_erasing=1.0), tmp_path / "r", verbose=False)
    base = Trainer(tiny_config(synthetic_csvs), tmp_path / "s", verbose=False)
    assert not np.array_equal(t.data.train.batch(np.arange(16)), base.data.train.batch(np.arange(16)))
    for split in ("val", "test"):
        np.testing.assert_array_equal(getattr(t.data, split).batch(np.arange(16)),
                                      getattr(base.data, split).batch(np.arange(16)))


def test_the_moving_average_follows_its_formula_with_warm_up():
    net, copy = nets.create("lenet"), nets.create("lenet")
    ema = WeightEMA(net, copy, 0.99)
    key = next(iter(net.state_dict()))
    start = net.state_dict()[key].numpy().copy()
    for n in range(3):
        with paddle.no_grad():
            net.state_dict()[key].set_value(paddle.full_like(net.state_dict()[key], float(n + 1)))
        ema.update(n)
    d = [effective_decay(0.99, n) for n in range(3)]
    want = start
    for n in range(3):
        want = d[n] * want + (1 - d[n]) * (n + 1)
    np.testing.assert_allclose(copy.state_dict()[key].numpy(), want, rtol=1e-6)
    assert d == [pytest.approx(1 / 10), pytest.approx(2 / 11), pytest.approx(3 / 12)]
    assert effective_decay(0.99, 10_000) == 0.99


def test_the_moving_average_is_its_own_checkpoint_for_evaluate_and_export(tmp_path, synthetic_csvs):
    run = tmp_path / "run"
    _, results = train_and_evaluate(tiny_config(synthetic_csvs, epochs=2, net="lenet", ema_decay=0.9), run,
                                    verbose=False)
    rows = list(csv.DictReader(open(run / "metrics.csv")))
    assert all(0 <= float(r["ema_val_acc"]) <= 1 for r in rows)
    net, _, _ = load_model(run, "ema")
    saved = _latest(run, "ema.safetensors")
    for k, v in net.state_dict().items():
        np.testing.assert_array_equal(v.numpy(), saved[k])
    trained = _latest(run, "model.safetensors")
    assert any(not np.array_equal(trained[k], saved[k]) for k in saved)
    assert float(rows[-1]["ema_val_acc"]) == pytest.approx(results["ema"]["val"]["acc"])
    res = cli("evaluate", run, "--which", "ema", "--split", "test")
    assert res.returncode == 0, res.stderr
    assert f"{results['ema']['test']['acc']:.4f}" in res.stdout
    # A resume starts from the trained weights, never from the average.
    assert "ema" not in __import__("paddle_cnn.training.rundir", fromlist=["RunDir"]).RunDir(run).checkpoint_names()


def test_early_stopping_ends_the_run_and_a_resume_keeps_it_ended(tmp_path, synthetic_csvs):
    # lr 0 never improves on epoch 1's accuracy: patience 2 stops after epoch 3 of 10.
    cfg = tiny_config(synthetic_csvs, epochs=10, net="lenet", optimizer="sgd", lr=1e-12, early_stop_patience=2)
    trainer, results = train_and_evaluate(cfg, tmp_path / "run", verbose=False)
    assert results["epochs"] == 3 and results["stopped_early"] == 3 and results["best_epoch"] == 1
    again, results2 = train_and_evaluate(cfg, tmp_path / "run", resume=True, verbose=False)
    assert again.state.epoch == 3 and results2["test"] == results["test"]
    res = cli("train", "--resume", tmp_path / "run")
    assert res.returncode == 0, res.stderr
    assert "stopped early at epoch 3" in res.stdout


def test_early_stopping_waits_while_accuracy_improves(tmp_path, synthetic_csvs):
    cfg = tiny_config(synthetic_csvs, epochs=3, net="lenet", lr=3e-3, early_stop_patience=5)
    _, results = train_and_evaluate(cfg, tmp_path / "run", verbose=False)
    assert results["epochs"] == 3 and results["stopped_early"] is None


@pytest.mark.parametrize("field, value", [("label_smoothing", 1.0), ("label_smoothing", -0.1),
                                          ("random_erasing", 1.5), ("ema_decay", 1.0),
                                          ("early_stop_patience", -1), ("plateau_patience", -2)])
def test_out_of_range_recipe_settings_are_refused(field, value):
    with pytest.raises(ConfigError, match=field):
        RunConfig(**{field: value}).validate()


def test_recipe_flags_reach_the_config_from_the_command_line(tmp_path, synthetic_csvs):
    train, test = synthetic_csvs
    res = cli("train", "--net", "lenet", "--train-csv", train, "--test-csv", test, "--val-size", 80, "--epochs", 1,
              "--batch-size", 32, "--label-smoothing", 0.1, "--random-erasing", 0.25, "--ema-decay", 0.5,
              "--early-stop-patience", 3, "--schedule", "plateau", "--plateau-patience", 1, "--out", tmp_path / "r")
    assert res.returncode == 0, res.stderr
    saved = RunConfig.load(tmp_path / "r" / "config.json")
    assert (saved.label_smoothing, saved.random_erasing, saved.ema_decay, saved.early_stop_patience,
            saved.schedule, saved.plateau_patience) == (0.1, 0.25, 0.5, 3, "plateau", 1)
    res = cli("train", "--resume", tmp_path / "r", "--ema-decay", 0.9)
    one_line_error(res, "ema_decay")


def test_crop_shifts_digits_without_mirroring_them():
    from paddle_cnn.training.data import FlipCrop

    img = np.zeros((28, 28, 1), np.uint8)
    img[10:18, 4:9] = 255  # left of centre: a mirror puts it right of centre
    for i in range(50):
        out = FlipCrop(pad=2, flip=False)(img, np.random.default_rng([0, i]))
        xs = np.nonzero(out[:, :, 0])[1]
        assert xs.min() >= 2 and xs.max() <= 10  # shifted by at most 2 pixels, never mirrored
    assert RunConfig(augment="crop").validate().augment == "crop"
