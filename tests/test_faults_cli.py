"""End to end, as a user meets them: real signals, real full and read-only file systems, a busy port.
Each ends in one line on stderr and a known exit status, with nothing the user had lost."""
import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from helpers import CLI_ENV, cli, one_line_error
from paddle_cnn.entry import run_command
from paddle_cnn.errors import ConfigError

@pytest.fixture(scope="module")
def data(tmp_path_factory):
    from conftest import make_csv_pair

    return make_csv_pair(tmp_path_factory.mktemp("faults"), train_rows=1200)


def _flags(data, epochs=2):
    return ["--net", "standard_cnn", "--train-csv", data[0], "--test-csv", data[1], "--val-size", "80",
            "--epochs", str(epochs), "--batch-size", "16", "--log-every", "1"]


@pytest.fixture(scope="module")
def finished(data, tmp_path_factory):
    run = tmp_path_factory.mktemp("finished") / "run"
    res = cli("train", *_flags(data), "--out", run, cwd=run.parent)
    assert res.returncode == 0, res.stderr[-3000:]
    return run


@contextlib.contextmanager
def _tmpfs(where: Path, size: str):
    where.mkdir(parents=True, exist_ok=True)
    res = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(where)], capture_output=True,
                         text=True)
    if res.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here ({res.stderr.strip() or res.returncode}): needs root and a "
                    "kernel that allows mounts in this container")
    try:
        yield where
    finally:
        subprocess.run(["umount", "-l", str(where)], check=False)


def _leftovers(folder: Path):
    return sorted(str(p) for p in folder.rglob("*") if p.name.startswith(".tmp-") or p.name.endswith(".tmp"))


# ------------------------------------------------------------------ resume never starts over


def test_resume_without_latest_continues_from_epoch_2_from_the_command_line(finished, tmp_path):
    run = tmp_path / "run"
    shutil.copytree(finished, run)
    shutil.rmtree(run / "checkpoints" / "latest")
    epoch_1 = (run / "checkpoints" / "epoch_1" / "model.safetensors").stat()
    res = cli("train", "--resume", run, "--epochs", "3", cwd=tmp_path)
    assert res.returncode == 0, res.stderr[-3000:]
    assert "resuming from checkpoint 'epoch_2' (epoch 2)" in res.stdout and "continuing at epoch 3 of 3" in res.stdout
    assert "epoch 1/3" not in res.stdout and "epoch 3/3" in res.stdout
    after = (run / "checkpoints" / "epoch_1" / "model.safetensors").stat()
    assert (after.st_ino, after.st_mtime_ns) == (epoch_1.st_ino, epoch_1.st_mtime_ns)


# ------------------------------------------------------------------ Ctrl-C and SIGTERM


def _train_until(data, run, line_fragment, sig):
    proc = subprocess.Popen([sys.executable, "-m", "paddle_cnn", "train", *map(str, _flags(data, epochs=40)),
                             "--out", str(run)], cwd=run.parent, env=CLI_ENV, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    seen = []
    try:
        for line in proc.stdout:
            seen.append(line)
            if line_fragment in line:
                proc.send_signal(sig)
                break
        out, err = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
    return subprocess.CompletedProcess(proc.args, proc.returncode, "".join(seen) + out, err)


@pytest.mark.parametrize("sig, status", [(signal.SIGINT, 130), (signal.SIGTERM, 143)])
def test_a_signal_mid_epoch_is_one_line_naming_where_and_how_to_continue(data, tmp_path, sig, status):
    run = tmp_path / "run"
    res = _train_until(data, run, "epoch 2/40 step 3/", sig)
    line = one_line_error(res, "interrupted during epoch 2, step", "checkpoints/latest is epoch 1",
                          f"continue with: paddle-cnn train --resume {run}", status=status)
    assert "FatalError" not in res.stderr and "KeyboardInterrupt" not in res.stderr, line
    assert (run / ".lock").read_text() == ""
    assert not _leftovers(run)
    again = cli("train", "--resume", run, "--epochs", "2", cwd=tmp_path)
    assert again.returncode == 0, again.stderr[-3000:]
    assert "resuming from checkpoint 'latest' (epoch 1); continuing at epoch 2 of 2" in again.stdout


# ------------------------------------------------------------------ full, read-only and wrong folders


def test_a_full_disk_while_checkpointing_is_one_line_and_leaves_nothing_half_written(data, tmp_path):
    with _tmpfs(tmp_path / "small", "1m") as disk:  # config and logs fit, a 4 MB checkpoint does not
        res = cli("train", *_flags(data), "--out", disk / "run", cwd=tmp_path)
        line = one_line_error(res, "No space left on device", "free space on that disk or choose another --out")
        assert str(disk / "run") in line
        assert not _leftovers(disk)
        assert not (disk / "run" / "checkpoints" / "epoch_1").exists()


def test_a_full_disk_while_resuming_leaves_no_partial_log_copy(finished, data, tmp_path):
    with _tmpfs(tmp_path / "small", "6m") as disk:
        run = disk / "run"
        shutil.copytree(finished, run, ignore=shutil.ignore_patterns("epoch_*", "best"))
        with open(run / "vdl" / "vdlrecords.run.log", "ab") as log:  # records of an epoch cut short
            log.write(b"\0" * 4096)
        filler = disk / "filler"
        with open(filler, "wb") as f:  # leave about 100 KB free: no room for a 4 MB checkpoint
            with contextlib.suppress(OSError):
                while True:
                    f.write(b"\0" * 65536)
                    f.flush()
        os.truncate(filler, filler.stat().st_size - 100_000)
        res = cli("train", "--resume", run, "--epochs", "3", cwd=tmp_path)
        one_line_error(res, "No space left on device", str(run))
        assert not _leftovers(disk)
        for f in (run / "vdl").rglob("vdlrecords.*.log"):
            if f.parent.name == "interrupted":
                assert f.stat().st_size == (finished / "vdl" / "vdlrecords.run.log").stat().st_size + 4096


def test_a_read_only_folder_refuses_train_resume_and_export_in_one_line(finished, data, tmp_path):
    with _tmpfs(tmp_path / "ro", "16m") as disk:
        shutil.copytree(finished, disk / "run")
        subprocess.run(["mount", "-o", "remount,ro", str(disk)], check=True)
        before = sorted((p.relative_to(disk), p.stat().st_mtime_ns) for p in disk.rglob("*"))
        one_line_error(cli("train", *_flags(data), "--out", disk / "new", cwd=tmp_path), "Read-only file system",
                       str(disk / "new"), "choose a writable --out")
        one_line_error(cli("train", "--resume", disk / "run", "--epochs", "3", cwd=tmp_path), "Read-only file system",
                       str(disk / "run"))
        one_line_error(cli("export", disk / "run", cwd=tmp_path), "Read-only file system", str(disk / "run"))
        assert sorted((p.relative_to(disk), p.stat().st_mtime_ns) for p in disk.rglob("*")) == before


def test_out_below_a_regular_file_is_one_line(data, tmp_path):
    (tmp_path / "file").write_text("not a folder")
    one_line_error(cli("train", *_flags(data), "--out", tmp_path / "file" / "run", cwd=tmp_path),
                   str(tmp_path / "file"), "not a folder")
    assert (tmp_path / "file").read_text() == "not a folder"


# ------------------------------------------------------------------ paddle-cnn board


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _children(pid: int):
    out = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if int(fields[1]) == pid:
                out.append(int(entry.name))
    return out


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


def test_board_on_a_busy_port_is_one_line_and_starts_nothing(finished, tmp_path):
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        started = time.time()
        res = cli("board", finished.parent, "--port", port, cwd=tmp_path, timeout=60)
        one_line_error(res, f"port {port} on 127.0.0.1 is in use", "choose another --port")
        assert time.time() - started < 30


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGKILL])
def test_board_takes_its_server_down_with_it(finished, tmp_path, sig):
    board = subprocess.Popen([sys.executable, "-m", "paddle_cnn", "board", str(finished.parent), "--port",
                              str(_free_port())], cwd=tmp_path, env=CLI_ENV, stdout=subprocess.PIPE,
                             stderr=subprocess.STDOUT, text=True)
    try:
        deadline = time.time() + 60
        while time.time() < deadline and not _children(board.pid):
            time.sleep(0.2)
        servers = _children(board.pid)
        assert servers, board.stdout.read() if board.poll() is not None else "no VisualDL child started"
        time.sleep(1)
        board.send_signal(sig)
        board.wait(timeout=30)
        deadline = time.time() + 20
        while time.time() < deadline and any(_alive(p) for p in servers):
            time.sleep(0.2)
        assert not any(_alive(p) for p in servers), f"VisualDL outlived board after {sig.name}"
    finally:
        if board.poll() is None:
            board.kill()
        for p in _children(board.pid):
            with contextlib.suppress(OSError):
                os.kill(p, signal.SIGKILL)



# ------------------------------------------------------------------ predict: one bad file does not stop the rest


def write_png(path: Path, width: int, height: int) -> Path:
    """A valid grey PNG of any size, streamed (a 20000x20000 one is a few hundred KB of zeros)."""
    import struct
    import zlib

    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body) & 0xFFFFFFFF)

    pack = zlib.compressobj(9)
    row = b"\0" * (width + 1)  # filter byte 0, then the row's pixels
    data = b"".join(pack.compress(row) for _ in range(height)) + pack.flush()
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0))
                     + chunk(b"IDAT", data) + chunk(b"IEND", b""))
    return path


def test_predict_reports_a_decompression_bomb_in_one_line_and_predicts_the_rest(finished, tmp_path):
    import numpy as np
    from PIL import Image

    bomb = write_png(tmp_path / "bomb.png", 20000, 20000)
    assert bomb.stat().st_size < 2_000_000
    good = tmp_path / "good.png"
    pixels = np.zeros((40, 40), np.uint8)
    pixels[8:32, 12:28] = 230
    Image.fromarray(pixels).save(good)
    res = cli("predict", finished, bomb, good, tmp_path / "missing.png", cwd=tmp_path, timeout=120)
    assert res.returncode == 1, res.stderr
    assert "Traceback" not in res.stderr
    errors = res.stderr.strip().splitlines()
    assert len(errors) == 2, errors
    assert str(bomb) in errors[0] and "400,000,000 pixels" in errors[0] and "120,000,000" in errors[0]
    assert "missing.png: file not found" in errors[1]
    assert res.stdout.startswith(f"{good}: ") and len(res.stdout.strip().splitlines()) == 1


# ------------------------------------------------------------------ flags out of range


def test_a_negative_seed_is_one_line_naming_the_range(data, tmp_path):
    one_line_error(cli("train", *_flags(data), "--seed", "-1", "--out", tmp_path / "run", cwd=tmp_path),
                   "config seed must be an integer from 0 to 2**63 - 1, got -1")
    assert not (tmp_path / "run").exists()


def test_more_threads_than_cores_are_clamped_and_said(data, tmp_path):
    from paddle_cnn.fast import available_cores

    res = cli("train", *_flags(data, epochs=1), "--train-limit", "200", "--threads", "999", "--out",
               tmp_path / "run", cwd=tmp_path)
    assert res.returncode == 0, res.stderr[-2000:]
    cores = available_cores()
    assert f"threads=999 is more than the {cores} cores this process may use; using {cores}" in res.stderr
    import json

    assert json.loads((tmp_path / "run" / "results.json").read_text())["threads"] == cores


def test_unexpected_exceptions_keep_their_traceback():
    def buggy(argv):
        raise ValueError("a bug, not a user error")

    with pytest.raises(ValueError, match="a bug"):
        run_command(buggy, [])
    assert run_command(lambda argv: (_ for _ in ()).throw(ConfigError("bad flag")), []) == 2

