"""The command line, run for real in subprocesses."""
import subprocess
import sys


def _run(*args):
    return subprocess.run([sys.executable, "-m", "paddle_cnn", *args], capture_output=True, text=True, timeout=300)


def test_summary_dilated_cnn_prints_seed_parameters_and_fields():
    res = _run("summary", "dilated_cnn")
    assert res.returncode == 0, res.stderr
    assert "Total params: 170,314" in res.stdout  # paddle.summary's own line
    assert "[32, 9, 9]" in res.stdout and "16x16" in res.stdout
    assert "total params: 170,314" in res.stdout  # our per-layer table agrees


def test_summary_with_another_input_size():
    res = _run("summary", "standard_cnn", "--input-size", "3", "32", "32")
    assert res.returncode == 0, res.stderr
    assert "[64, 3, 32, 32]" in res.stdout and "[1568]" in res.stdout  # 32 * 7 * 7


def test_list_prints_every_registered_net():
    from paddle_cnn import nets

    res = _run("list")
    assert res.returncode == 0, res.stderr
    listed = [line.split()[0] for line in res.stdout.splitlines()]
    assert listed == nets.list_nets()


def test_unknown_name_is_one_clear_line():
    res = _run("summary", "resnet9000")
    assert res.returncode == 2
    assert res.stderr.strip().count("\n") == 0
    assert "unknown network 'resnet9000'" in res.stderr and "dilated_cnn" in res.stderr
