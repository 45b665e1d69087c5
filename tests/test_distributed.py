"""Data-parallel training with Paddle's own launcher, 2 CPU processes (gloo), against one process.

The global batch is split between the processes and their gradients averaged, so the two-process
run must reproduce the single-process numbers (up to float summation order), and only rank 0
may write the run folder.
"""
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from safetensors.numpy import load_file

from helpers import learnable_scene
from paddle_cnn.datasets import hyperspectral as H
from paddle_cnn.training import RunConfig, train_and_evaluate

ROOT = Path(__file__).resolve().parents[1]


def _paddle_cnn_script() -> str:
    script = Path(sys.executable).with_name("paddle-cnn")
    found = str(script) if script.exists() else shutil.which("paddle-cnn")
    assert found, "the paddle-cnn console script is not installed (pip install -e .)"
    return found


def _launch(tmp_path, name, program, *args, timeout=600):
    logs = tmp_path / f"{name}_logs"
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    proc = subprocess.run([sys.executable, "-m", "paddle.distributed.launch", "--nproc_per_node", "2",
                           "--log_dir", str(logs), program, *map(str, args)],
                          cwd=tmp_path, env=env, capture_output=True, text=True, timeout=timeout)
    worker = [(logs / f"workerlog.{r}").read_text(errors="replace") if (logs / f"workerlog.{r}").exists() else ""
              for r in (0, 1)]
    assert proc.returncode == 0, f"launch failed:\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}\n{worker[0][-3000:]}"
    return worker


def _metrics(run_dir):
    lines = (run_dir / "metrics.csv").read_text().splitlines()
    header = lines[0].split(",")
    # Empty cells (ema_val_acc without a moving average) are None.
    return [{k: float(v) if v else None for k, v in zip(header, line.split(","))} for line in lines[1:]]


def _train_args(csvs, out, epochs):
    train, test = csvs
    return ["train", "--net", "standard_cnn", "--train-csv", train, "--test-csv", test, "--val-size", 80,
            "--epochs", epochs, "--batch-size", 32, "--log-every", 1000, "--augment", "flip-crop", "--out", out]


def test_two_processes_match_one_and_resume(tmp_path, synthetic_csvs):
    train, test = synthetic_csvs
    single = tmp_path / "single"
    config = RunConfig(net="standard_cnn", train_csv=str(train), test_csv=str(test), val_size=80, epochs=2,
                       batch_size=32, log_every=1000, augment="flip-crop")
    _, want = train_and_evaluate(config, single, verbose=False)

    # Two processes: 1 epoch (paddle-cnn's --processes relaunches itself under the launcher), then
    # resumed by Paddle's launcher called directly, to 2 epochs.
    two = tmp_path / "two"
    first = subprocess.run([_paddle_cnn_script(), *map(str, _train_args(synthetic_csvs, two, 1)), "--processes", "2"],
                           cwd=tmp_path, capture_output=True, text=True, timeout=600)
    assert first.returncode == 0, first.stdout[-3000:] + first.stderr[-3000:]
    assert "launching 2 processes" in first.stdout and "epoch 1/1" in first.stdout
    worker = _launch(tmp_path, "resume", _paddle_cnn_script(), "train", "--resume", two, "--epochs", 2,
                     "--train-csv", train, "--test-csv", test)
    assert "epoch 2/2" in worker[0] and "epoch 2/2" not in worker[1]  # rank 1 trains silently

    got = json.loads((two / "results.json").read_text())
    assert got["epochs"] == 2 and got["processes"] == 2 and want["processes"] == 1
    assert got["test"]["acc"] == want["test"]["acc"] and got["test"]["n"] == want["test"]["n"] == 120
    assert got["val"]["n"] == 80  # sharded evaluation gathered once: no duplicated rows
    assert got["test"]["loss"] == pytest.approx(want["test"]["loss"], rel=1e-4)
    assert len(_metrics(two)) == len(_metrics(single)) == 2
    for a, b in zip(_metrics(two), _metrics(single)):
        for key in ("train_loss", "val_loss", "val_acc"):
            assert a[key] == pytest.approx(b[key], rel=1e-4, abs=1e-6), (key, a, b)
    w1 = load_file(str(single / "checkpoints" / "latest" / "model.safetensors"))
    w2 = load_file(str(two / "checkpoints" / "latest" / "model.safetensors"))
    assert w1.keys() == w2.keys()
    for k in w1:
        np.testing.assert_allclose(w2[k], w1[k], atol=1e-5, rtol=1e-4, err_msg=k)

    # One run folder, written once: two commands recorded, one VisualDL file, checkpoints 1 and 2.
    assert len(got["commands"]) == 2 and "--resume" in got["commands"][1]
    assert sorted(p.name for p in (two / "checkpoints").iterdir()) == ["best", "epoch_1", "epoch_2", "latest"]
    assert [p.name for p in (two / "vdl").iterdir() if p.is_file()] == ["vdlrecords.run.log"]
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith("two")] == ["two"]
    assert (tmp_path / "runs" / "launch_logs" / "workerlog.1").is_file()


def test_an_experiment_runs_data_parallel(tmp_path, synthetic_csvs):
    train, test = synthetic_csvs
    out = tmp_path / "zoo"
    _launch(tmp_path, "zoo", str(ROOT / "experiments" / "classic_zoo.py"), "--nets", "lenet_bn", "--train-csv", train,
            "--test-csv", test, "--val-size", 80, "--epochs", 1, "--log-every", 1000, "--out", out)
    results = json.loads((out / "zoo.json").read_text())
    assert [r["net"] for r in results] == ["lenet_bn"] and results[0]["test"]["n"] == 120
    assert (out / "curves.png").stat().st_size > 0


def test_each_process_takes_its_equal_share_of_every_global_batch():
    from paddle_cnn.datasets import ArrayDataset
    from paddle_cnn.errors import ConfigError

    images = np.arange(102 * 4, dtype=np.uint8).reshape(102, 2, 2)
    ds = ArrayDataset(images, np.arange(102) % 10)
    one = ds.loader(30, shuffle=True, seed=5)
    ranks = [ds.loader(30, shuffle=True, seed=5, rank=r, world_size=3) for r in range(3)]
    for loader in [one] + ranks:
        loader.set_epoch(2)
    assert len(one) == 4 and all(len(r) == 4 for r in ranks)  # last global batch: 12 images, 4 per process
    for whole, *parts in zip(one, *ranks):
        assert len({len(p[1]) for p in parts}) == 1  # equal shares: averaged gradients equal one process's
        np.testing.assert_array_equal(np.concatenate([p[0] for p in parts]), whole[0])
    # Uneven shares (a batch, or the last batch, that does not divide by the processes) are refused.
    with pytest.raises(ConfigError, match="give a batch of 32, which does not split evenly over 3"):
        ds.loader(32, rank=0, world_size=3)
    with pytest.raises(ConfigError, match="give a batch of 2, which does not split evenly over 4"):
        ArrayDataset(images[:62], np.zeros(62, np.int64)).loader(20, rank=0, world_size=4)


def _experiment(tmp_path, module, *args):
    res = subprocess.run([sys.executable, "-m", module, *map(str, args), "--processes", "2"], cwd=tmp_path,
                         capture_output=True, text=True, timeout=900, env=dict(os.environ, PYTHONPATH=str(ROOT)))
    logs = tmp_path / "runs" / "launch_logs"
    worker1 = (logs / "workerlog.1").read_text(errors="replace") if (logs / "workerlog.1").exists() else ""
    assert res.returncode == 0, res.stdout[-2000:] + res.stderr[-2000:] + worker1[-3000:]
    assert "launching 2 processes" in res.stdout
    return res


def test_dilated_vs_standard_runs_on_two_processes(tmp_path, synthetic_csvs):
    train, test = synthetic_csvs
    out = tmp_path / "exp"
    _experiment(tmp_path, "experiments.dilated_vs_standard", "--train-csv", train, "--test-csv", test,
                "--val-size", 80, "--epochs", 1, "--batch-size", 32, "--log-every", 1000, "--out", out)
    results = json.loads((out / "comparison.json").read_text())
    assert {r["net"] for r in results} == {"standard_cnn", "dilated_cnn"}
    assert all(r["processes"] == 2 and r["test"]["n"] == 120 and r["val"]["n"] == 80 for r in results)
    assert (out / "predictions.png").stat().st_size > 0


def test_lenet_mnist_runs_on_two_processes(tmp_path, synthetic_idx_root):
    out = tmp_path / "lenet"
    _experiment(tmp_path, "experiments.lenet_mnist", "--data-dir", synthetic_idx_root, "--no-verify-md5",
                "--epochs", 1, "--resume-epochs", 1, "--val-size", 60, "--out", out, "--log-every", 1000)
    summary = json.loads((out / "lenet_mnist.json").read_text())
    assert summary["resumed"]["epochs"] == 2 and summary["resumed"]["processes"] == 2
    assert summary["reloaded_test_acc"] == summary["first"]["test"]["acc"]


def test_hybridsn_runs_on_two_processes(tmp_path):
    """The scene pipeline data-parallel, as a user runs it: each process cuts its half of every global
    batch of windows (the last one too), and the results and the map come from the whole test set."""
    cube, gt = learnable_scene(classes=9)
    root = tmp_path / "data"
    H.write_scene(root, "pavia-university", cube, gt)
    train = H.train_count(int((gt > 0).sum()), 0.3)
    val = 8 + (train - 8) % 2  # the training pixels' last batch then splits evenly over two
    out = tmp_path / "scene"
    _experiment(tmp_path, "experiments.hybridsn", "--dataset", "pavia-university", "--data-dir", root,
                "--no-verify-md5", "--no-download", "--epochs", 1, "--input-size", 11, 11, "--batch-size", 32,
                "--val-fraction", 0, "--val-size", val, "--out", out, "--log-every", 1000)
    results = json.loads((out / "results.json").read_text())
    assert results["processes"] == 2 and results["val"]["n"] == val
    assert results["test"]["n"] == int((gt > 0).sum()) - train and -1 <= results["test"]["kappa"] <= 1
    assert sum(results["pixels_per_class"]["train"]) == train - val
    with np.load(out / "classification_map.npz") as saved:
        assert saved["predicted"].shape == gt.shape


def test_batch_norm_nets_reproduce_one_process_and_every_figure_checks_out(tmp_path, synthetic_csvs):
    """lenet_bn (batch norm after convolutions and linear layers): the batch statistics are those of
    the global batch, so two processes give one process's numbers; images/s x seconds = images
    trained on; and the reported accuracy is that of the saved model (paddle-cnn evaluate agrees).

    The bound: a bias right before a batch norm is cancelled by the norm, so its gradient is float
    rounding noise, which Adam scales to full-size steps; that bias and the running mean that absorbs
    it differ by up to ~0.04 between the runs, the evaluation losses by up to ~1.3e-3 relative (seen
    on an Intel Xeon with AMX; ~2e-4 on an AMD EPYC), and an image on a decision boundary can change
    sides (seen: 1 of 120 test images on the EPYC).
    Every other weight and statistic agrees to float rounding, but for the odd element where Adam
    turned a rounding-sized gradient difference into a step: one process normalises with oneDNN's
    batch norm on the NHWC maps of a Sequential chain, two with the synchronised formula, and on an
    Intel Xeon one weight in 10,000-30,000 moved by 1.6e-5 to 2.7e-4 (which one changed from run to
    run while other work loaded the machine). Without synchronised statistics the running variances
    alone differ by ~1e-2, everywhere."""
    train, test = synthetic_csvs
    config = RunConfig(net="lenet_bn", train_csv=str(train), test_csv=str(test), val_size=80, epochs=2,
                       batch_size=32, log_every=1000, lr=3e-3)
    _, want = train_and_evaluate(config, tmp_path / "single", verbose=False)
    two = tmp_path / "two"
    args = [a if a != "standard_cnn" else "lenet_bn" for a in map(str, _train_args(synthetic_csvs, two, 2))]
    args[args.index("--augment") + 1] = "none"
    res = subprocess.run([_paddle_cnn_script(), *args, "--lr", "3e-3", "--processes", "2"], cwd=tmp_path,
                         capture_output=True, text=True, timeout=600)
    assert res.returncode == 0, res.stdout[-3000:] + res.stderr[-3000:]
    got = json.loads((two / "results.json").read_text())
    assert got["processes"] == 2
    for a, b in zip(_metrics(two), _metrics(tmp_path / "single")):
        for key in ("train_loss", "train_acc", "val_acc"):
            assert a[key] == pytest.approx(b[key], rel=1e-5, abs=1e-6), (key, a, b)
        assert a["val_loss"] == pytest.approx(b["val_loss"], rel=3e-3), (a, b)
    for split in ("val", "test"):  # the noisy biases can flip an image that sits on a decision boundary
        assert abs(got[split]["acc"] - want[split]["acc"]) * got[split]["n"] <= 1 + 1e-9, (split, got, want)
        assert got[split]["loss"] == pytest.approx(want[split]["loss"], rel=3e-3)
    w1 = load_file(str(tmp_path / "single" / "checkpoints" / "latest" / "model.safetensors"))
    w2 = load_file(str(two / "checkpoints" / "latest" / "model.safetensors"))
    from paddle_cnn import nets
    from paddle_cnn.nets import _layers

    layers = list(nets.create("lenet_bn").children())
    noisy = set()
    for i, layer in enumerate(layers[:-1]):
        if isinstance(layers[i + 1], (_layers.BatchNorm1D, _layers.BatchNorm2D)):
            noisy |= {f"{i}.bias", f"{i + 1}._mean"}
    assert len(noisy) == 8
    for k in w1:  # the running variances included: without synchronised statistics they differ by ~1e-2
        if k in noisy:
            np.testing.assert_allclose(w2[k], w1[k], atol=0.1, err_msg=k)
        else:
            apart = np.abs(w2[k] - w1[k]) > 1e-5 + 1e-4 * np.abs(w1[k])
            assert apart.sum() <= max(1, apart.size // 1000) and np.abs(w2[k] - w1[k]).max() < 1e-2, \
                (k, int(apart.sum()), apart.size)
    # Every figure checks out: 320 training images an epoch, at the rate and time reported.
    for row in _metrics(two):
        assert row["images_per_s"] * row["seconds"] == pytest.approx(320, rel=1e-3), row
    # metrics.csv keeps 6 significant digits (%.6g): a mean of rounded rows is up to 5e-6 off
    assert got["train_images_per_s"] == pytest.approx(np.mean([r["images_per_s"] for r in _metrics(two)]), rel=1e-5)
    evaluated = subprocess.run([_paddle_cnn_script(), "evaluate", str(two), "--which", "latest"], cwd=tmp_path,
                               capture_output=True, text=True, timeout=300)
    assert evaluated.returncode == 0, evaluated.stderr[-2000:]
    for split in ("val", "test"):
        assert f"{split}: loss {got[split]['loss']:.4f}  acc {got[split]['acc']:.4f}" in evaluated.stdout


def test_every_batch_norm_of_every_net_is_synchronised_in_data_parallel_jobs():
    """A net that used paddle.nn's batch norm directly would normalise each process's share alone."""
    from paddle_cnn import nets
    from paddle_cnn.nets import _layers

    for name in nets.list_nets():
        info = nets.get_info(name)
        net = nets.create(name, in_channels=info.input_size[0])
        for sub_name, layer in net.named_sublayers():
            if isinstance(layer, paddle_nn_norms()):
                assert isinstance(layer, (_layers.BatchNorm1D, _layers.BatchNorm2D)), (name, sub_name, layer)


def paddle_nn_norms():
    from paddle import nn

    return (nn.BatchNorm1D, nn.BatchNorm2D, nn.BatchNorm3D, nn.BatchNorm)


def test_two_nodes_through_paddles_launcher_on_loopback_match_one_process(tmp_path, synthetic_csvs):
    """The two-machine recipe of README, both "machines" on this one: a launcher per node with
    --nnodes 2 --master 127.0.0.1:PORT --rank 0|1, one process each."""
    import socket

    train, test = synthetic_csvs
    config = RunConfig(net="standard_cnn", train_csv=str(train), test_csv=str(test), val_size=80, epochs=1,
                       batch_size=32, log_every=1000)
    _, want = train_and_evaluate(config, tmp_path / "single", verbose=False)
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    args = ["train", "--net", "standard_cnn", "--train-csv", str(train), "--test-csv", str(test), "--val-size", "80",
            "--epochs", "1", "--batch-size", "32", "--log-every", "1000", "--out", str(tmp_path / "two")]
    nodes = [subprocess.Popen([sys.executable, "-m", "paddle.distributed.launch", "--nnodes", "2", "--master",
                               f"127.0.0.1:{port}", "--rank", str(rank), "--nproc_per_node", "1", "--max_restart", "0",
                               "--log_dir", str(tmp_path / f"node{rank}"), _paddle_cnn_script(), *args],
                              cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
             for rank in (0, 1)]
    try:
        outs = [node.communicate(timeout=600)[0] for node in nodes]
    finally:
        for node in nodes:
            if node.poll() is None:
                node.kill()
    for rank, node in enumerate(nodes):
        log = tmp_path / f"node{rank}" / "workerlog.0"
        assert node.returncode == 0, outs[rank][-2000:] + (log.read_text()[-3000:] if log.exists() else "")
    got = json.loads((tmp_path / "two" / "results.json").read_text())
    assert got["processes"] == 2 and got["test"]["n"] == 120 and got["val"]["n"] == 80
    assert got["test"]["acc"] == want["test"]["acc"]
    assert got["test"]["loss"] == pytest.approx(want["test"]["loss"], rel=1e-4)
    for a, b in zip(_metrics(tmp_path / "two"), _metrics(tmp_path / "single")):
        for key in ("train_loss", "val_loss", "val_acc"):
            assert a[key] == pytest.approx(b[key], rel=1e-4, abs=1e-6), (key, a, b)
    w1 = load_file(str(tmp_path / "single" / "checkpoints" / "latest" / "model.safetensors"))
    w2 = load_file(str(tmp_path / "two" / "checkpoints" / "latest" / "model.safetensors"))
    for k in w1:
        np.testing.assert_allclose(w2[k], w1[k], atol=1e-5, rtol=1e-4, err_msg=k)
