"""MKL's AVX2 path on AMD CPUs: chosen only where it helps, never over the user's choice, and the
matmuls it runs still compute what NumPy computes."""
import json
import os
import subprocess
import sys

import pytest

from paddle_cnn import _cpuinfo, _mkl

AMD_AVX2 = "processor\t: 0\nvendor_id\t: AuthenticAMD\nmodel name\t: AMD EPYC\nflags\t\t: fpu sse sse2 avx avx2 fma\n"
AMD_OLD = "processor\t: 0\nvendor_id\t: AuthenticAMD\nflags\t\t: fpu sse sse2 avx\n"
INTEL = "processor\t: 0\nvendor_id\t: GenuineIntel\nflags\t\t: fpu avx avx2 avx512f amx_bf16\n"


@pytest.mark.parametrize("cpuinfo, environ, expected", [
    (AMD_AVX2, {}, "5"),
    (AMD_AVX2 + "\nprocessor\t: 1\n" + AMD_AVX2.split("\n", 1)[1], {"PATH": "/bin"}, "5"),  # every core listed
    (AMD_AVX2, {"MKL_DEBUG_CPU_TYPE": "2"}, None),  # the user's value stays
    (AMD_AVX2, {"MKL_DEBUG_CPU_TYPE": ""}, None),  # even an empty one
    (AMD_OLD, {}, None),  # no AVX2: MKL's AVX2 kernels would not run
    (INTEL, {}, None),  # MKL picks its best kernels on Intel by itself
    ("vendor_id\t: AuthenticAMD\n", {}, None),  # no flags line: nothing known, nothing set
    ("", {}, None),
    ("flags\t\t: avx2 ssse3\nvendor_id\t: AuthenticAMD\n", {}, "5"),  # order of the lines does not matter
    ("vendor_id\t: AuthenticAMD\nflags\t\t: avx2_fake avx512f\n", {}, None),  # whole words only
])
def test_the_avx2_path_is_chosen_for_amd_with_avx2_only(cpuinfo, environ, expected):
    assert _mkl.mkl_cpu_type(_cpuinfo.parse(cpuinfo), environ) == expected


def test_an_unreadable_cpuinfo_sets_nothing():
    assert _mkl.mkl_cpu_type(None, {}) is None


def test_the_model_name_and_flags_come_from_the_first_processor():
    two = AMD_AVX2 + "\nprocessor\t: 1\nvendor_id\t: GenuineIntel\nmodel name\t: Other\nflags\t: sse\n"
    cpu = _cpuinfo.parse(two.replace("\n", "\r\n"))  # CRLF too
    assert (cpu.vendor, cpu.model) == ("AuthenticAMD", "AMD EPYC") and cpu.has("avx2") and not cpu.has("av")
    assert _cpuinfo.parse("model name\t: X: with a colon\n").model == "X: with a colon"
    assert _cpuinfo.read("/nonexistent/cpuinfo") is None


def test_choose_sets_the_variable_from_the_file_and_leaves_an_unreadable_one_alone(tmp_path):
    info = tmp_path / "cpuinfo"
    info.write_text(AMD_AVX2)
    env = {}
    assert _mkl.choose_mkl_path(env, str(info)) == "5" and env == {"MKL_DEBUG_CPU_TYPE": "5"}
    assert "AVX2 kernels" in _mkl.describe(env)
    env = {"MKL_DEBUG_CPU_TYPE": "3"}
    assert _mkl.choose_mkl_path(env, str(info)) is None and env == {"MKL_DEBUG_CPU_TYPE": "3"}
    env = {}
    assert _mkl.choose_mkl_path(env, str(tmp_path / "missing")) is None and env == {}
    assert _mkl.describe(env) == "MKL: its own choice"


PROBE = """
import json, os
import numpy as np
import paddle_cnn, paddle
rng = np.random.default_rng(0)
a, b = rng.standard_normal((257, 1152), dtype=np.float32), rng.standard_normal((1152, 130), dtype=np.float32)
out = paddle.matmul(paddle.to_tensor(a), paddle.to_tensor(b)).numpy()
err = float(np.abs(out - a.astype(np.float64) @ b.astype(np.float64)).max())
print(json.dumps({"set": paddle_cnn.MKL_CPU_TYPE_SET, "env": os.environ.get("MKL_DEBUG_CPU_TYPE"), "err": err}))
"""


def _probe(env):
    done = subprocess.run([sys.executable, "-c", PROBE], env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout.strip().splitlines()[-1])


def test_importing_paddle_cnn_chooses_the_path_for_this_cpu_and_the_matmul_stays_right():
    env = {k: v for k, v in os.environ.items() if k != "MKL_DEBUG_CPU_TYPE"}
    expected = _mkl.mkl_cpu_type(_cpuinfo.read(), env)
    got = _probe(env)
    assert got["set"] == expected and got["env"] == expected
    assert got["err"] < 1e-2  # fp32 products of 1152 terms of size ~1: rounding is ~1e-4


def test_a_value_the_user_set_is_kept():
    got = _probe({**os.environ, "MKL_DEBUG_CPU_TYPE": "4"})
    assert got["set"] is None and got["env"] == "4" and got["err"] < 1e-2
