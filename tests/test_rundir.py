"""The run folder: which checkpoint a resume continues from, and that a resume never writes over a
checkpoint it did not load (paddle_cnn/training/rundir.py)."""
import json
import shutil

import numpy as np
import pytest

from paddle_cnn.training import RunConfig, RunDir, RunDirError, Trainer, train_and_evaluate
from paddle_cnn.training import checkpoint as ckpt


def _config(csvs, **kw):
    train, test = csvs
    base = dict(net="standard_cnn", train_csv=str(train), test_csv=str(test), val_size=80, epochs=2,
                batch_size=32, log_every=1000)
    base.update(kw)
    return RunConfig(**base)


@pytest.fixture(scope="module")
def two_epochs(csv_pair, tmp_path_factory):
    run = tmp_path_factory.mktemp("two") / "run"
    train_and_evaluate(_config(csv_pair), run, verbose=False)
    return run


@pytest.fixture
def run(two_epochs, tmp_path):
    copy = tmp_path / "run"
    shutil.copytree(two_epochs, copy)
    return copy


def _fingerprints(run):
    """(inode, mtime, sha256) of every checkpoint file: a rewrite changes at least the first two."""
    out = {}
    for f in sorted((run / "checkpoints").rglob("*")):
        if f.is_file():
            st = f.stat()
            out[str(f.relative_to(run))] = (st.st_ino, st.st_mtime_ns, ckpt.sha256(f))
    return out


def _resume(csv_pair, run, capsys, epochs=3):
    trainer = Trainer(_config(csv_pair, epochs=epochs), run, resume=True)
    out = capsys.readouterr().out
    return trainer, out


def _flip_a_byte(path):
    raw = bytearray(path.read_bytes())
    raw[len(raw) // 2] ^= 0xFF
    path.write_bytes(bytes(raw))


def test_a_missing_latest_continues_from_the_newest_epoch_and_keeps_every_checkpoint(csv_pair, run, capsys):
    shutil.rmtree(run / "checkpoints" / "latest")
    before = {k: v for k, v in _fingerprints(run).items() if "epoch_" in k or "best" in k}
    trainer, out = _resume(csv_pair, run, capsys)
    assert "resuming from checkpoint 'epoch_2' (epoch 2), the newest intact one: checkpoints/latest is missing" in out
    assert "continuing at epoch 3 of 3" in out
    assert trainer.state.epoch == 2 and [r.epoch for r in trainer.state.history] == [1, 2]
    trainer.fit()
    after = _fingerprints(run)
    for name, print_ in before.items():
        if not name.startswith("checkpoints/best"):  # best may improve at epoch 3: then it is rewritten
            assert after[name] == print_, f"{name} was written over by the resume"
    assert ckpt.read_state(run / "checkpoints" / "latest")["run"]["epoch"] == 3
    assert [r.epoch for r in trainer.state.history] == [1, 2, 3]


def test_a_damaged_latest_is_moved_aside_and_the_run_continues_from_epoch_2(csv_pair, run, capsys):
    _flip_a_byte(run / "checkpoints" / "latest" / "model.safetensors")
    damaged = (run / "checkpoints" / "latest" / "model.safetensors").read_bytes()
    trainer, out = _resume(csv_pair, run, capsys)
    assert "resuming from checkpoint 'epoch_2' (epoch 2)" in out and "checkpoints/latest is damaged" in out
    assert "sha256 differs" in out and "moved the damaged checkpoint latest" in out
    aside = list((run / "checkpoints").glob("damaged-*/latest/model.safetensors"))
    assert len(aside) == 1 and aside[0].read_bytes() == damaged  # kept for the user, byte for byte
    trainer.fit()
    assert ckpt.read_state(run / "checkpoints" / "latest")["run"]["epoch"] == 3


def test_a_checkpoint_newer_than_latest_is_the_one_resumed(csv_pair, run, capsys):
    # A process killed after writing epoch_2 but before 'latest' was replaced: latest still says epoch 1.
    shutil.rmtree(run / "checkpoints" / "latest")
    shutil.copytree(run / "checkpoints" / "epoch_1", run / "checkpoints" / "latest")
    trainer, out = _resume(csv_pair, run, capsys)
    assert trainer.state.epoch == 2 and "checkpoint 'epoch_2' (epoch 2)" in out
    assert "checkpoints/latest is behind it, at epoch 1" in out and "missing" not in out


def test_an_intact_latest_is_preferred_among_equals(csv_pair, run, capsys):
    point = RunDir(run).resume_point()
    assert point.name == "latest" and point.epoch == 2 and not point.damaged


def test_when_every_checkpoint_is_damaged_the_resume_is_refused_and_nothing_is_touched(csv_pair, run):
    for f in (run / "checkpoints").glob("*/model.safetensors"):
        _flip_a_byte(f)
    before = _fingerprints(run)
    with pytest.raises(RunDirError, match=r"none of its 4 checkpoints is intact .*refusing to train over them"):
        Trainer(_config(csv_pair, epochs=3), run, resume=True, verbose=False)
    assert _fingerprints(run) == before


def test_a_run_that_died_before_its_first_checkpoint_says_so_and_starts_at_epoch_one(csv_pair, tmp_path, capsys):
    run = tmp_path / "fresh"
    run.mkdir()
    _config(csv_pair).save(run / "config.json")
    trainer, out = _resume(csv_pair, run, capsys, epochs=2)
    assert "no checkpoint was written yet; continuing at epoch 1 of 2" in out and trainer.state.epoch == 0


def test_unreadable_state_of_latest_falls_back_too(csv_pair, run, capsys):
    (run / "checkpoints" / "latest" / "state.json").write_text("{not json")
    trainer, _ = _resume(csv_pair, run, capsys)
    assert trainer.state.epoch == 2
    weights = ckpt.load_file(str(run / "checkpoints" / "epoch_2" / "model.safetensors"))
    for k, v in trainer.net.state_dict().items():
        np.testing.assert_array_equal(v.numpy(), weights[k], err_msg=k)
    assert json.loads((run / "config.json").read_text())["epochs"] == 3
