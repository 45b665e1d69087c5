"""Peak memory of preparing each hyperspectral scene for HybridSN (the paper's protocol) and cutting
one training batch, on a synthetic cube of the scene's real size and the real ground truth if given.

    python benchmarks/scene_memory.py [--gt-dir DIR] [--batch 256] [--save JSON]

Each scene runs in a fresh process; peak RSS (ru_maxrss) is printed beside what materialising every
window as float32 would take. ``--gt-dir`` holds the official *_gt.mat files (the cubes are not
needed: their size is the scene's, their values random); without it every pixel is labelled.
"""
from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path
from typing import List, Optional

from paddle_cnn import report

COLUMNS = [("scene", "scene", "{}"), ("pixels x bands", "size", "{}"), ("labelled", "labelled", "{:,}"),
           ("peak RSS, MB", "peak_mb", "{:,.0f}"), ("of which imports, MB", "after_imports_mb", "{:,.0f}"),
           ("all windows as float32, MB", "all_windows_mb", "{:,.0f}")]
SIZES = {"indian-pines": (145, 145, 200), "pavia-university": (610, 340, 103), "salinas": (512, 217, 204)}

CHILD = r"""
import json, resource, sys
import numpy as np
from paddle_cnn.datasets import get_dataset, hyperspectral as H
name, gt_dir, batch = sys.argv[1], sys.argv[2], int(sys.argv[3])
info = get_dataset(name)
h, w, b = {sizes}[name]
if gt_dir:
    gt = H.read_mat(f"{{gt_dir}}/{{info.file('ground-truth').name}}", info.file("ground-truth").key).astype(np.int64)
else:
    gt = np.random.default_rng(0).integers(1, info.num_classes + 1, (h, w))
base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
cube = np.random.default_rng(1).integers(0, 8000, (h, w, b)).astype(np.float32)  # as load_scene returns it
scene = H.prepare_scene(cube, gt, info.shape[1], info.shape[2])
train, val, test = H.split_scene(scene, 0.3, 10, 0, "synthetic")
train.batch(np.arange(min(batch, len(train))))
peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
n = len(scene.labels)
print(json.dumps({{"scene": name, "pixels": h * w, "bands": b, "labelled": n, "peak_mb": peak / 1024,
                  "after_imports_mb": base / 1024,
                  "all_windows_mb": n * info.shape[1] * info.shape[2] * info.shape[3] * 4 / 2**20}}))
"""


def main(argv: Optional[List[str]] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--gt-dir", default="", help="folder holding the official *_gt.mat files")
    parser.add_argument("--batch", type=int, default=256)
    parser.add_argument("--save", type=Path, default=None, metavar="JSON",
                        help="also save the table (python -m paddle_cnn.report JSON prints it again)")
    args = parser.parse_args(argv)
    rows = []
    for name in SIZES:
        out = subprocess.run([sys.executable, "-c", CHILD.format(sizes=SIZES), name, args.gt_dir, str(args.batch)],
                             capture_output=True, text=True, check=True).stdout
        r = json.loads(out.strip().splitlines()[-1])
        rows.append(dict(r, size=f"{r['pixels']:,} x {r['bands']}"))
    if args.save is not None:
        command = " ".join(["python benchmarks/scene_memory.py", *(argv if argv is not None else sys.argv[1:])])
        args.save.parent.mkdir(parents=True, exist_ok=True)
        args.save.write_text(json.dumps({"command": command, "columns": COLUMNS, "rows": rows}, indent=2) + "\n")
    print(report.markdown_table(rows, COLUMNS))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
