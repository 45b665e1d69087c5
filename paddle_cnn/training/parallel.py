"""Run a command as a data-parallel job: ``--processes N`` relaunches it under Paddle's launcher.

Inside the job every process runs the same command; :class:`~paddle_cnn.training.Trainer` shards
each global batch by rank and only rank 0 writes (see ``tests/test_distributed.py``).
"""
from __future__ import annotations

import argparse
import os
import subprocess
import sys
from pathlib import Path
from typing import List, Optional, Sequence


def add_processes_arg(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--processes", type=int, default=1, metavar="N",
                        help="data-parallel processes (CPU processes here, one per GPU on CUDA machines); "
                             "the run is relaunched with python -m paddle.distributed.launch (default: 1)")


def inside_launched_job() -> bool:
    return "PADDLE_TRAINERS_NUM" in os.environ or "PADDLE_TRAINER_ID" in os.environ


def _without_processes(argv: Sequence[str]) -> List[str]:
    out, skip = [], False
    for token in argv:
        if skip:
            skip = False
        elif token == "--processes":
            skip = True
        elif not token.startswith("--processes="):
            out.append(token)
    return out


LOG_DIR = Path("runs") / "launch_logs"  # the launcher's per-rank worker logs


def relaunch(processes: int, script: Path, argv: Optional[Sequence[str]], log_dir: Path = LOG_DIR) -> Optional[int]:
    """Run ``script argv`` on ``processes`` processes and return the job's exit status; None when
    there is nothing to do (one process, or already inside a launched job)."""
    if processes < 1:
        raise ValueError(f"--processes must be >= 1, got {processes}")
    if processes == 1 or inside_launched_job():
        return None
    args = _without_processes(sys.argv[1:] if argv is None else argv)
    cmd = [sys.executable, "-m", "paddle.distributed.launch", "--nproc_per_node", str(processes),
           "--max_restart", "0", "--log_dir", str(log_dir), str(script), *args]
    print(f"launching {processes} processes (worker logs in {log_dir})", flush=True)
    return subprocess.call(cmd)
