"""Launch and GPU paths checked on CPU (paddle_cnn/training/parallel.py, trainer's AMP state): CUDA's
checks are monkeypatched where the logic, not the device, is what is tested."""
import json
import types

import numpy as np
import paddle
import pytest

from paddle_cnn.errors import ConfigError
from paddle_cnn.training import RunConfig, Trainer
from paddle_cnn.training import parallel
from paddle_cnn.training.trainer import restore_grad_scaler


def _cuda(monkeypatch, gpus: int):
    monkeypatch.setattr(paddle, "is_compiled_with_cuda", lambda: True)
    monkeypatch.setattr(paddle.device.cuda, "device_count", lambda: gpus)


def test_more_processes_than_gpus_is_refused_before_the_launcher_starts(monkeypatch):
    _cuda(monkeypatch, 1)
    with pytest.raises(ConfigError, match=r"--processes 2 needs one GPU per process, but 1 is visible"):
        parallel.launch_environment(2, "auto")
    with pytest.raises(ConfigError, match="but 0 are visible"):
        _cuda(monkeypatch, 0)
        parallel.launch_environment(2, "gpu")


def test_cpu_jobs_on_a_cuda_build_hide_the_gpus_and_use_gloo(monkeypatch):
    _cuda(monkeypatch, 4)
    env = parallel.launch_environment(2, "cpu")
    assert env["CUDA_VISIBLE_DEVICES"] == "" and env["PADDLE_DISTRI_BACKEND"] == "gloo"
    gpu_job = parallel.launch_environment(2, "auto")  # 4 GPUs visible: a GPU job, NCCL as Paddle chooses
    assert gpu_job.get("CUDA_VISIBLE_DEVICES") != "" and "PADDLE_DISTRI_BACKEND" not in gpu_job


def test_the_cli_refuses_too_many_gpu_processes_in_one_line(monkeypatch, capsys, csv_pair):
    from paddle_cnn import cli

    _cuda(monkeypatch, 1)
    launched = []
    monkeypatch.setattr(parallel.subprocess, "call", lambda *a, **k: launched.append(a) or 0)
    status = cli.main(["train", "--train-csv", str(csv_pair[0]), "--test-csv", str(csv_pair[1]), "--processes", "3"])
    err = capsys.readouterr().err.strip().splitlines()
    assert status == 2 and not launched
    assert len(err) == 1 and "--processes 3 needs one GPU per process, but 1 is visible" in err[0]


class _Scaler:
    """Stands in for paddle.amp.GradScaler, which Paddle disables on CPU (its state_dict is then empty)."""

    def __init__(self, **configs):
        self.configs, self.state = configs, {}

    def state_dict(self):
        return self.state

    def load_state_dict(self, state):
        self.state = state


def test_amp_loss_scaling_is_saved_in_the_checkpoint_and_restored(tmp_path, csv_pair, monkeypatch):
    cfg = RunConfig(net="lenet", train_csv=str(csv_pair[0]), test_csv=str(csv_pair[1]), val_size=80, epochs=1,
                    batch_size=64, log_every=1000)
    trainer = Trainer(cfg, tmp_path / "run", verbose=False)
    trainer.model._scaler = _Scaler()
    trainer.model._scaler.state = {"scale": np.array([512.0], np.float32), "incr_ratio": 2.0, "decr_ratio": 0.5,
                                   "incr_every_n_steps": 1000, "decr_every_n_nan_or_inf": 2, "incr_count": 7,
                                   "decr_count": 1, "use_dynamic_loss_scaling": True}
    trainer.fit()
    saved = json.loads((tmp_path / "run" / "checkpoints" / "latest" / "state.json").read_text())["grad_scaler"]
    assert saved["scale"] == [512.0] and saved["incr_count"] == 7 and saved["decr_count"] == 1

    monkeypatch.setattr(paddle.amp, "GradScaler", _Scaler)
    model = types.SimpleNamespace(_scaler=None, _adapter=types.SimpleNamespace(_amp_level="O1",
                                                                                _amp_configs={"init_loss_scaling": 8}))
    restore_grad_scaler(model, saved)
    assert model._scaler.configs == {"init_loss_scaling": 8}
    assert model._scaler.state["scale"].dtype == np.float32 and model._scaler.state["scale"].tolist() == [512.0]
    assert model._scaler.state["incr_count"] == 7
    model._adapter._amp_level = "O0"
    model._scaler = None
    with pytest.raises(ConfigError, match="holds AMP loss-scaling state but this run has amp off"):
        restore_grad_scaler(model, saved)


def test_float16_logits_are_scored_in_float32():
    from paddle_cnn.training.losses import AuxiliaryLoss, MainAccuracy

    logits = paddle.to_tensor(np.array([[3.0, 1.0, -2.0], [0.5, 2.5, 0.0]], np.float32))
    label = paddle.to_tensor(np.array([[0], [1]], np.int64))
    want = float(AuxiliaryLoss()(logits, label))
    got = AuxiliaryLoss()(logits.astype("float16"), label)
    assert got.dtype == paddle.float32 and float(got) == pytest.approx(want, rel=1e-3)
    assert MainAccuracy().compute(logits.astype("float16"), label).numpy().ravel().tolist() == [1.0, 1.0]
