"""Checkpoint files (paddle_cnn/training/checkpoint.py) damaged or edited by hand: every tensor is
checked against its sha256 and every field against its type before anything is loaded or written."""
import json

import numpy as np
import pytest

from helpers import cli, copy_run, one_line_error


def test_flipped_bytes_in_tensor_data_are_refused_and_resume_continues_from_an_intact_epoch(finished_run, tmp_path):
    run = copy_run(finished_run, tmp_path / "run")
    model = run / "checkpoints" / "latest" / "model.safetensors"
    raw = bytearray(model.read_bytes())
    raw[-10] ^= 0xFF  # inside the tensor data, past the header: safetensors itself loads this happily
    model.write_bytes(bytes(raw))
    epoch_2 = (run / "checkpoints" / "epoch_2" / "model.safetensors").read_bytes()
    one_line_error(cli("evaluate", run, "--which", "latest"), "sha256 differs")
    # A resume is not refused while an intact epoch survives: it continues from there and says why.
    res = cli("train", "--resume", run, "--epochs", 3)
    assert res.returncode == 0, res.stderr[-2000:]
    assert "resuming from checkpoint 'epoch_2' (epoch 2), the newest intact one: checkpoints/latest is damaged" \
        in res.stdout and "sha256 differs" in res.stdout
    assert list((run / "checkpoints").glob("damaged-*/latest/model.safetensors"))[0].read_bytes() == bytes(raw)
    assert (run / "checkpoints" / "epoch_2" / "model.safetensors").read_bytes() == epoch_2


@pytest.mark.parametrize("file,edit,message", [
    ("checkpoints/latest/state.json", lambda d: d["run"].update(epoch="2"), "key 'run.epoch': expected an integer"),
    ("checkpoints/latest/state.json", lambda d: d["run"].update(history=None), "key 'run.history': expected a list"),
    ("checkpoints/latest/state.json", lambda d: d["run"]["history"][0].update(val_acc=[1]),
     "key 'run.history[0].val_acc': expected a number"),
    ("checkpoints/latest/state.json", lambda d: d["input"].update(channels=None), "key 'input.channels'"),
    ("config.json", lambda d: d.update(epochs="3"), "key 'epochs': expected an integer"),
    ("config.json", lambda d: d.update(lr=None), "key 'lr': expected a number"),
    ("config.json", lambda d: d.update(input_size=28), "key 'input_size'"),
])
def test_bad_types_in_run_files_are_refused_before_anything_is_written(finished_run, tmp_path, file, edit, message):
    run = copy_run(finished_run, tmp_path / "run")
    # A damaged 'latest' alone is resumed past (tests/test_rundir.py): damage every checkpoint alike.
    files = sorted(run.glob("checkpoints/*/state.json")) if file.startswith("checkpoints/") else [run / file]
    for path in files:
        data = json.loads(path.read_text())
        edit(data)
        path.write_text(json.dumps(data))
    before = {p: p.read_bytes() for p in run.rglob("*") if p.is_file()}
    res = cli("train", "--resume", run)
    one_line_error(res, file.split("/")[-1], message)
    assert {p: p.read_bytes() for p in run.rglob("*") if p.is_file()} == before


def test_a_float64_checkpoint_is_refused_in_one_line(finished_run, tmp_path):
    from safetensors.numpy import load_file, save_file

    from paddle_cnn.training import checkpoint as ckpt

    run = copy_run(finished_run, tmp_path / "run")
    folder = run / "checkpoints" / "latest"
    tensors = {k: v.astype(np.float64) for k, v in load_file(str(folder / "model.safetensors")).items()}
    save_file(tensors, str(folder / "model.safetensors"))
    state = json.loads((folder / "state.json").read_text())
    state["tensors"]["model.safetensors"] = ckpt.sha256(folder / "model.safetensors")
    (folder / "state.json").write_text(json.dumps(state))
    one_line_error(cli("evaluate", run, "--which", "latest"), "is float64 in the checkpoint but float32")

