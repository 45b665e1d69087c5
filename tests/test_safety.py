"""Trustworthy runs: no code runs when loading, crash-safe resume under real SIGKILLs, strict errors."""
import json
import os
import pickle
import signal
import subprocess
import sys
import tempfile
import textwrap
from pathlib import Path

import numpy as np
import paddle
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from safetensors.numpy import load_file

from paddle_cnn import nets
from paddle_cnn.training import CheckpointError
from paddle_cnn.training import checkpoint as ckpt
from paddle_cnn.training.legacy import load_legacy_state_dict, load_legacy_weights


class _Payload:
    """Unpickling this runs a shell command that creates a marker file."""

    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return os.system, (f"touch {self.marker}",)


def _evil_pdparams(tmp_path):
    marker = tmp_path / "pwned"
    path = tmp_path / "evil.pdparams"
    with open(path, "wb") as f:
        pickle.dump({"0.weight": np.zeros((2, 2), np.float32), "0.bias": _Payload(marker)}, f, protocol=4)
    return path, marker


def test_malicious_pickle_is_refused_without_running(tmp_path):
    path, marker = _evil_pdparams(tmp_path)
    with pytest.raises(CheckpointError, match="off by default"):
        load_legacy_state_dict(path)
    with pytest.raises(CheckpointError, match=r"refusing to unpickle posix.system|refusing to unpickle os.system"):
        load_legacy_state_dict(path, allow_pickle=True)
    assert not marker.exists()
    # Control: the payload is live; plain pickle.load (what paddle.load does) runs it.
    subprocess.run([sys.executable, "-c", f"import pickle; pickle.load(open({str(path)!r}, 'rb'))"], check=False,
                   capture_output=True, timeout=60)
    assert marker.exists()


@pytest.mark.parametrize("payload", [
    "cbuiltins\neval\n(S'1+1'\ntR.",
    "cos\nsystem\n(S'true'\ntR.",
    "csubprocess\nPopen\n(S'true'\ntR.",
])
def test_other_globals_are_refused(tmp_path, payload):
    path = tmp_path / "x.pdparams"
    path.write_bytes(payload.encode())
    with pytest.raises(CheckpointError, match="refusing to unpickle"):
        load_legacy_state_dict(path, allow_pickle=True)


def test_legacy_pdparams_from_paddle_save_loads_with_opt_in(tmp_path):
    net = nets.create("lenet")
    paddle.save(net.state_dict(), str(tmp_path / "lenet.pdparams"))  # the notebooks' format
    fresh = nets.create("lenet")
    load_legacy_weights(tmp_path / "lenet.pdparams", fresh, allow_pickle=True)
    for (k, a), (_, b) in zip(net.state_dict().items(), fresh.state_dict().items()):
        np.testing.assert_array_equal(a.numpy(), b.numpy(), err_msg=k)
    with pytest.raises(CheckpointError, match=r"parameter '0.weight' has shape \[6, 1, 5, 5\] in the checkpoint"):
        load_legacy_weights(tmp_path / "lenet.pdparams", nets.create("standard_cnn"), allow_pickle=True)


def test_legacy_non_array_entries_are_refused(tmp_path):
    path = tmp_path / "odd.pdparams"
    with open(path, "wb") as f:
        pickle.dump({"w": [1, 2, 3]}, f)
    with pytest.raises(CheckpointError, match="entry 'w' is a list; expected numeric arrays only"):
        load_legacy_state_dict(path, allow_pickle=True)
    with open(path, "wb") as f:
        pickle.dump({"w": np.array(["a"], dtype=object)}, f)
    with pytest.raises(CheckpointError, match="refusing to unpickle|expected numeric arrays"):
        load_legacy_state_dict(path, allow_pickle=True)


# ------------------------------------------------------------------ crash-safe resume, real SIGKILL

_DRIVER = textwrap.dedent("""
    import sys
    from paddle_cnn.training import RunConfig, train_and_evaluate
    cfg = RunConfig(net="dilated_cnn", train_csv=sys.argv[1], test_csv=sys.argv[2], val_size=80, epochs=3,
                    batch_size=32, lr=1e-3, log_every=1000, schedule="step", step_size=1, gamma=0.5,
                    augment="flip-crop")
    train_and_evaluate(cfg, sys.argv[3], resume=sys.argv[4] == "resume", verbose=False)
""")


def _drive(csvs, run_dir, mode, crash_at=None):
    env = {k: v for k, v in os.environ.items() if k != "PADDLE_CNN_CRASH_AT"}
    if crash_at:
        env["PADDLE_CNN_CRASH_AT"] = crash_at
    return subprocess.run([sys.executable, "-c", _DRIVER, str(csvs[0]), str(csvs[1]), str(run_dir), mode],
                          env=env, capture_output=True, text=True, timeout=300)


def _final_numbers(run_dir):
    weights = load_file(str(run_dir / "checkpoints" / "latest" / "model.safetensors"))
    results = json.loads((run_dir / "results.json").read_text())
    history = json.loads((run_dir / "checkpoints" / "latest" / "state.json").read_text())["run"]["history"]
    return weights, results, history


# 320 training rows / batch 32 = 10 steps per epoch, 3 epochs.
@pytest.mark.parametrize("crash_at", [
    "step:14",            # mid-epoch 2
    "step:3",             # mid-epoch 1, before any checkpoint exists
    "epoch-end:2",        # metrics.csv written, checkpoint not yet
    "checkpoint-file:4",  # half-way through writing a checkpoint folder
    "checkpoint-swap:1",  # 'latest' moved aside, the new one not yet in place
])
def test_sigkill_then_resume_matches_an_uninterrupted_run(tmp_path, synthetic_csvs, crash_at):
    baseline = _drive(synthetic_csvs, tmp_path / "straight", "fresh")
    assert baseline.returncode == 0, baseline.stderr
    killed = _drive(synthetic_csvs, tmp_path / "killed", "fresh", crash_at)
    assert killed.returncode == -signal.SIGKILL, (killed.returncode, killed.stderr[-2000:])
    assert not (tmp_path / "killed" / "results.json").exists()
    # What survived the kill: every checkpoint under its own name is whole (written aside, then renamed).
    from paddle_cnn.training import RunDir

    run = RunDir(tmp_path / "killed", writer=False)
    for name in run.checkpoint_names():
        if (run.checkpoints / name).exists():
            ckpt.verify(run.checkpoints / name)
    point = run.resume_point()
    finished = {"step:14": 1, "step:3": 0, "epoch-end:2": 1, "checkpoint-file:4": 1,
                "checkpoint-swap:1": 2}  # epoch_2 was whole; only latest was being swapped
    assert (point.epoch if point else 0) == finished[crash_at]
    kept = {f: (f.stat().st_ino, f.stat().st_mtime_ns) for f in run.checkpoints.glob("epoch_*/*")}
    resumed = _drive(synthetic_csvs, tmp_path / "killed", "resume")
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    # The resume continued: the epochs that had finished were not trained (and written) again.
    assert {f: (f.stat().st_ino, f.stat().st_mtime_ns) for f in kept} == kept
    w_a, r_a, h_a = _final_numbers(tmp_path / "straight")
    w_b, r_b, h_b = _final_numbers(tmp_path / "killed")
    for k in w_a:
        np.testing.assert_allclose(w_a[k], w_b[k], rtol=1e-6, atol=1e-7, err_msg=k)
    assert r_a["test"] == pytest.approx(r_b["test"], rel=1e-6) and r_a["val"] == pytest.approx(r_b["val"], rel=1e-6)
    assert len(h_a) == len(h_b) == 3
    assert [h["val_acc"] for h in h_a] == pytest.approx([h["val_acc"] for h in h_b])
    assert not list((tmp_path / "killed" / "checkpoints").glob(".tmp-*"))
    for epoch in (1, 2, 3):
        ckpt.read_state(tmp_path / "killed" / "checkpoints" / f"epoch_{epoch}")


# ------------------------------------------------------------------ fuzzing the checkpoint loader


@pytest.fixture(scope="module")
def saved_checkpoint(tmp_path_factory):
    folder = tmp_path_factory.mktemp("ckpt") / "epoch_1"
    net = nets.create("lenet")
    ckpt.save_checkpoint(folder, net, None, {"epoch": 1})
    legacy = folder.parent / "legacy.pdparams"
    paddle.save(net.state_dict(), str(legacy))
    return folder, legacy


_FUZZ = settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])


def _mutate(data, raw: bytes) -> bytes:
    raw = bytearray(raw)
    for _ in range(data.draw(st.integers(1, 6))):
        pos = data.draw(st.integers(0, len(raw) - 1))
        raw[pos] = data.draw(st.integers(0, 255))
    return bytes(raw[: data.draw(st.integers(0, len(raw)))])


@_FUZZ
@given(data=st.data())
def test_mutated_checkpoint_files_load_or_raise_our_error(tmp_path, saved_checkpoint, data):
    folder, legacy = saved_checkpoint
    target = data.draw(st.sampled_from(["model.safetensors", "state.json", "legacy"]))
    work = Path(tempfile.mkdtemp(dir=tmp_path))
    for name in ("model.safetensors", "state.json"):
        (work / name).write_bytes((folder / name).read_bytes())
    source = legacy if target == "legacy" else folder / target
    mutated = _mutate(data, source.read_bytes())
    net = nets.create("lenet")
    try:
        if target == "legacy":
            (work / "x.pdparams").write_bytes(mutated)
            load_legacy_weights(work / "x.pdparams", net, allow_pickle=True)
        else:
            (work / target).write_bytes(mutated)
            ckpt.read_state(work)
            ckpt.load_weights(work, net)
    except CheckpointError as exc:
        assert str(work) in str(exc)
        return
    if target == "model.safetensors":  # checksummed: any change to the tensor file must be refused
        assert mutated == source.read_bytes(), "a changed model.safetensors loaded silently"
    if target != "legacy":  # whatever state.json says, the weights loaded are exactly the saved ones
        saved = load_file(str(folder / "model.safetensors"))
        for k, v in net.state_dict().items():
            np.testing.assert_array_equal(v.numpy(), saved[k], err_msg=k)
