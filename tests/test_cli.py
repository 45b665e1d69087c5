"""The command line, run for real in subprocesses: what it prints, and one line for every bad flag or path."""
import subprocess
import sys

from helpers import cli, one_line_error


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


def test_train_a_full_size_net_on_28x28_exits_2_naming_the_minimum(csv_pair, tmp_path):
    res = cli("train", "--net", "alexnet", "--train-csv", csv_pair[0], "--test-csv", csv_pair[1], "--val-size", 80,
               "--out", tmp_path / "a")
    one_line_error(res, "alexnet cannot take a 28x28 input", "smallest input is", "--input-size", "alexnet_small")
    assert not (tmp_path / "a").exists()
    one_line_error(cli("summary", "alexnet", "--input-size", 1, 8, 8), "alexnet cannot take a 8x8 input")
    one_line_error(cli("train", "--net", "nin", "--out", tmp_path / "n", "--train-csv", csv_pair[0],
                         "--test-csv", csv_pair[1], "--val-size", 80), "nin cannot take a 28x28 input")


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
        one_line_error(cli(*args), message)
    assert not (tmp_path / "x").exists()


def test_a_typo_in_the_data_folder_creates_nothing(tmp_path):
    res = cli("train", "--data-dir", tmp_path / "dta", "--no-download", "--out", tmp_path / "r")
    assert res.returncode == 2 and "file(s) missing" in res.stderr and "Traceback" not in res.stderr
    res = cli("train", "--data-dir", tmp_path / "dta", "--download", "--out", tmp_path / "r")  # no network here
    assert res.returncode == 2 and "Traceback" not in res.stderr
    assert not (tmp_path / "dta").exists() and not (tmp_path / "r").exists()

