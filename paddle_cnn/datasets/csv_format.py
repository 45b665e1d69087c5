"""The Fashion-MNIST CSV layouts: Kaggle's labelled ``label,pixel1..pixel784`` and the competition's
unlabelled ``ID,pixel1..pixel784``, as ``.csv``, ``.csv.gz`` or a ``.zip`` holding one CSV.

Parsing is strict (every bad cell is reported by line and column) and happens once: the parsed
arrays are cached under a key made from the file's bytes, so a changed file is always re-read.
"""
from __future__ import annotations

import contextlib
import gzip
import io
import math
import warnings
import zipfile
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO, Iterator, List, Optional, Union

import numpy as np
import pandas as pd

from ..fileio import atomic_savez, atomic_write_bytes, cache_root, file_digest
from .errors import DataError, DataFileNotFoundError

PathLike = Union[str, Path]

# Bump when the parsed representation changes, so old cache entries are never read.
_CACHE_FORMAT = 2


@dataclass
class CSVData:
    """Parsed CSV: images (N, side, side) uint8; labels (N,) int64 or None; ids (N,) int64 or None."""

    images: np.ndarray
    labels: Optional[np.ndarray]
    ids: Optional[np.ndarray]


def _check_file(path: Path) -> None:
    if not path.exists():
        raise DataFileNotFoundError(path, "file not found")
    if not path.is_file():
        raise DataError(path, "is not a file")


def _container(path: Path) -> str:
    name = path.name.lower()
    return "gzip" if name.endswith(".gz") else "zip" if name.endswith(".zip") else "plain"


# Text is read and parsed this many bytes at a time, so memory is bounded by the parsed arrays (784
# bytes an image), not by the file: a 2 GiB truncated .csv.gz once took 13.9 GB before its error.
BLOCK_BYTES = 16 << 20
# No line of a 28x28 CSV comes near this (785 cells of at most a few characters each).
MAX_LINE_BYTES = 1 << 20


@contextlib.contextmanager
def _open_text(path: Path, text: Optional[bytes] = None) -> Iterator[BinaryIO]:
    """The CSV bytes of ``path`` as a stream: plain, gzip, or a zip archive holding exactly one .csv;
    decompression errors (also those met half-way through) become one DataError naming the file."""
    kind = _container(path)
    what = {"gzip": "gzip", "zip": "zip"}.get(kind)
    try:
        if text is not None:
            yield io.BytesIO(text)
        elif kind == "gzip":
            with gzip.open(path, "rb") as stream:
                yield stream
        elif kind == "zip":
            with zipfile.ZipFile(path) as archive:
                members = [m for m in archive.namelist() if m.lower().endswith(".csv") and not _mac_metadata(m)]
                if len(members) != 1:
                    raise DataError(path, f"expected a zip holding exactly one .csv file, found {members or 'none'}")
                with archive.open(members[0]) as stream:
                    yield stream
        else:
            with open(path, "rb") as stream:
                yield stream
    except (zipfile.BadZipFile, zlib.error, EOFError, gzip.BadGzipFile) as exc:
        raise DataError(path, f"not a readable {what or 'CSV'} file (truncated or corrupt): {exc}") from None
    except OSError as exc:
        if what is None or exc.errno is not None:
            raise
        raise DataError(path, f"not a readable {what} file (truncated or corrupt): {exc}") from None


def _mac_metadata(member: str) -> bool:
    """macOS Finder's companions in a zip: ``__MACOSX/...`` and ``._name`` resource forks, at any level."""
    parts = member.split("/")
    return "__MACOSX" in parts[:-1] or parts[-1].startswith("._")


def _quote(text, limit: int = 100) -> str:
    """``repr`` of a piece of the user's file, cut to ``limit`` characters so an error stays one line."""
    text = text.decode("utf-8", errors="replace") if isinstance(text, bytes) else str(text)
    return repr(text if len(text) <= limit else text[:limit] + "...")


def _cell(lines, row: int, col: int) -> str:
    """The text of data row ``row`` (0-based), column ``col``, as the file has it (quoted, cut)."""
    return _quote(lines[row + 1].split(b",")[col].strip())


def _first_bad(mask: np.ndarray):
    """(row, column) of the first True in a 2-D mask, in reading order."""
    row, col = np.argwhere(mask)[0]
    return int(row), int(col)


def _lines(path: Path, stream: BinaryIO) -> Iterator[List[bytes]]:
    """Blocks of whole lines (without their newline), read :data:`BLOCK_BYTES` at a time."""
    tail, line_no = b"", 1
    while True:
        chunk = stream.read(BLOCK_BYTES)
        if not chunk:
            break
        parts = (tail + chunk).split(b"\n")
        tail = parts.pop()
        if len(tail) > MAX_LINE_BYTES:
            raise DataError(path, f"line is longer than {MAX_LINE_BYTES:,} bytes; not a Fashion-MNIST CSV",
                            line=line_no + len(parts))
        if any(len(p) > MAX_LINE_BYTES for p in parts):
            i = next(i for i, p in enumerate(parts) if len(p) > MAX_LINE_BYTES)
            raise DataError(path, f"line is longer than {MAX_LINE_BYTES:,} bytes; not a Fashion-MNIST CSV",
                            line=line_no + i)
        line_no += len(parts)
        if parts:
            yield parts
    if tail:
        yield [tail]


def _parse_header(path: Path, line: bytes):
    header = line.decode("utf-8-sig", errors="replace").strip().split(",")
    first = header[0].strip()
    if first.lower() not in ("label", "id"):
        raise DataError(path, f"first column is {_quote(first)}; expected 'label' (labelled layout) "
                              "or 'ID' (unlabelled layout)", line=1)
    n_pixels = len(header) - 1
    side = math.isqrt(n_pixels)
    expected_header = [f"pixel{i}" for i in range(1, n_pixels + 1)]
    if n_pixels == 0 or side * side != n_pixels:
        raise DataError(path, f"header has {n_pixels} pixel columns; expected a square image such as 784 (28x28)",
                        line=1)
    for i, (got, want) in enumerate(zip(header[1:], expected_header)):
        if got.strip() != want:
            raise DataError(path, f"header column {i + 2} is {_quote(got)}, expected {want!r}", line=1)
    return first, n_pixels, side


def parse_csv(path: PathLike, text: Optional[bytes] = None) -> CSVData:
    """Parse one Fashion-MNIST CSV strictly, streaming; ``text`` may hold the already-decompressed bytes."""
    path = Path(path)
    if text is None:
        _check_file(path)
    with _open_text(path, text) as stream:
        return _parse_stream(path, stream)


def _parse_stream(path: Path, stream: BinaryIO) -> CSVData:
    header, first, n_pixels = None, "", 0
    images, first_cols = [], []
    blanks: List[int] = []  # line numbers of blank lines not yet followed by a row (allowed only at the end)
    line_no = 0
    for block in _lines(path, stream):
        rows = []
        for line in block:
            line_no += 1
            if header is None:
                if not line.strip():
                    blanks.append(line_no)
                    continue
                if blanks:  # blank lines before the header: as the old reader, the header is what comes first
                    raise DataError(path, f"first column is {_quote('')}; expected 'label' (labelled layout) "
                                          "or 'ID' (unlabelled layout)", line=1)
                first, n_pixels, _ = _parse_header(path, line)
                header = line
                continue
            if not line.strip():
                blanks.append(line_no)
                continue
            if blanks:
                raise DataError(path, "blank line between data rows (blank lines are allowed only at the end)",
                                line=blanks[0])
            if line.count(b",") != n_pixels:
                raise DataError(path, f"row has {line.count(b',') + 1 if line.strip() else 0} fields, "
                                      f"expected {n_pixels + 1} like the header", line=line_no)
            rows.append(line)
        if rows:  # consecutive lines (a blank one between rows raised above), ending at line_no
            pixels, col0 = _parse_rows(path, header, rows, line_no - len(rows) + 1, first)
            images.append(pixels)
            first_cols.append(col0)
    if header is None:
        raise DataError(path, "file is empty; expected a header 'label,pixel1,...,pixel784' and data rows")
    if not images:
        raise DataError(path, "has a header but no data rows")
    side = math.isqrt(n_pixels)
    all_images = np.concatenate(images).reshape(-1, side, side)
    col = np.concatenate(first_cols)
    if first.lower() == "label":
        return CSVData(all_images, col, None)
    return CSVData(all_images, None, col)


def _parse_rows(path: Path, header: bytes, rows: List[bytes], first_line: int, first: str):
    """(pixels uint8 (n, P), first column int64) of consecutive data rows starting at file line
    ``first_line``; every bad cell is reported by its line and column."""
    lines = [header] + rows
    frame = pd.read_csv(io.BytesIO(b"\n".join(lines)), header=0, skip_blank_lines=False, engine="c",
                        na_values=[""], keep_default_na=True)
    columns = list(frame.columns)
    at = lambda row: first_line + row  # noqa: E731 - file line of data row ``row`` of this block
    # Non-numeric cells make a column non-numeric; find the first bad cell in reading order.
    bad_cells = []
    for j, col in enumerate(columns):
        if not pd.api.types.is_numeric_dtype(frame[col]):
            values = frame[col]
            numeric = pd.to_numeric(values, errors="coerce")
            bad_rows = np.flatnonzero(numeric.isna().to_numpy() & values.notna().to_numpy())
            if bad_rows.size:
                bad_cells.append((int(bad_rows[0]), j, values.iloc[bad_rows[0]]))
            frame[col] = numeric
    if bad_cells:
        row, j, value = min(bad_cells)
        raise DataError(path, f"cell {_quote(value)} is not a number", line=at(row), column=columns[j])
    values = frame.to_numpy(dtype=np.float64)
    if np.isnan(values).any():
        row, j = _first_bad(np.isnan(values))
        raise DataError(path, "cell is empty or NaN; expected an integer", line=at(row), column=columns[j])
    if (values != np.floor(values)).any():
        row, j = _first_bad(values != np.floor(values))
        raise DataError(path, f"cell {_cell(lines, row, j)} is not an integer", line=at(row), column=columns[j])
    pixels = values[:, 1:]
    out_of_range = (pixels < 0) | (pixels > 255)
    if out_of_range.any():
        row, j = _first_bad(out_of_range)
        raise DataError(path, f"pixel value {_cell(lines, row, j + 1)} is outside 0..255", line=at(row),
                        column=columns[j + 1])
    if first.lower() == "label":
        bad = np.flatnonzero((values[:, 0] < 0) | (values[:, 0] > 9))  # checked before int64 could overflow
        if bad.size:
            raise DataError(path, f"label {_cell(lines, int(bad[0]), 0)} is outside 0..9", line=at(int(bad[0])),
                            column=columns[0])
    elif (np.abs(values[:, 0]) >= 2**63).any():
        row = int(np.flatnonzero(np.abs(values[:, 0]) >= 2**63)[0])
        raise DataError(path, f"ID {_cell(lines, row, 0)} is too large for a 64-bit integer", line=at(row),
                        column=columns[0])
    return pixels.astype(np.uint8), values[:, 0].astype(np.int64)


def load_csv(path: PathLike, cache_dir: Optional[PathLike] = None, use_cache: bool = True) -> CSVData:
    """Parse ``path`` or, if this exact content was parsed before, load the cached arrays."""
    path = Path(path)
    _check_file(path)
    if not use_cache:
        return parse_csv(path)
    # Keyed by how the bytes are read too: the same bytes named .gz or .zip must fail as they would uncached.
    key = file_digest(path, "blake2b", suffix=b"\0" + _container(path).encode())
    cache_file = Path(cache_dir or cache_root()) / "csv" / f"{key}-v{_CACHE_FORMAT}.npz"
    if cache_file.is_file():
        try:
            with np.load(cache_file, allow_pickle=False) as z:
                return CSVData(z["images"], z["labels"] if z["has_labels"] else None,
                               None if z["has_labels"] else z["ids"])
        except (OSError, ValueError, KeyError, zipfile.BadZipFile) as exc:
            warnings.warn(f"ignoring unreadable CSV cache {cache_file} ({exc}); re-parsing {path}")
    data = parse_csv(path)
    _save_cache(cache_file, data)
    return data


def _save_cache(cache_file: Path, data: CSVData) -> None:
    """Atomic write, so a crash never leaves a half-written entry under the final name."""
    empty = np.zeros(0, np.int64)
    try:
        atomic_savez(cache_file, images=data.images, has_labels=data.labels is not None,
                     labels=data.labels if data.labels is not None else empty,
                     ids=data.ids if data.ids is not None else empty)
    except OSError as exc:
        warnings.warn(f"cannot write CSV cache {cache_file} ({exc}); the next load parses again")


def write_csv(path: PathLike, images: np.ndarray, labels: Optional[np.ndarray] = None,
              ids: Optional[np.ndarray] = None) -> Path:
    """Write the labelled layout (``labels``) or the unlabelled one (``ids``); gzip if the name ends in .gz."""
    if (labels is None) == (ids is None):
        raise ValueError("give exactly one of labels (labelled layout) or ids (unlabelled layout)")
    images = np.asarray(images, dtype=np.uint8).reshape(len(images), -1)
    first = np.asarray(labels if labels is not None else ids, dtype=np.int64)
    header = ("label" if labels is not None else "ID") + "," + ",".join(
        f"pixel{i}" for i in range(1, images.shape[1] + 1))
    lut = [str(v).encode() for v in range(256)]
    rows = [header.encode()]
    for lead, row in zip(first.tolist(), images.tolist()):
        rows.append(b"%d," % lead + b",".join([lut[v] for v in row]))
    payload = b"\n".join(rows) + b"\n"
    path = Path(path)
    return atomic_write_bytes(path, gzip.compress(payload, compresslevel=6, mtime=0)
                              if path.name.endswith(".gz") else payload)
