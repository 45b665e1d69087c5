"""The run folder (paddle_cnn/training/rundir.py, lock.py, layout.py): one owner at a time, which
checkpoint a resume continues from, and that a resume never writes over a checkpoint it did not load."""
import json
import os
import shutil
import stat
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from helpers import CLI_ENV, ROOT, cli, copy_run, one_line_error, tiny_config
from paddle_cnn.errors import UserError
from paddle_cnn.nets import InputTooSmallError
from paddle_cnn.training import RunDir, RunDirError, Trainer
from paddle_cnn.training import checkpoint as ckpt


@pytest.fixture
def run(finished_run, tmp_path):
    return copy_run(finished_run, tmp_path / "run")


def _fingerprints(run):
    """(inode, mtime, sha256) of every checkpoint file: a rewrite changes at least the first two."""
    out = {}
    for f in sorted((run / "checkpoints").rglob("*")):
        if f.is_file():
            st = f.stat()
            out[str(f.relative_to(run))] = (st.st_ino, st.st_mtime_ns, ckpt.sha256(f))
    return out


def _resume(csv_pair, run, capsys, epochs=3):
    trainer = Trainer(tiny_config(csv_pair, epochs=epochs), run, resume=True)
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
    assert "sha256 differs" in out
    assert (run / "checkpoints" / "latest" / "model.safetensors").read_bytes() == damaged  # untouched until fit
    trainer.fit()
    assert "moved the damaged checkpoint latest" in capsys.readouterr().out
    aside = list((run / "checkpoints").glob("damaged-*/latest/model.safetensors"))
    assert len(aside) == 1 and aside[0].read_bytes() == damaged  # kept for the user, byte for byte
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
        Trainer(tiny_config(csv_pair, epochs=3), run, resume=True, verbose=False)
    assert _fingerprints(run) == before


def test_a_run_that_died_before_its_first_checkpoint_says_so_and_starts_at_epoch_one(csv_pair, tmp_path, capsys):
    run = tmp_path / "fresh"
    run.mkdir()
    tiny_config(csv_pair, epochs=2).save(run / "config.json")
    trainer, out = _resume(csv_pair, run, capsys, epochs=2)
    assert "no checkpoint was written yet; continuing at epoch 1 of 2" in out and trainer.state.epoch == 0


def test_unreadable_state_of_latest_falls_back_too(csv_pair, run, capsys):
    (run / "checkpoints" / "latest" / "state.json").write_text("{not json")
    trainer, _ = _resume(csv_pair, run, capsys)
    assert trainer.state.epoch == 2
    weights = ckpt.load_file(str(run / "checkpoints" / "epoch_2" / "model.safetensors"))
    for k, v in trainer.net.state_dict().items():
        np.testing.assert_array_equal(v.numpy(), weights[k], err_msg=k)
    assert json.loads((run / "config.json").read_text())["epochs"] == 2  # building a Trainer writes nothing
    with trainer.owned():
        pass
    assert json.loads((run / "config.json").read_text())["epochs"] == 3


def test_a_second_process_is_refused_while_a_run_folder_is_in_use(csv_pair, tmp_path):
    run = RunDir(tmp_path / "standard_cnn")  # the zoo's folder for that net, too
    with run.owned():  # this test process trains there now
        res = cli("train", "--train-csv", csv_pair[0], "--test-csv", csv_pair[1], "--val-size", 80, "--epochs", 1,
                  "--out", run.path, "--overwrite")
        one_line_error(res, "is in use by another process", f"pid {os.getpid()}")
        zoo = subprocess.run([sys.executable, "-m", "experiments.classic_zoo", "--nets", "standard_cnn", "--out",
                              tmp_path, "--train-csv", csv_pair[0], "--test-csv", csv_pair[1], "--val-size", "80",
                              "--epochs", "1", "--overwrite"], capture_output=True, text=True, timeout=600, cwd=ROOT,
                             env=CLI_ENV)
        assert zoo.returncode == 2 and "is in use by another process" in zoo.stderr, zoo.stderr[-2000:]
    assert sorted(p.name for p in run.path.iterdir()) == [".lock"]  # the refused runs wrote nothing
    assert (run.path / ".lock").read_text() == ""  # released, and cleared
    # Released: the same command now trains there.
    res = cli("train", "--train-csv", csv_pair[0], "--test-csv", csv_pair[1], "--val-size", 80, "--epochs", 1,
              "--out", run.path, "--log-every", 1000)
    assert res.returncode == 0, res.stderr[-2000:]


def test_a_lock_left_by_a_killed_process_is_taken_over_on_resume(finished_run, csv_pair, tmp_path, capsys):
    run = copy_run(finished_run, tmp_path / "run")
    (run / ".lock").write_text("pid 999999 on elsewhere since 2026-01-01 00:00:00")
    trainer = Trainer(tiny_config(csv_pair, epochs=2), run, resume=True)
    with trainer.owned():
        assert "taking over from a process that did not finish (pid 999999" in capsys.readouterr().out
        assert (run / ".lock").read_text().startswith(f"pid {os.getpid()} on ")
    assert (run / ".lock").read_text() == ""


def test_other_ranks_of_a_job_follow_rank_zero_without_checking_its_lock(finished_run, csv_pair):
    """Rank 0 holds the lock and has written files by the time rank 1 looks: rank 1 must not refuse."""
    with RunDir(finished_run).owned():
        with pytest.raises(RunDirError, match="in use by another process"):
            RunDir(finished_run).check_resume(tiny_config(csv_pair, epochs=2))  # another job's writer
        rank1 = RunDir(finished_run, writer=False)
        rank1.check_new(overwrite=False)  # the files and the lock are its own job's
        assert rank1.check_resume(tiny_config(csv_pair, epochs=2)).epoch == 2
        with rank1.owned():  # takes nothing: a second flock in this process would conflict
            pass


def test_building_a_trainer_writes_nothing_and_its_blocks_hold_the_folder(csv_pair, tmp_path):
    config = tiny_config(csv_pair)
    first = Trainer(config, tmp_path / "run", verbose=False)
    assert not (tmp_path / "run").exists()  # checked, not claimed
    with first.owned():  # what train_and_evaluate does around fit and finish
        assert (tmp_path / "run" / "config.json").is_file()
        with pytest.raises(RunDirError, match="in use by another process"):
            Trainer(config, tmp_path / "run", overwrite=True, verbose=False)
        first.fit()  # nested: the folder stays held after fit returns
        with pytest.raises(RunDirError, match="in use by another process"):
            Trainer(tiny_config(csv_pair, epochs=2), tmp_path / "run", resume=True, verbose=False)
        first.finish()
    assert (tmp_path / "run" / ".lock").read_text() == ""
    Trainer(tiny_config(csv_pair, epochs=2), tmp_path / "run", resume=True, verbose=False)  # released


def test_a_trainer_refused_its_folder_takes_it_on_the_next_try(csv_pair, tmp_path):
    trainer = Trainer(tiny_config(csv_pair), tmp_path / "run", verbose=False)
    with RunDir(tmp_path / "run").owned():  # someone else holds the folder when fit starts
        with pytest.raises(RunDirError, match="in use by another process"):
            trainer.fit()
    trainer.fit()  # released: this fit takes the folder, config.json and all
    assert json.loads((tmp_path / "run" / "config.json").read_text())["epochs"] == 1
    assert len(trainer.state.commands) == 1 and trainer.state.epoch == 1


def test_run_files_are_written_only_inside_an_owned_block(csv_pair, tmp_path):
    run = RunDir(tmp_path / "run")
    with pytest.raises(RuntimeError, match="outside a 'with run.owned\\(\\):' block"):
        run.save_config(tiny_config(csv_pair))
    with run.owned():
        run.save_config(tiny_config(csv_pair))
    assert run.files.config.is_file() and not RunDir(tmp_path / "other", writer=False).save_config(None)


def test_overwrite_checks_everything_before_moving_the_old_run_aside(finished_run, csv_pair, tmp_path):
    before = sorted(p.name for p in finished_run.iterdir())
    with pytest.raises(InputTooSmallError, match="alexnet cannot take a 28x28 input"):
        Trainer(tiny_config(csv_pair, net="alexnet"), finished_run, overwrite=True, verbose=False)
    with pytest.raises(UserError, match="missing.csv"):
        Trainer(tiny_config(csv_pair, train_csv=str(tmp_path / "missing.csv")), finished_run, overwrite=True)
    assert sorted(p.name for p in finished_run.iterdir()) == before
    assert not list(finished_run.parent.glob("run.replaced-*"))


def test_saved_paths_resolve_from_any_folder(csv_pair, tmp_path):
    work = tmp_path / "work"
    (work / "data").mkdir(parents=True)
    for src, name in zip(csv_pair, ("train.csv", "test.csv")):
        (work / "data" / name).write_bytes(Path(src).read_bytes())
    res = subprocess.run([sys.executable, "-m", "experiments.classic_zoo", "--nets", "lenet_bn", "--out", "zoo",
                          "--train-csv", "data/train.csv", "--test-csv", "data/test.csv", "--val-size", "80",
                          "--epochs", "1", "--log-every", "1000"], cwd=work, capture_output=True, text=True,
                         timeout=600, env=CLI_ENV)
    assert res.returncode == 0, res.stderr[-2000:]
    config = json.loads((work / "zoo" / "lenet_bn" / "config.json").read_text())
    assert config["train_csv"] == str(work / "data" / "train.csv")
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    table = subprocess.run([sys.executable, "-m", "experiments.classic_zoo", "--table-only", "--out", work / "zoo"],
                           cwd=elsewhere, capture_output=True, text=True, timeout=600,
                           env=CLI_ENV)
    assert table.returncode == 0 and "| lenet_bn |" in table.stdout, table.stderr[-2000:]
    ev = cli("evaluate", work / "zoo" / "lenet_bn", "--split", "test", cwd=elsewhere)
    assert ev.returncode == 0 and "(n=120," in ev.stdout, ev.stderr[-2000:]
    # The data moved: evaluate takes the new CSV paths.
    moved = tmp_path / "moved.csv"
    (work / "data" / "test.csv").rename(moved)
    ev = cli("evaluate", work / "zoo" / "lenet_bn", "--split", "test", "--test-csv", moved, cwd=elsewhere)
    assert ev.returncode == 0 and "(n=120," in ev.stdout, ev.stderr[-2000:]


def test_run_files_get_the_users_permissions(finished_run):
    mask = os.umask(0)
    os.umask(mask)
    for name in ("config.json", "metrics.csv", "results.json", "curves.png", "predictions/test.npz"):
        assert stat.S_IMODE((finished_run / name).stat().st_mode) == 0o666 & ~mask, name

