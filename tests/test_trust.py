"""A run you can trust, every input handled or refused: each test here failed on the engine before
RunDir, the input contract and checksummed checkpoints."""
import json
import os
import stat
import subprocess
import sys
from pathlib import Path

import numpy as np
import paddle
import pytest

from paddle_cnn import nets
from paddle_cnn.contract import InputContract
from paddle_cnn.errors import UserError
from paddle_cnn.entry import run_command
from paddle_cnn.nets import InputTooSmallError
from paddle_cnn.training import CheckpointError, ConfigError, RunConfig, RunDir, RunDirError, Trainer
from paddle_cnn.training import train_and_evaluate

ROOT = Path(__file__).resolve().parents[1]
FASHION_28 = InputContract(1, 28, 28, "fashion-mnist", "unit", 0.0, 1.0, [str(i) for i in range(10)])


def _cli(*args, cwd=None, timeout=600):
    return subprocess.run([sys.executable, "-m", "paddle_cnn", *map(str, args)], capture_output=True, text=True,
                          timeout=timeout, cwd=cwd)


def _config(csvs, **kw):
    train, test = csvs
    base = dict(net="standard_cnn", train_csv=str(train), test_csv=str(test), val_size=80, epochs=1,
                batch_size=32, log_every=1000)
    base.update(kw)
    return RunConfig(**base)


def _one_line_error(res, *fragments):
    assert res.returncode == 2, (res.stdout[-2000:], res.stderr[-2000:])
    assert "Traceback" not in res.stderr and len(res.stderr.strip().splitlines()) == 1, res.stderr
    for f in fragments:
        assert f in res.stderr, (f, res.stderr)


@pytest.fixture(scope="module")
def finished_run(csv_pair, tmp_path_factory):
    run = tmp_path_factory.mktemp("finished") / "run"
    train_and_evaluate(_config(csv_pair, epochs=2), run, verbose=False)
    return run


# ------------------------------------------------------------------ one owner per run folder

def test_a_second_process_is_refused_while_a_run_folder_is_in_use(csv_pair, tmp_path):
    run = RunDir(tmp_path / "standard_cnn")  # the zoo's folder for that net, too
    run.claim()  # this test process trains there now
    try:
        res = _cli("train", "--train-csv", csv_pair[0], "--test-csv", csv_pair[1], "--val-size", 80, "--epochs", 1,
                   "--out", run.path, "--overwrite")
        _one_line_error(res, "is in use by another process", f"pid {os.getpid()}")
        zoo = subprocess.run([sys.executable, "-m", "experiments.classic_zoo", "--nets", "standard_cnn", "--out",
                              tmp_path, "--train-csv", csv_pair[0], "--test-csv", csv_pair[1], "--val-size", "80",
                              "--epochs", "1", "--overwrite"], capture_output=True, text=True, timeout=600, cwd=ROOT)
        assert zoo.returncode == 2 and "is in use by another process" in zoo.stderr, zoo.stderr[-2000:]
    finally:
        run.release()
    assert sorted(p.name for p in run.path.iterdir()) == [".lock"]  # the refused runs wrote nothing
    # Released: the same command now trains there.
    res = _cli("train", "--train-csv", csv_pair[0], "--test-csv", csv_pair[1], "--val-size", 80, "--epochs", 1,
               "--out", run.path, "--log-every", 1000)
    assert res.returncode == 0, res.stderr[-2000:]


def test_a_lock_left_by_a_killed_process_is_taken_over_on_resume(finished_run, csv_pair, tmp_path, capsys):
    (finished_run / ".lock").write_text("pid 999999 on elsewhere since 2026-01-01 00:00:00")
    trainer = Trainer(_config(csv_pair, epochs=2), finished_run, resume=True)
    assert "taking over from a process that did not finish (pid 999999" in capsys.readouterr().out
    trainer.run.release()
    assert (finished_run / ".lock").read_text() == ""


def test_other_ranks_of_a_job_follow_rank_zero_without_checking_its_lock(finished_run, csv_pair):
    """Rank 0 holds the lock and has written files by the time rank 1 looks: rank 1 must not refuse."""
    rank0 = RunDir(finished_run)
    rank0.lock()
    try:
        with pytest.raises(RunDirError, match="in use by another process"):
            RunDir(finished_run).check_resume(_config(csv_pair, epochs=2))  # another job's writer
        rank1 = RunDir(finished_run, writer=False)
        rank1.check_new(overwrite=False)  # the files and the lock are its own job's
        assert rank1.check_resume(_config(csv_pair, epochs=2)).epoch == 2
    finally:
        rank0.release()


def test_in_process_a_second_trainer_on_the_same_folder_is_refused(csv_pair, tmp_path):
    first = Trainer(_config(csv_pair), tmp_path / "run", verbose=False)
    with pytest.raises(RunDirError, match="in use by another process"):
        Trainer(_config(csv_pair), tmp_path / "run", overwrite=True, verbose=False)
    first.fit()  # releases the folder when it returns
    Trainer(_config(csv_pair, epochs=2), tmp_path / "run", resume=True, verbose=False)


def test_overwrite_checks_everything_before_moving_the_old_run_aside(finished_run, csv_pair, tmp_path):
    before = sorted(p.name for p in finished_run.iterdir())
    with pytest.raises(InputTooSmallError, match="alexnet cannot take a 28x28 input"):
        Trainer(_config(csv_pair, net="alexnet"), finished_run, overwrite=True, verbose=False)
    with pytest.raises(UserError, match="missing.csv"):
        Trainer(_config(csv_pair, train_csv=str(tmp_path / "missing.csv")), finished_run, overwrite=True)
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
                         timeout=600, env=dict(os.environ, PYTHONPATH=str(ROOT)))
    assert res.returncode == 0, res.stderr[-2000:]
    config = json.loads((work / "zoo" / "lenet_bn" / "config.json").read_text())
    assert config["train_csv"] == str(work / "data" / "train.csv")
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    table = subprocess.run([sys.executable, "-m", "experiments.classic_zoo", "--table-only", "--out", work / "zoo"],
                           cwd=elsewhere, capture_output=True, text=True, timeout=600,
                           env=dict(os.environ, PYTHONPATH=str(ROOT)))
    assert table.returncode == 0 and "| lenet_bn |" in table.stdout, table.stderr[-2000:]
    ev = _cli("evaluate", work / "zoo" / "lenet_bn", "--split", "test", cwd=elsewhere)
    assert ev.returncode == 0 and "(n=120," in ev.stdout, ev.stderr[-2000:]
    # The data moved: evaluate takes the new CSV paths.
    moved = tmp_path / "moved.csv"
    (work / "data" / "test.csv").rename(moved)
    ev = _cli("evaluate", work / "zoo" / "lenet_bn", "--split", "test", "--test-csv", moved, cwd=elsewhere)
    assert ev.returncode == 0 and "(n=120," in ev.stdout, ev.stderr[-2000:]


def test_run_files_get_the_users_permissions(finished_run):
    mask = os.umask(0)
    os.umask(mask)
    for name in ("config.json", "metrics.csv", "results.json", "curves.png", "predictions/test.npz"):
        assert stat.S_IMODE((finished_run / name).stat().st_mode) == 0o666 & ~mask, name


def test_nan_before_the_first_checkpoint_says_there_is_none(csv_pair, tmp_path):
    trainer = Trainer(_config(csv_pair, epochs=2), tmp_path / "run", verbose=False)
    trainer.net[-1].bias.set_value(paddle.full_like(trainer.net[-1].bias, float("nan")))
    with pytest.raises(FloatingPointError, match="no checkpoint was written yet"):
        trainer.fit()


# ------------------------------------------------------------------ networks and their input contract

@pytest.mark.parametrize("name", nets.list_nets())
def test_every_net_refuses_an_input_below_its_derived_minimum(name):
    info = nets.get_info(name)
    small = info.min_input_size()
    assert small is not None and 1 <= small[-1] <= info.input_size[-1]
    nets.create(name, input_size=info.input_size[1:-2] + small[-2:])  # the minimum itself builds
    if small[-1] > 1:
        below = info.input_size[1:-2] + (small[-2] - 1, small[-1] - 1)
        with pytest.raises(InputTooSmallError, match=rf"{name} cannot take .* its smallest input is"):
            nets.create(name, input_size=below)


def test_train_a_full_size_net_on_28x28_exits_2_naming_the_minimum(csv_pair, tmp_path):
    res = _cli("train", "--net", "alexnet", "--train-csv", csv_pair[0], "--test-csv", csv_pair[1], "--val-size", 80,
               "--out", tmp_path / "a")
    _one_line_error(res, "alexnet cannot take a 28x28 input", "smallest input is", "--input-size", "alexnet_small")
    assert not (tmp_path / "a").exists()
    _one_line_error(_cli("summary", "alexnet", "--input-size", 1, 8, 8), "alexnet cannot take a 8x8 input")
    _one_line_error(_cli("train", "--net", "nin", "--out", tmp_path / "n", "--train-csv", csv_pair[0],
                         "--test-csv", csv_pair[1], "--val-size", 80), "nin cannot take a 28x28 input")


def test_building_a_net_leaves_batch_norm_statistics_alone():
    paddle.seed(1)
    net = nets.create("inception_v2_small")  # aux heads sized by a probe of the stem at build time
    norms = [m for m in net.sublayers() if isinstance(m, paddle.nn.BatchNorm2D)]
    assert norms and net.training and all(m.training for m in norms)
    for m in norms:
        assert float(m._mean.abs().max()) == 0.0 and float((m._variance - 1).abs().max()) == 0.0


@pytest.mark.parametrize("mode", ["zeros", "reflect", "replicate", "circular"])
def test_conv2d_honours_padding_mode(mode):
    from paddle_cnn.nets._layers import Conv2D

    paddle.seed(3)
    ours = Conv2D(2, 3, 3, padding=1, padding_mode=mode)
    ref = paddle.nn.Conv2D(2, 3, 3, padding=1, padding_mode=mode)
    ref.set_state_dict(ours.state_dict())
    x = paddle.randn([2, 2, 7, 5])
    np.testing.assert_allclose(ours(x).numpy(), ref(x).numpy(), rtol=1e-5, atol=1e-6)


@pytest.fixture(scope="module")
def odd_runs(csv_pair, tmp_path_factory):
    """A run at 32x32 and a run on 3 channels, trained by the CLI as a user would."""
    root = tmp_path_factory.mktemp("odd")
    common = ["--train-csv", csv_pair[0], "--test-csv", csv_pair[1], "--val-size", 80, "--epochs", 1,
              "--batch-size", 32, "--log-every", 1000]
    runs = {}
    for name, extra in (("size32", ["--net", "lenet", "--input-size", 32, 32]),
                        ("rgb", ["--net", "resnet18_small", "--in-channels", 3])):
        res = _cli("train", *common, *extra, "--out", root / name)
        assert res.returncode == 0, res.stderr[-3000:]
        runs[name] = root / name
    return runs


@pytest.mark.parametrize("which", ["size32", "rgb"])
def test_predict_and_export_read_the_runs_input_contract(odd_runs, which, tmp_path):
    import cv2

    run = odd_runs[which]
    image = tmp_path / "shirt.png"
    img = np.zeros((60, 40), np.uint8)
    img[10:50, 8:32] = 200
    cv2.imwrite(str(image), img)
    res = _cli("predict", run, image, "--save-grid", tmp_path / "grid.png")
    assert res.returncode == 0, res.stderr[-3000:]
    export = _cli("export", run, "--out", tmp_path / "export")
    assert export.returncode == 0, export.stderr[-3000:]
    meta = json.loads((tmp_path / "export" / "paddle_cnn_export.json").read_text())
    shape = {"size32": [1, 32, 32], "rgb": [3, 28, 28]}[which]
    assert [meta["input"][k] for k in ("channels", "height", "width")] == shape
    assert meta["source"]["checkpoint"] == "best" and meta["source"]["best_val_acc"] is not None
    from_export = _cli("predict", tmp_path / "export", image)
    assert from_export.returncode == 0 and from_export.stdout == _cli("predict", run, image).stdout


def test_unexpected_exceptions_keep_their_traceback():
    def buggy(argv):
        raise ValueError("a bug, not a user error")

    with pytest.raises(ValueError, match="a bug"):
        run_command(buggy, [])
    assert run_command(lambda argv: (_ for _ in ()).throw(ConfigError("bad flag")), []) == 2


# ------------------------------------------------------------------ checkpoints and run files

def _copy_run(src, dst):
    import shutil

    shutil.copytree(src, dst, ignore=shutil.ignore_patterns(".lock"))
    return dst


def test_flipped_bytes_in_tensor_data_are_refused_and_resume_continues_from_an_intact_epoch(finished_run, tmp_path):
    run = _copy_run(finished_run, tmp_path / "run")
    model = run / "checkpoints" / "latest" / "model.safetensors"
    raw = bytearray(model.read_bytes())
    raw[-10] ^= 0xFF  # inside the tensor data, past the header: safetensors itself loads this happily
    model.write_bytes(bytes(raw))
    epoch_2 = (run / "checkpoints" / "epoch_2" / "model.safetensors").read_bytes()
    _one_line_error(_cli("evaluate", run, "--which", "latest"), "sha256 differs")
    # A resume is not refused while an intact epoch survives: it continues from there and says why.
    res = _cli("train", "--resume", run, "--epochs", 3)
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
    run = _copy_run(finished_run, tmp_path / "run")
    # A damaged 'latest' alone is resumed past (tests/test_rundir.py): damage every checkpoint alike.
    files = sorted(run.glob("checkpoints/*/state.json")) if file.startswith("checkpoints/") else [run / file]
    for path in files:
        data = json.loads(path.read_text())
        edit(data)
        path.write_text(json.dumps(data))
    before = {p: p.read_bytes() for p in run.rglob("*") if p.is_file()}
    res = _cli("train", "--resume", run)
    _one_line_error(res, file.split("/")[-1], message)
    assert {p: p.read_bytes() for p in run.rglob("*") if p.is_file()} == before


def test_a_float64_checkpoint_is_refused_in_one_line(finished_run, tmp_path):
    from safetensors.numpy import load_file, save_file

    from paddle_cnn.training import checkpoint as ckpt

    run = _copy_run(finished_run, tmp_path / "run")
    folder = run / "checkpoints" / "latest"
    tensors = {k: v.astype(np.float64) for k, v in load_file(str(folder / "model.safetensors")).items()}
    save_file(tensors, str(folder / "model.safetensors"))
    state = json.loads((folder / "state.json").read_text())
    state["tensors"]["model.safetensors"] = ckpt.sha256(folder / "model.safetensors")
    (folder / "state.json").write_text(json.dumps(state))
    _one_line_error(_cli("evaluate", run, "--which", "latest"), "is float64 in the checkpoint but float32")


def test_bad_flags_and_paths_are_one_line(finished_run, csv_pair, tmp_path):
    a_file = tmp_path / "file.txt"
    a_file.write_text("x")
    data = ["--train-csv", csv_pair[0], "--test-csv", csv_pair[1], "--val-size", 80]
    cases = [
        (("train", *data, "--out", a_file), "is a file, not a run folder"),
        (("train", "--resume", a_file), "not a run folder"),
        (("train", *data, "--lr", "nan", "--out", tmp_path / "x"), "lr must be a finite number > 0"),
        (("train", *data, "--lr", "inf", "--out", tmp_path / "x"), "lr must be a finite number > 0"),
        (("train", *data, "--log-every", 0, "--out", tmp_path / "x"), "log_every must be >= 1"),
        (("predict", finished_run, a_file, "--top-k", 0), "--top-k must be between 1 and the 10 classes"),
        (("predict", finished_run, a_file, "--top-k", 11), "--top-k must be between 1 and the 10 classes"),
        (("export", finished_run, "--out", a_file), "is a file, not an export folder"),
    ]
    for args, message in cases:
        _one_line_error(_cli(*args), message)
    assert not (tmp_path / "x").exists()


def test_a_typo_in_the_data_folder_creates_nothing(tmp_path):
    res = _cli("train", "--data-dir", tmp_path / "dta", "--no-download", "--out", tmp_path / "r")
    assert res.returncode == 2 and "file(s) missing" in res.stderr and "Traceback" not in res.stderr
    res = _cli("train", "--data-dir", tmp_path / "dta", "--download", "--out", tmp_path / "r")  # no network here
    assert res.returncode == 2 and "Traceback" not in res.stderr
    assert not (tmp_path / "dta").exists() and not (tmp_path / "r").exists()


@pytest.mark.parametrize("protocol", [2, 3, 4])
def test_legacy_pdparams_of_every_protocol_paddle_writes_load(tmp_path, protocol):
    from paddle_cnn.training.legacy import load_legacy_state_dict, load_legacy_weights

    net = nets.create("lenet")
    path = tmp_path / f"p{protocol}.pdparams"
    paddle.save(net.state_dict(), str(path), protocol=protocol)
    fresh = nets.create("lenet")
    load_legacy_weights(path, fresh, allow_pickle=True)
    for (k, a), (_, b) in zip(net.state_dict().items(), fresh.state_dict().items()):
        np.testing.assert_array_equal(a.numpy(), b.numpy(), err_msg=k)
    with pytest.raises(CheckpointError, match=r"load_legacy_weights\(path, net, allow_pickle=True\)"):
        load_legacy_state_dict(path)


def test_codecs_encode_is_allowed_only_for_latin1_bytes(tmp_path):
    from paddle_cnn.training.legacy import load_legacy_state_dict

    path = tmp_path / "x.pdparams"
    path.write_bytes(b"c_codecs\nencode\n(X\x03\x00\x00\x00abcX\x05\x00\x00\x00rot13tR.")
    with pytest.raises(CheckpointError, match="refusing _codecs.encode"):
        load_legacy_state_dict(path, allow_pickle=True)


# ------------------------------------------------------------------ images for predict

def _shirt(h=60, w=40):
    img = np.zeros((h, w), np.uint8)
    img[8:h - 8, 6:w - 6] = 210
    img[8:20, :6] = img[8:20, w - 6:] = 210  # sleeves: the shape is not symmetric top to bottom
    return img


@pytest.mark.parametrize("orientation", [3, 6, 8])
def test_exif_orientation_is_applied(tmp_path, orientation):
    from PIL import Image

    from paddle_cnn import images as I

    upright = _shirt()
    stored = {3: np.rot90(upright, 2), 6: np.rot90(upright, 1), 8: np.rot90(upright, -1)}[orientation]
    exif = Image.Exif()
    exif[0x0112] = orientation
    path = tmp_path / "phone.jpg"
    Image.fromarray(np.ascontiguousarray(stored)).save(path, exif=exif.tobytes(), quality=98)
    got = I.read_image(path)
    got = got if got.ndim == 2 else I.to_grey(got)
    assert got.shape == upright.shape
    assert np.abs(got.astype(int) - upright.astype(int)).mean() < 6


@pytest.mark.parametrize("object_level", [230, 25])
def test_an_object_on_a_transparent_background_stays_visible(tmp_path, object_level):
    import cv2

    from paddle_cnn import images as I

    bgra = np.zeros((60, 40, 4), np.uint8)  # fully transparent, colour channels black
    mask = _shirt() > 0
    bgra[mask, :3] = object_level
    bgra[mask, 3] = 255
    path = tmp_path / "cutout.png"
    cv2.imwrite(str(path), bgra)
    prepared = I.load_for_model(path, FASHION_28)
    # What the user means: the opaque shape, light on dark like the training data, whatever its colour.
    expected = I.prepare(np.where(mask, 230, 0).astype(np.uint8), "fashion-mnist").image
    assert np.abs(prepared.image.astype(int) - expected.astype(int)).mean() < 12
    assert (prepared.image > 100).mean() > 0.3


def test_a_directory_is_reported_as_a_directory(finished_run, tmp_path):
    res = _cli("predict", finished_run, tmp_path)
    assert res.returncode == 1 and f"{tmp_path}: is a directory, not an image file" in res.stderr


def test_non_ascii_file_names_draw_without_missing_glyphs(finished_run, tmp_path):
    import cv2

    names = ["chemise_été.png", "衬衫.png", "рубашка.png"]
    for name in names:
        cv2.imwrite(str(tmp_path / name), _shirt())
    res = _cli("predict", finished_run, *[tmp_path / n for n in names], "--save-grid", tmp_path / "grid.png")
    assert res.returncode == 0, res.stderr
    assert "Glyph" not in res.stderr and "missing from" not in res.stderr, res.stderr
    from paddle_cnn.training.plots import displayable

    assert displayable("chemise_été.png", "image 1")[0] == "chemise_été.png"  # the default font has é
    text, family = displayable("衬衫.png", "image 2")
    assert family is not None or text == "image 2"  # a CJK font if one is installed, else the index


# ------------------------------------------------------------------ CSV edges

def _csv_text(rows=3, label="1"):
    header = "label," + ",".join(f"pixel{i}" for i in range(1, 785))
    row = label + "," + ",".join(["0"] * 784)
    return "\n".join([header] + [row] * rows)


def test_trailing_blank_lines_are_accepted_and_middle_ones_refused(tmp_path):
    from paddle_cnn import datasets as D

    path = tmp_path / "excel.csv"
    path.write_bytes((_csv_text() + "\r\n\r\n\n  \n").encode())
    assert len(D.load_csv(path, use_cache=False).images) == 3
    lines = _csv_text().split("\n")
    path.write_text("\n".join(lines[:2] + [""] + lines[2:]) + "\n")
    with pytest.raises(D.DataError, match=r"line 3: blank line between data rows"):
        D.load_csv(path, use_cache=False)


def test_macos_resource_files_in_a_zip_are_ignored_at_any_level(tmp_path):
    import zipfile

    from paddle_cnn import datasets as D

    path = tmp_path / "archive.zip"
    with zipfile.ZipFile(path, "w") as z:
        z.writestr("data/fashion.csv", _csv_text())
        z.writestr("data/._fashion.csv", b"\x00\x05\x16\x07 resource fork")
        z.writestr("__MACOSX/data/._fashion.csv", b"\x00\x05\x16\x07")
        z.writestr("._top.csv", b"\x00")
    assert len(D.load_csv(path, use_cache=False).images) == 3


def test_whether_a_file_loads_does_not_depend_on_the_cache(tmp_path):
    from paddle_cnn import datasets as D

    plain = tmp_path / "a.csv"
    plain.write_text(_csv_text())
    D.load_csv(plain, cache_dir=tmp_path / "cache")  # cached as a plain CSV
    fake_gz = tmp_path / "a.csv.gz"
    fake_gz.write_bytes(plain.read_bytes())  # same bytes, but not gzip
    for use_cache in (False, True):
        with pytest.raises(D.DataError, match="not a readable gzip file"):
            D.load_csv(fake_gz, cache_dir=tmp_path / "cache", use_cache=use_cache)


def test_huge_labels_and_long_cells_are_quoted_as_written(tmp_path):
    from paddle_cnn import datasets as D

    path = tmp_path / "big.csv"
    path.write_text(_csv_text(label="1e30"))
    with pytest.raises(D.DataError, match=r"line 2, column 'label': label '1e30' is outside 0..9"):
        D.load_csv(path, use_cache=False)
    path.write_text(_csv_text(label="x" * 5000))
    with pytest.raises(D.DataError) as info:
        D.load_csv(path, use_cache=False)
    assert len(str(info.value)) < 300 and "xxx..." in str(info.value)
