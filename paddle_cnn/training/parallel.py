"""Data-parallel jobs: ``--processes N`` relaunches a command under Paddle's launcher, and the few
collective helpers the trainer needs (rank, mean over processes, gathering evaluation outputs).

Inside the job every process runs the same command; :class:`~paddle_cnn.training.Trainer` shards
each global batch by rank and only rank 0 writes (see ``tests/test_distributed.py``).
"""
from __future__ import annotations

import argparse
import os
import subprocess
import sys
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np


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


def launch_environment(processes: int, device: str) -> Dict[str, str]:
    """The environment of a launched job. A CPU job (``--device cpu``, or ``auto`` without a GPU)
    hides the GPUs and asks for gloo, so a CUDA build does not pick NCCL for CPU tensors; a GPU job
    needs one visible GPU per process (Paddle's launcher otherwise dies with an IndexError)."""
    import paddle

    from ..errors import ConfigError

    env = dict(os.environ)
    cuda = paddle.is_compiled_with_cuda()
    gpus = paddle.device.cuda.device_count() if cuda else 0
    if device == "cpu" or (device == "auto" and gpus == 0):
        env["PADDLE_DISTRI_BACKEND"] = "gloo"
        if cuda:
            env["CUDA_VISIBLE_DEVICES"] = ""
        return env
    if processes > gpus:
        raise ConfigError(f"--processes {processes} needs one GPU per process, but {gpus} "
                          f"{'is' if gpus == 1 else 'are'} visible; use --processes {max(gpus, 1)}, or --device cpu "
                          "for CPU processes")
    return env


def relaunch(processes: int, script: Path, argv: Optional[Sequence[str]], device: str = "auto",
             log_dir: Path = LOG_DIR) -> Optional[int]:
    """Run ``script argv`` on ``processes`` processes and return the job's exit status; None when
    there is nothing to do (one process, or already inside a launched job)."""
    if processes < 1:
        raise ValueError(f"--processes must be >= 1, got {processes}")
    if processes == 1 or inside_launched_job():
        return None
    env = launch_environment(processes, device)
    args = _without_processes(sys.argv[1:] if argv is None else argv)
    cmd = [sys.executable, "-m", "paddle.distributed.launch", "--nproc_per_node", str(processes),
           "--max_restart", "0", "--log_dir", str(log_dir), str(script), *args]
    print(f"launching {processes} processes (worker logs in {log_dir})", flush=True)
    return subprocess.call(cmd, env=env)


def world() -> Tuple[int, int]:
    """(rank, number of processes) of this data-parallel job; (0, 1) outside one.

    Read from the launcher's environment (``python -m paddle.distributed.launch``): paddle.Model
    initialises the process group itself when it is built.
    """
    import paddle

    env = paddle.distributed.ParallelEnv()
    return int(env.rank), max(int(env.nranks), 1)


def is_main_process() -> bool:
    return world()[0] == 0


def mean_over_processes(values: List[float]) -> List[float]:
    """The means of ``values`` over the job's processes, in one all-reduce (themselves outside a job)."""
    import paddle

    n = world()[1]
    if n == 1:
        return list(values)
    t = paddle.to_tensor(values, dtype="float64")
    paddle.distributed.all_reduce(t)
    return [float(v) / n for v in t.numpy()]


def gather_rows(part: Optional[np.ndarray]) -> np.ndarray:
    """Every process's ``part`` (None for an empty share) concatenated in rank order.

    Evaluation shards a dataset by rank and gathers here rather than through
    ``paddle.Model.predict``, which all-gathers on CUDA only: the same code is then right on any
    device and any number of processes.
    """
    import paddle

    parts: List[Optional[np.ndarray]] = [part]
    if world()[1] > 1:
        parts = []
        paddle.distributed.all_gather_object(parts, part)
    parts = [p for p in parts if p is not None]
    if not parts:
        raise ValueError("nothing to gather: the dataset is empty")
    return np.concatenate(parts)


def share_saved_buffers(net) -> None:
    """Give every process rank 0's buffers (batch-norm running statistics), the ones its checkpoint
    saves, so a sharded evaluation judges the model that is saved (and ``paddle-cnn evaluate`` agrees)."""
    import paddle

    if world()[1] == 1:
        return
    for buffer in net.buffers():
        paddle.distributed.broadcast(buffer, src=0)
