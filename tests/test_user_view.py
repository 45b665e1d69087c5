"""What a user sees: progress and ETA, clean first lines, the install hint, VisualDL through its own
server, and CIFAR-10 from a tarball in the official layout. Commands run as real subprocesses."""
import fcntl
import io
import json
import os
import pickle
import pty
import re
import select
import socket
import struct
import subprocess
import sys
import tarfile
import termios
import time
import urllib.request
from pathlib import Path

import cv2
import numpy as np
import pytest

from paddle_cnn import datasets as D
from paddle_cnn.contract import normalize
from paddle_cnn.datasets import cifar
from paddle_cnn.training import RunConfig, plots
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


# -- CIFAR-10 -----------------------------------------------------------------------------------


def _cifar_split(n, seed):
    """Learnable 32x32 colour images: class c is bright in channel c % 3 at a row band of its own."""
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, 10, n)
    images = rng.integers(0, 60, (n, 32, 32, 3)).astype(np.uint8)
    for i, c in enumerate(labels):
        images[i, 3 * c:3 * c + 4, 4:28, c % 3] = 230
    return images, labels


@pytest.fixture
def cifar_root(tmp_path):
    root = tmp_path / "data"
    cifar.write_archive(root / "cifar-10" / cifar.ARCHIVE, {"train": _cifar_split(500, 1), "test": _cifar_split(120, 2)})
    return root


def test_cifar10_reads_the_official_layout_pixel_for_pixel(cifar_root):
    images, labels = cifar.load_cifar10("train", cifar_root, verify=False)
    want_images, want_labels = _cifar_split(500, 1)
    assert images.shape == (500, 32, 32, 3) and images.dtype == np.uint8
    np.testing.assert_array_equal(images, want_images)
    np.testing.assert_array_equal(labels, want_labels)
    test = D.open_dataset("cifar10", "test", cifar_root, verify_md5=False, normalize="cifar10")
    assert len(test) == 120 and test[0][0].shape == (3, 32, 32)
    first = _cifar_split(120, 2)[0][0].transpose(2, 0, 1) / 255.0
    expected = (first - np.array(cifar.MEAN)[:, None, None]) / np.array(cifar.STD)[:, None, None]
    np.testing.assert_allclose(test.batch(np.array([0]))[0], expected, rtol=1e-5, atol=1e-5)


def test_normalisation_is_per_channel():
    img = np.zeros((1, 2, 2, 3), np.uint8)
    img[..., 1] = 255
    out = normalize(img, (0.5, 0.25, 0.0), (0.5, 0.25, 1.0), channels=3, colour=True)
    assert out.shape == (1, 3, 2, 2)
    np.testing.assert_allclose(out[0, :, 0, 0], [-1.0, 3.0, 0.0])


class _Boom:
    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


@pytest.mark.parametrize("payload", ["os.system", "object array"])
def test_cifar10_reader_refuses_anything_but_arrays_and_runs_nothing(payload, tmp_path):
    marker = tmp_path / "ran"
    if payload == "os.system":
        batch = {b"data": _Boom(marker), b"labels": [0]}
    else:
        batch = {b"data": np.array([_Boom(marker)], dtype=object), b"labels": [0]}
    raw = pickle.dumps(batch, protocol=2)
    path = tmp_path / "data" / "cifar-10" / cifar.ARCHIVE
    path.parent.mkdir(parents=True)
    with tarfile.open(path, "w:gz") as tar:
        for name in cifar.MEMBERS["train"]:
            info = tarfile.TarInfo(f"cifar-10-batches-py/{name}")
            info.size = len(raw)
            tar.addfile(info, io.BytesIO(raw))
    with pytest.raises(D.DataError, match=r"data_batch_1: refused to load: the pickle asks for (posix|os)\.system"):
        cifar.load_cifar10("train", tmp_path / "data", verify=False)
    assert not marker.exists()


def test_cifar10_errors_name_the_file_and_what_to_do(cifar_root, tmp_path):
    with pytest.raises(D.DataError, match=r"cifar-10-python.tar.gz: md5 is .* expected c58f3.*--no-verify-md5"):
        cifar.load_cifar10("train", cifar_root)
    with pytest.raises(D.DataFileNotFoundError, match=r"(?s)switched off.*c58f30108f718f92721af3b95e74349a"):
        cifar.load_cifar10("train", tmp_path / "empty", download_missing=False)
    broken = tmp_path / "broken" / "cifar-10" / cifar.ARCHIVE
    broken.parent.mkdir(parents=True)
    broken.write_bytes(b"not a tarball")
    with pytest.raises(D.DataError, match="not a readable .tar.gz"):
        cifar.load_cifar10("train", tmp_path / "broken", verify=False)
    with pytest.raises(Exception, match="in_channels=1: cifar10 images have 3 channels"):
        RunConfig(dataset="cifar10", in_channels=1).validate()


def test_train_on_cifar10_then_predict_colour_photos(cifar_root, tmp_path):
    res = _run([sys.executable, "-m", "paddle_cnn", "train", "--dataset", "cifar10", "--data-dir", cifar_root,
                "--no-verify-md5", "--net", "lenet_bn", "--epochs", "3", "--lr", "3e-3", "--normalize", "cifar10",
                "--augment", "flip-crop", "--val-size", "100", "--out", tmp_path / "run"], tmp_path)
    assert res.returncode == 0, res.stderr[-3000:]
    results = json.loads((tmp_path / "run" / "results.json").read_text())
    assert results["input_shape"] == [3, 32, 32] and results["test"]["n"] == 120
    assert results["test"]["acc"] > 0.5, results["test"]  # the synthetic classes are learnable
    state = json.loads((tmp_path / "run" / "checkpoints" / "best" / "state.json").read_text())
    assert state["input"]["mean"] == list(cifar.MEAN) and state["input"]["channels"] == 3
    # A colour photo with alpha and an upright JPEG, at sizes other than 32x32.
    images, labels = _cifar_split(120, 2)
    big = cv2.resize(images[0], (96, 64), interpolation=cv2.INTER_NEAREST)  # wider than tall: centre-cropped
    cv2.imwrite(str(tmp_path / "photo.jpg"), cv2.cvtColor(big, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, 98])
    rgba = np.dstack([cv2.cvtColor(images[1], cv2.COLOR_RGB2BGR), np.full((32, 32), 255, np.uint8)])
    cv2.imwrite(str(tmp_path / "alpha.png"), rgba)
    res = _run([sys.executable, "-m", "paddle_cnn", "predict", tmp_path / "run", tmp_path / "photo.jpg",
                tmp_path / "alpha.png", "--save-grid", tmp_path / "grid.png"], tmp_path)
    assert res.returncode == 0, res.stderr[-3000:]
    names = cifar.CLASS_NAMES
    lines = res.stdout.splitlines()
    assert lines[1].startswith(f"{tmp_path / 'alpha.png'}: {names[labels[1]]} ")  # opaque PNG = the image itself
    assert lines[0].split(": ")[1].split()[0] in names
    grid = cv2.imread(str(tmp_path / "grid.png"))
    assert grid is not None and (np.abs(grid[..., 0].astype(int) - grid[..., 2]) > 60).any()  # drawn in colour


def test_the_classic_zoo_has_cifar10_recipes(tmp_path):
    res = _run([sys.executable, "-m", "experiments.classic_zoo", "--dataset", "cifar10", "--list-recipes"], tmp_path)
    assert res.returncode == 0, res.stderr[-2000:]
    lines = res.stdout.strip().splitlines()
    assert [line.split(":")[0] for line in lines] == ["nin_small", "resnet18_small"]
    assert all("augment flip-crop, normalize cifar10" in line for line in lines)
