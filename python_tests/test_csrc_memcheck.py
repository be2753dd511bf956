"""csrc/lif_core.cuh (shared by the CUDA and CPU kernels of snnkern._C) under AddressSanitizer and
UBSan: csrc_memcheck.cpp runs every option combination over exact-size buffers."""
import os
import shutil
import subprocess

import pytest

HERE = os.path.dirname(os.path.abspath(__file__))
CSRC = os.path.join(os.path.dirname(HERE), "csrc")


@pytest.mark.skipif(shutil.which("g++") is None and not os.environ.get("CI"), reason="needs g++")
def test_lif_core_is_memory_safe_under_asan(tmp_path):
    exe = tmp_path / "csrc_memcheck"
    build = subprocess.run(["g++", "-std=c++17", "-O1", "-g", "-fsanitize=address,undefined",
                            "-fno-sanitize-recover=all", "-fno-omit-frame-pointer", f"-I{CSRC}",
                            os.path.join(HERE, "csrc_memcheck.cpp"), "-o", str(exe)],
                           capture_output=True, text=True, timeout=300)
    if build.returncode and not os.environ.get("CI") and "asan" in build.stderr.lower():
        pytest.skip("this compiler has no AddressSanitizer runtime")  # CI must have it: there it fails
    assert build.returncode == 0, build.stderr[-4000:]
    env = {k: v for k, v in os.environ.items() if k != "LD_PRELOAD"}
    run = subprocess.run([str(exe)], capture_output=True, text=True, timeout=300, env=env)
    assert run.returncode == 0, (run.stdout + run.stderr)[-4000:]
    cases, failed = (int(w) for w in run.stdout.replace(",", "").split()[::2][:2])
    assert cases > 20000 and failed == 0, run.stdout
