"""What a user sees: progress and ETA, clean first lines, the install hint and VisualDL through its own
server. Commands run as real subprocesses."""
import fcntl
import json
import os
import pty
import re
import select
import socket
import struct
import subprocess
import sys
import termios
import time
import urllib.request
from pathlib import Path

import numpy as np
import pytest

from paddle_cnn.training import plots
from paddle_cnn.training.callbacks import hparams_for_visualdl
from paddle_cnn.training.progress import LINE_WIDTH, Job, duration, epoch_line
from paddle_cnn.training.rundir import EpochRow

ROOT = Path(__file__).resolve().parents[1]
ENV = dict(os.environ, PYTHONPATH=str(ROOT), PADDLE_CNN_PROGRESS="")


def _run(args, cwd, env=None, timeout=600):
    return subprocess.run([str(a) for a in args], cwd=cwd, capture_output=True, text=True, timeout=timeout,
                          env=env or ENV)


def _tiny_flags(csvs):
    train, test = csvs
    return ["--train-csv", train, "--test-csv", test, "--val-size", "80", "--log-every", "2"]


# -- first lines, install hint ----------------------------------------------------------------------

ENTRY_POINTS = [
    ["-m", "experiments.dilated_vs_standard"], ["-m", "experiments.classic_zoo", "--list-recipes"],
    ["-m", "experiments.lenet_mnist"], ["-m", "paddle_cnn", "list"], ["-m", "paddle_cnn.report", "x"],
    ["-m", "paddle_cnn.datasets", "--help"], ["paddle-cnn", "list"],
]


@pytest.mark.parametrize("command", ENTRY_POINTS, ids=lambda c: " ".join(c[:2]))
def test_every_entry_point_without_paddle_prints_the_install_hint(command, tmp_path):
    shadow = tmp_path / "shadow"
    shadow.mkdir()
    (shadow / "paddle.py").write_text("raise ModuleNotFoundError(\"No module named 'paddle'\", name='paddle')\n")
    if command[0] == "paddle-cnn":
        exe = Path(sys.executable).with_name("paddle-cnn")
        assert exe.is_file(), "the paddle-cnn console script is not installed (pip install -e .)"
        argv = [exe, *command[1:]]
    else:
        argv = [sys.executable, *command]
    res = _run(argv, tmp_path, env=dict(ENV, PYTHONPATH=f"{shadow}{os.pathsep}{ROOT}"))
    assert res.returncode == 2, (res.stdout, res.stderr)
    lines = res.stderr.strip().splitlines()
    assert len(lines) == 1 and "pip install -e '.[cpu]'" in lines[0] and "Traceback" not in res.stderr, res.stderr
    assert res.stdout == ""


def test_a_training_run_prints_no_warnings_and_plain_progress_off_terminal(synthetic_csvs, tmp_path):
    res = _run([sys.executable, "-m", "paddle_cnn", "train", "--net", "lenet_bn", "--epochs", "2",
                "--out", tmp_path / "run", *_tiny_flags(synthetic_csvs)], tmp_path)
    assert res.returncode == 0, res.stderr[-3000:]
    for noise in ("ccache", "Warning", "warn(", "\r"):
        assert noise not in res.stderr + res.stdout, (noise, res.stderr[-2000:])
    steps = [line for line in res.stdout.splitlines() if " step " in line]
    assert steps and all("ETA epoch" in line and "job" in line for line in steps)
    epochs = [line for line in res.stdout.splitlines() if line.startswith("epoch ")]
    assert len(epochs) == 2 and all(len(line) <= LINE_WIDTH for line in epochs), epochs
    assert "| ETA" in epochs[0] and "ETA" not in epochs[1]  # nothing left after the last epoch
    # Resuming for more epochs says where it continues from.
    res = _run([sys.executable, "-m", "paddle_cnn", "train", "--resume", tmp_path / "run", "--epochs", "3",
                "--log-every", "2"], tmp_path)
    assert res.returncode == 0, res.stderr[-3000:]
    assert "resuming from checkpoint 'latest' (epoch 2); continuing at epoch 3 of 3" in res.stdout
    assert [line[:9] for line in res.stdout.splitlines() if line.startswith("epoch ")] == ["epoch 3/3"]


def _run_in_terminal(argv, cwd, timeout=600) -> str:
    """Run ``argv`` with a pseudo-terminal as stdout and stderr, as a user's shell would."""
    master, slave = pty.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 30, 120, 0, 0))  # rows, columns
    proc = subprocess.Popen([str(a) for a in argv], cwd=cwd, stdout=slave, stderr=slave, stdin=subprocess.DEVNULL,
                            env=dict(ENV, TERM="xterm", COLUMNS="120"))
    os.close(slave)
    chunks, deadline = [], time.time() + timeout
    while time.time() < deadline:
        ready, _, _ = select.select([master], [], [], 1.0)
        if ready:
            try:
                data = os.read(master, 65536)
            except OSError:  # the child closed the terminal
                break
            if not data:
                break
            chunks.append(data)
        elif proc.poll() is not None:
            break
    proc.wait(timeout=60)
    os.close(master)
    out = b"".join(chunks).decode("utf-8", "replace")
    assert proc.returncode == 0, out[-3000:]
    return out


def test_on_a_terminal_a_live_bar_shows_the_job_position_and_eta(synthetic_csvs, tmp_path):
    out = _run_in_terminal([sys.executable, "-m", "experiments.dilated_vs_standard", "--epochs", "2", "--out",
                            tmp_path / "exp", *_tiny_flags(synthetic_csvs)], tmp_path)
    assert "\r" in out  # the bar redraws in place
    for needle in ("net 1/2 standard_cnn epoch 1/2", "net 2/2 dilated_cnn epoch 2/2", "job ETA", "step/s"):
        assert needle in out, (needle, out[-3000:])
    assert re.search(r"\d+/\d+ \[\d\d:\d\d<(\d\d:\d\d|\?), [?\d.]+step/s, job ETA \d+s\]", out), out[-2000:]
    assert "ccache" not in out


def test_an_experiment_whose_folder_holds_runs_is_refused_before_it_prints_anything(synthetic_csvs, tmp_path):
    argv = [sys.executable, "-m", "experiments.dilated_vs_standard", "--epochs", "1", "--out", tmp_path / "exp",
            *_tiny_flags(synthetic_csvs)]
    assert _run(argv, tmp_path).returncode == 0
    res = _run(argv, tmp_path)
    assert res.returncode == 2 and res.stdout == "", res.stdout[-2000:]
    assert len(res.stderr.strip().splitlines()) == 1 and "already holds a run" in res.stderr


def test_job_eta_scales_by_each_nets_cost(monkeypatch):
    clock = [100.0]
    monkeypatch.setattr(time, "perf_counter", lambda: clock[0])
    job = Job()
    job.add("small", 2, cost=1.0)
    job.add("big", 2, cost=3.0)
    job.begin("small", 2)
    assert job.eta() is None and job.position == "net 1/2 "
    clock[0] += 10.0
    job.advance(1.0)  # one epoch of cost 1 took 10 s: 1 epoch x 1 + 2 epochs x 3 = 7 units left
    assert job.eta() == pytest.approx(70.0)
    job.begin("big", 1)  # resumed: one epoch was trained by an earlier process
    assert job.position == "net 2/2 "
    job.advance(0.0)
    assert job.eta() == pytest.approx(10.0 / 1.0 * (1 * 1 + 1 * 3))
    assert duration(59.4) == "59s" and duration(61) == "1m01s" and duration(3725) == "1h02m" and duration(None) == "?"


def test_the_longest_epoch_line_fits_120_columns():
    row = EpochRow(epoch=100, train_loss=123.4567, train_acc=0.9999, val_loss=123.4567, val_acc=0.9999, lr=1.23e-4,
                   seconds=12345.6, images_per_s=123456.0)
    job = Job()
    job.add("a", 200, 1.0)
    job.begin("a", 200)
    job.started -= 1e6
    job.advance(1.0)
    line = epoch_line(row, 200, job)
    assert len(line) <= LINE_WIDTH and "| ETA" in line, line


# -- VisualDL -----------------------------------------------------------------------------------


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _get(url: str, timeout: float = 5.0):
    with urllib.request.urlopen(url, timeout=timeout) as response:  # no Accept-Language header: must still work
        return json.loads(response.read())["data"]


def test_visualdl_serves_the_runs_scalars_images_and_hparams(synthetic_csvs, tmp_path):
    runs = tmp_path / "runs"
    res = _run([sys.executable, "-m", "paddle_cnn", "train", "--net", "lenet_bn", "--epochs", "2",
                "--out", runs / "lenet_bn", *_tiny_flags(synthetic_csvs)], tmp_path)
    assert res.returncode == 0, res.stderr[-3000:]
    steps_per_epoch = -(-(400 - 80) // 64)
    port = _free_port()
    board = subprocess.Popen([sys.executable, "-m", "paddle_cnn", "board", runs, "--port", str(port)], cwd=tmp_path,
                             stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=ENV)
    try:
        api = f"http://127.0.0.1:{port}/app/api"
        deadline, last = time.time() + 120, None
        while time.time() < deadline:
            try:
                run_names = _get(f"{api}/runs")
                break
            except OSError as exc:
                last = exc
                time.sleep(0.5)
        else:
            board.kill()
            pytest.fail(f"VisualDL did not answer: {last}; {board.stdout.read()[-2000:]}")
        assert run_names == ["lenet_bn/vdl"]
        tags = _get(f"{api}/tags")
        for tag, kind in (("train%loss", "scalar"), ("val%acc", "scalar"), ("val%loss", "scalar"), ("lr", "scalar"),
                          ("test%acc", "scalar"), ("test%loss", "scalar"), ("val%confusion", "image"),
                          ("inputs%samples_by_class", "image"), ("hparam", "hyper_parameters")):
            assert tags.get(f"lenet_bn/vdl/{tag}") == kind, (tag, tags)
        run = "run=lenet_bn/vdl"
        train = _get(f"{api}/scalar/list?{run}&tag=train/loss")
        val = _get(f"{api}/scalar/list?{run}&tag=val/acc")
        assert [p[1] for p in train] == list(range(1, 2 * steps_per_epoch + 1))
        assert [p[1] for p in val] == [steps_per_epoch, 2 * steps_per_epoch]  # the x axis of the train curve
        results = json.loads((runs / "lenet_bn" / "results.json").read_text())
        assert val[-1][2] == pytest.approx(results["val"]["acc"], abs=1e-6)
        assert len(_get(f"{api}/image/list?{run}&tag=val/confusion")) == 2
        (hp,) = _get(f"{api}/hparams/list")
        assert hp["hparams"]["net"] == "lenet_bn" and hp["hparams"]["lr"] == 0.001
        assert hp["metrics"]["test/acc"] == pytest.approx(results["test"]["acc"], abs=1e-6)
        assert set(hp["metrics"]) == {"val/acc", "val/loss", "test/acc", "test/loss"}
    finally:
        board.terminate()
        board.wait(timeout=30)


def test_board_refuses_a_folder_without_logs(tmp_path):
    res = _run([sys.executable, "-m", "paddle_cnn", "board", tmp_path], tmp_path)
    assert res.returncode == 2 and "holds no VisualDL logs" in res.stderr


def test_hparams_are_rounded_and_typed_for_visualdl():
    hp = hparams_for_visualdl({"lr": float(np.float32(3e-4)), "amp": False, "size": None, "net": "x", "epochs": 3})
    assert hp == {"lr": 0.0003, "amp": "False", "size": "None", "net": "x", "epochs": 3}


def test_confusion_labels_are_inside_the_picture():
    names = ["a very long class name", "T-shirt/top", "Ankle boot"] + [f"class {i}" for i in range(7)]
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    fig = plots._confusion(np.arange(100).reshape(10, 10), names, "t")
    canvas = FigureCanvasAgg(fig)
    canvas.draw()
    box = fig.bbox
    renderer = canvas.get_renderer()
    ax = fig.axes[0]
    for label in ax.get_xticklabels() + ax.get_yticklabels() + [ax.xaxis.label, ax.yaxis.label]:
        ext = label.get_window_extent(renderer)
        assert ext.x0 >= box.x0 - 1 and ext.y0 >= box.y0 - 1 and ext.x1 <= box.x1 + 1, label.get_text()
