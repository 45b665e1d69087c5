"""The training engine on tiny synthetic data: run folders, honest metrics, exact resume, errors."""
import csv
import dataclasses
import json

import numpy as np
import paddle
import pytest
from safetensors.numpy import load_file
from visualdl import LogReader

from helpers import tiny_config
from paddle_cnn import nets
from paddle_cnn.training import (
    CheckpointError, RunConfig, RunDirError, Trainer, classification_metrics, load_model, train_and_evaluate,
)
from paddle_cnn.training import checkpoint as ckpt
from paddle_cnn.training.callbacks import VDL_FILE
from paddle_cnn.training.config import add_config_args, config_from_args


def _vdl_steps(run_dir, tag):
    reader = LogReader(file_path=str(run_dir / "vdl" / VDL_FILE))
    return [(r.id, r.value) for r in reader.get_data("scalar", tag)]


def test_run_folder_holds_everything_and_results_match_saved_predictions(tmp_path, synthetic_csvs):
    run = tmp_path / "run"
    _, results = train_and_evaluate(tiny_config(synthetic_csvs, epochs=2), run, verbose=False)
    for name in ("config.json", "metrics.csv", "results.json", "curves.png", "confusion_test.png",
                 "predictions_test.png", "predictions/val.npz", "predictions/test.npz"):
        assert (run / name).is_file(), name
    for name in ("epoch_1", "epoch_2", "latest", "best"):
        assert (run / "checkpoints" / name / "model.safetensors").is_file()
    assert RunConfig.load(run / "config.json").epochs == 2
    saved = json.loads((run / "results.json").read_text())
    assert saved == json.loads(json.dumps(results))
    for split in ("val", "test"):
        pred = np.load(run / "predictions" / f"{split}.npz")
        again = classification_metrics(pred["logits"], pred["labels"])
        assert saved[split]["acc"] == pytest.approx(again["acc"], abs=0) and saved[split]["n"] == again["n"]
        assert saved[split]["loss"] == pytest.approx(again["loss"], rel=1e-12)
    assert saved["test"]["n"] == 120 and saved["val"]["n"] == 80
    rows = list(csv.DictReader(open(run / "metrics.csv")))
    assert [int(r["epoch"]) for r in rows] == [1, 2]
    assert float(rows[-1]["val_acc"]) == pytest.approx(saved["val"]["acc"], abs=1e-6)
    assert saved["params"] == 334_154 and saved["receptive_field"] == [10, 10]
    # The synthetic classes are easy: two epochs must learn them (a broken pipeline would sit at 0.1).
    assert saved["test"]["acc"] > 0.5
    assert [s for s, _ in _vdl_steps(run, "val/acc")] == [10, 20]  # at the global step: overlays train/loss
    assert len(_vdl_steps(run, "train/loss")) == 2 * 10  # 320 training rows / batch 32


def test_whole_set_accuracy_agrees_with_paddle_model_evaluate(tmp_path, synthetic_csvs):
    trainer = Trainer(tiny_config(synthetic_csvs), tmp_path / "run", verbose=False)
    trainer.fit()
    ours = trainer.evaluate("test")
    paddles = trainer.model.evaluate(trainer.data.test.loader(17), verbose=0)  # odd batch: last one is short
    assert ours["acc"] == pytest.approx(float(paddles["acc"]), abs=1e-9)
    assert ours["n"] == 120 and ours["confusion"].sum() == 120


@pytest.mark.parametrize("schedule", ["step", "onecycle"])
def test_resume_equals_an_uninterrupted_run(tmp_path, synthetic_csvs, schedule):
    # flip-crop augmentation draws random numbers every item: resuming must redraw the same ones.
    cfg = tiny_config(synthetic_csvs, epochs=2, schedule=schedule, step_size=1, gamma=0.5, augment="flip-crop",
                  net="dilated_cnn")
    _, straight = train_and_evaluate(cfg, tmp_path / "a", verbose=False)
    Trainer(cfg, tmp_path / "b", verbose=False).fit(epochs=1)  # stops after epoch 1 of 2
    # Same process, new model: Paddle's global parameter names differ from the first model's.
    _, resumed = train_and_evaluate(cfg, tmp_path / "b", resume=True, verbose=False)

    for name in ("model.safetensors", "optimizer.safetensors"):
        a = load_file(str(tmp_path / "a" / "checkpoints" / "latest" / name))
        b = load_file(str(tmp_path / "b" / "checkpoints" / "latest" / name))
        assert a.keys() == b.keys()
        for k in a:
            np.testing.assert_allclose(a[k], b[k], rtol=1e-6, atol=1e-7, err_msg=f"{name}:{k}")
    assert resumed["test"] == pytest.approx(straight["test"], rel=1e-6)
    assert resumed["val"] == pytest.approx(straight["val"], rel=1e-6)
    a_hist = json.loads((tmp_path / "a" / "checkpoints" / "latest" / "state.json").read_text())["run"]["history"]
    b_hist = json.loads((tmp_path / "b" / "checkpoints" / "latest" / "state.json").read_text())["run"]["history"]
    assert len(a_hist) == len(b_hist) == 2
    for ra, rb in zip(a_hist, b_hist):
        for key in ("train_loss", "train_acc", "val_loss", "val_acc", "lr"):
            assert ra[key] == pytest.approx(rb[key], rel=1e-6), key
    # One continuous VisualDL curve: steps 1..20 once each, same values as the straight run.
    a_steps, b_steps = _vdl_steps(tmp_path / "a", "train/loss"), _vdl_steps(tmp_path / "b", "train/loss")
    assert [s for s, _ in b_steps] == list(range(1, 21))
    np.testing.assert_allclose([v for _, v in b_steps], [v for _, v in a_steps], rtol=1e-5)
    assert [s for s, _ in _vdl_steps(tmp_path / "b", "lr")] == [10, 20]
    # Earlier checkpoint names are kept, not overwritten, by the resumed run.
    assert (tmp_path / "b" / "checkpoints" / "epoch_1").is_dir() and (tmp_path / "b" / "checkpoints" / "epoch_2").is_dir()


def test_same_seed_same_numbers_different_seed_different(tmp_path, synthetic_csvs):
    cfg = tiny_config(synthetic_csvs)
    _, a = train_and_evaluate(cfg, tmp_path / "a", verbose=False)
    _, b = train_and_evaluate(cfg, tmp_path / "b", verbose=False)
    _, c = train_and_evaluate(dataclasses.replace(cfg, seed=1), tmp_path / "c", verbose=False)
    assert a["test"] == b["test"]
    assert a["test"]["loss"] != c["test"]["loss"]


def test_resume_of_an_interrupted_epoch_moves_extra_log_records_aside(tmp_path, synthetic_csvs):
    cfg = tiny_config(synthetic_csvs, epochs=2)
    train_and_evaluate(dataclasses.replace(cfg, epochs=1), tmp_path / "r", verbose=False)
    log = tmp_path / "r" / "vdl" / VDL_FILE
    # Simulate a process that logged a few steps of epoch 2 and then died before its checkpoint.
    from visualdl import LogWriter
    with LogWriter(logdir=str(log.parent), file_name=VDL_FILE) as w:
        for step in (11, 12, 13):
            w.add_scalar("train/loss", 99.0, step)
    train_and_evaluate(cfg, tmp_path / "r", resume=True, verbose=False)
    steps = _vdl_steps(tmp_path / "r", "train/loss")
    assert [s for s, _ in steps] == list(range(1, 21)) and 99.0 not in [v for _, v in steps]
    assert len(list((log.parent / "interrupted").glob("vdlrecords.*.log"))) == 1


def test_load_model_gives_the_trained_network(tmp_path, synthetic_csvs):
    trainer, results = train_and_evaluate(tiny_config(synthetic_csvs), tmp_path / "run", verbose=False)
    net, config, state = load_model(tmp_path / "run", "latest")
    assert config.net == "standard_cnn" and state.run.epoch == 1
    x = paddle.to_tensor(trainer.data.test.scale(trainer.data.test.images[:5]))
    trainer.net.eval()
    np.testing.assert_allclose(net(x).numpy(), trainer.net(x).numpy(), rtol=1e-6)


def test_refuses_to_clobber_an_existing_run_and_overwrite_moves_it_aside(tmp_path, synthetic_csvs):
    cfg = tiny_config(synthetic_csvs)
    train_and_evaluate(cfg, tmp_path / "run", verbose=False)
    with pytest.raises(RunDirError, match="already holds a run; pass --resume"):
        Trainer(cfg, tmp_path / "run", verbose=False)
    trainer = Trainer(cfg, tmp_path / "run", overwrite=True, verbose=False)
    assert not list(tmp_path.glob("run.replaced-*"))  # nothing moves until the folder is taken
    with trainer.owned():
        pass
    aside = list(tmp_path.glob("run.replaced-*"))
    assert len(aside) == 1 and (aside[0] / "results.json").is_file()


def test_resume_before_the_first_checkpoint_starts_at_epoch_one(tmp_path, synthetic_csvs):
    cfg = tiny_config(synthetic_csvs)
    run = tmp_path / "run"
    run.mkdir()
    cfg.save(run / "config.json")
    _, results = train_and_evaluate(cfg, run, resume=True, verbose=False)
    assert results["epochs"] == 1


def test_resume_errors(tmp_path, synthetic_csvs):
    cfg = tiny_config(synthetic_csvs)
    with pytest.raises(RunDirError, match="cannot resume, no run folder"):
        Trainer(cfg, tmp_path / "missing", resume=True)
    train_and_evaluate(cfg, tmp_path / "run", verbose=False)
    with pytest.raises(RunDirError, match=r"disagrees with the run's config.json \(lr: saved 0.001 vs given 0.5"):
        Trainer(dataclasses.replace(cfg, lr=0.5), tmp_path / "run", resume=True)
    # More epochs are fine for a constant schedule, not for one whose shape depends on the epoch count.
    Trainer(dataclasses.replace(cfg, epochs=3), tmp_path / "run", resume=True, verbose=False)
    cos = dataclasses.replace(cfg, schedule="cosine")
    train_and_evaluate(cos, tmp_path / "cos", verbose=False)
    with pytest.raises(RunDirError, match=r"epochs: saved 1 vs given 4"):
        Trainer(dataclasses.replace(cos, epochs=4), tmp_path / "cos", resume=True)


def test_nan_loss_stops_with_the_step_and_keeps_the_last_good_checkpoint(tmp_path, synthetic_csvs):
    trainer = Trainer(tiny_config(synthetic_csvs, epochs=3), tmp_path / "run", verbose=False)
    trainer.fit(epochs=1)
    # The weights diverge during epoch 2 (here: poisoned), so its first loss is NaN.
    trainer.net[-1].bias.set_value(paddle.full_like(trainer.net[-1].bias, float("nan")))
    with pytest.raises(FloatingPointError, match=r"loss became nan at epoch 2, step 1 \(global step 11\); "
                                                 r"training stopped, the last good checkpoint is .*checkpoints/latest"):
        trainer.fit()
    checkpoints = tmp_path / "run" / "checkpoints"
    assert not (checkpoints / "epoch_2").exists()
    assert ckpt.read_state(checkpoints / "latest")["run"]["epoch"] == 1
    net = nets.create("standard_cnn")
    ckpt.load_weights(checkpoints / "latest", net)
    assert all(np.isfinite(p.numpy()).all() for p in net.parameters())


def test_steps_that_finished_before_a_failure_reach_visualdl(tmp_path, synthetic_csvs, monkeypatch):
    """Per-step scalars are written in groups; Ctrl-C mid-epoch still leaves the finished steps in the log."""
    from paddle_cnn.training import callbacks

    original = callbacks.TrainMeter.on_train_batch_end

    def interrupted_at_step_5(self, step, logs=None):
        if self.state.global_step == 4:
            raise KeyboardInterrupt
        original(self, step, logs)

    monkeypatch.setattr(callbacks.TrainMeter, "on_train_batch_end", interrupted_at_step_5)
    trainer = Trainer(tiny_config(synthetic_csvs), tmp_path / "run", verbose=False)
    with pytest.raises(KeyboardInterrupt, match=r"interrupted during epoch 1, step 5; no checkpoint was written "
                                                r"yet in .*; continue with: paddle-cnn train --resume .*run"):
        trainer.fit()
    assert (tmp_path / "run" / ".lock").read_text() == ""  # released
    assert [s for s, _ in _vdl_steps(tmp_path / "run", "train/loss")] == [1, 2, 3, 4]
    assert [s for s, _ in _vdl_steps(tmp_path / "run", "train/acc_running")] == [1, 2, 3, 4]


def test_checkpoint_from_another_network_is_refused_clearly(tmp_path, synthetic_csvs):
    train_and_evaluate(tiny_config(synthetic_csvs), tmp_path / "run", verbose=False)
    other = nets.create("dilated_cnn")
    with pytest.raises(CheckpointError, match=r"parameter '7.weight' has shape \[1152, 256\] in the checkpoint "
                                              r"but \[512, 256\] in the network"):
        ckpt.load_weights(tmp_path / "run" / "checkpoints" / "latest", other)
    with pytest.raises(CheckpointError, match="does not match the network"):
        ckpt.load_weights(tmp_path / "run" / "checkpoints" / "latest", nets.create("lenet_subclassed"))
    model_file = tmp_path / "run" / "checkpoints" / "latest" / "model.safetensors"
    model_file.write_bytes(model_file.read_bytes()[:1000])
    with pytest.raises(CheckpointError, match="sha256 differs from the one recorded in state.json"):
        ckpt.load_weights(tmp_path / "run" / "checkpoints" / "latest", nets.create("standard_cnn"))
    with pytest.raises(CheckpointError, match="not a checkpoint folder"):
        ckpt.read_state(tmp_path / "nowhere")


def test_gpu_switches_fail_clearly_on_a_cpu_build(tmp_path, synthetic_csvs):
    if paddle.is_compiled_with_cuda():
        pytest.skip("this Paddle build has CUDA")
    with pytest.raises(ValueError, match="amp=True needs a GPU"):
        Trainer(tiny_config(synthetic_csvs, amp=True), tmp_path / "a")
    with pytest.raises(ValueError, match="no CUDA"):
        Trainer(tiny_config(synthetic_csvs, device="gpu"), tmp_path / "b")


def test_cli_flags_override_the_typedtiny_config():
    import argparse

    parser = argparse.ArgumentParser()
    add_config_args(parser)
    args = parser.parse_args(["--epochs", "3", "--lr", "0.01", "--no-verify-md5", "--input-size", "32", "32"])
    cfg = config_from_args(args, net="lenet", batch_size=16)
    assert (cfg.epochs, cfg.lr, cfg.verify_md5, cfg.input_size, cfg.batch_size, cfg.net) == (
        3, 0.01, False, [32, 32], 16, "lenet")
    with pytest.raises(ValueError, match="config optimizer='rmsprop'; expected one of"):
        config_from_args(parser.parse_args(["--optimizer", "rmsprop"]))
    with pytest.raises(ValueError, match=r"config: unknown keys \['bogus'\]"):
        RunConfig.from_dict({"bogus": 1})


def test_nan_before_the_first_checkpoint_says_there_is_none(csv_pair, tmp_path):
    trainer = Trainer(tiny_config(csv_pair, epochs=2), tmp_path / "run", verbose=False)
    trainer.net[-1].bias.set_value(paddle.full_like(trainer.net[-1].bias, float("nan")))
    with pytest.raises(FloatingPointError, match="no checkpoint was written yet"):
        trainer.fit()

