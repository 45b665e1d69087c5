"""The Fashion-MNIST CSV reader (paddle_cnn/datasets/csv_format.py): streamed, so memory follows the
parsed arrays and not the file, with errors that name the file and line."""
import gzip
import subprocess
import sys
import textwrap

import numpy as np
import pytest

from paddle_cnn import datasets as D


def _zero_rows_gz(path, members: int, rows_per_member: int, truncate: int = 0):
    """A labelled CSV of all-zero images as concatenated gzip members (a few KB stand for 100s of MB),
    the last one cut short by ``truncate`` bytes."""
    header = ("label," + ",".join(f"pixel{i}" for i in range(1, 785)) + "\n").encode()
    row = ("0," + ",".join("0" for _ in range(784)) + "\n").encode()
    body = gzip.compress(row * rows_per_member, compresslevel=9)
    data = gzip.compress(header) + body * members
    path.write_bytes(data[: len(data) - truncate] if truncate else data)
    return len(row) * rows_per_member * members


def test_a_truncated_gz_is_refused_with_memory_bounded_by_the_arrays(tmp_path):
    path = tmp_path / "cut.csv.gz"
    text_bytes = _zero_rows_gz(path, members=12, rows_per_member=20_000, truncate=20)  # 377 MB of text
    assert path.stat().st_size < 2_000_000
    script = textwrap.dedent(f"""
        import resource
        from paddle_cnn.datasets import csv_format
        from paddle_cnn.datasets.errors import DataError
        before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
        try:
            csv_format.load_csv({str(path)!r}, use_cache=False)
        except DataError as exc:
            print("error:", exc)
        print("peak", resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024 - before)
    """)
    res = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=600)
    assert res.returncode == 0, res.stderr[-2000:]
    assert f"error: {path}: not a readable gzip file (truncated or corrupt)" in res.stdout, res.stdout
    peak = int(res.stdout.split("peak")[1])
    arrays = 12 * 20_000 * (784 + 8)  # the images and labels parsed before the cut: 190 MB
    # The whole text (377 MB) with pandas' float64 frame of it (1.5 GB) would be far above this.
    assert peak < arrays + 300_000_000, (peak, arrays, text_bytes)


def test_rows_across_read_blocks_keep_their_line_numbers(tmp_path, monkeypatch):
    monkeypatch.setattr(D.csv_format, "BLOCK_BYTES", 4096)  # a row is ~1.6 KB: blocks split rows
    images = np.zeros((12, 28, 28), np.uint8)
    images[:, 3, 4] = np.arange(12)
    path = D.write_csv(tmp_path / "a.csv", images, labels=np.arange(12) % 10)
    got = D.load_csv(path, use_cache=False)
    np.testing.assert_array_equal(got.images, images)
    np.testing.assert_array_equal(got.labels, np.arange(12) % 10)
    lines = path.read_bytes().split(b"\n")
    cells = lines[10].split(b",")
    cells[5] = b"x"  # line 11 of the file (lines[0] is line 1), column pixel5
    lines[10] = b",".join(cells)
    path.write_bytes(b"\n".join(lines))
    with pytest.raises(D.DataError, match=r"a.csv, line 11, column 'pixel5': cell 'x' is not a number"):
        D.load_csv(path, use_cache=False)


def test_a_line_with_no_end_is_refused_without_reading_it_whole(tmp_path, monkeypatch):
    monkeypatch.setattr(D.csv_format, "MAX_LINE_BYTES", 10_000)
    path = tmp_path / "long.csv"
    path.write_bytes(b"label," + b"9" * 200_000)
    with pytest.raises(D.DataError, match=r"long.csv, line 1: line is longer than 10,000 bytes"):
        D.load_csv(path, use_cache=False)


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

