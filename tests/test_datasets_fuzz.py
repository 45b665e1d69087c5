"""Property-based checks: any bytes given to the readers either load or raise our DataError."""
import gzip

import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from paddle_cnn import datasets as D

_SETTINGS = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])


def _valid_idx(n=2):
    header = bytes([0, 0, 8, 3]) + b"".join(v.to_bytes(4, "big") for v in (n, 28, 28))
    return header + bytes(range(256)) * (n * 784 // 256) + bytes(n * 784 % 256)


@_SETTINGS
@given(data=st.data())
def test_idx_reader_on_mutated_bytes(tmp_path, data):
    raw = bytearray(_valid_idx())
    for _ in range(data.draw(st.integers(0, 4))):
        pos = data.draw(st.integers(0, len(raw) - 1))
        raw[pos] = data.draw(st.integers(0, 255))
    raw = bytes(raw[: data.draw(st.integers(0, len(raw) + 2))])
    compress = data.draw(st.booleans())
    path = tmp_path / ("f.gz" if compress else "f")
    path.write_bytes(gzip.compress(raw) if compress else raw)
    try:
        arr = D.read_idx(path)
    except D.DataError as exc:
        assert str(path) in str(exc)
    else:
        assert arr.dtype == np.uint8 and arr.size == len(raw) - 4 - 4 * arr.ndim


@_SETTINGS
@given(data=st.data())
def test_csv_reader_on_mutated_text(tmp_path, data):
    images = np.arange(2 * 784, dtype=np.int64).reshape(2, 784) % 256
    text = bytearray(("label," + ",".join(f"pixel{i}" for i in range(1, 785)) + "\n" + "".join(
        f"{k}," + ",".join(map(str, row)) + "\n" for k, row in enumerate(images))).encode())
    alphabet = b"0123456789,\n.-aN \r"
    for _ in range(data.draw(st.integers(1, 3))):
        pos = data.draw(st.integers(0, len(text) - 1))
        text[pos] = alphabet[data.draw(st.integers(0, len(alphabet) - 1))]
    path = tmp_path / "m.csv"
    path.write_bytes(bytes(text))
    try:
        got = D.load_csv(path, use_cache=False)
    except D.DataError as exc:
        assert str(path) in str(exc)
    else:
        assert got.images.dtype == np.uint8 and got.images.shape[1:] == (28, 28)
        assert got.labels.min() >= 0 and got.labels.max() <= 9
