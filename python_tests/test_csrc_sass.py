"""The C++/CUDA LIF kernels' machine code, read from the built extension (sm_90 SASS, no GPU needed):
the backward issues every load of a chunk before the chunk's first store and keeps enough bytes in
flight at its occupancy, like the Triton kernels (test_kernel_compile.py); nothing spills.

Before this schedule (loads of grad_spikes/grad_v_seq in the reverse walk, each behind the previous
step's grad_x store) the same check read 174 loads between stores and 90 registers in every
backward variant: the guard below fails on that kernel."""
import glob
import os
import re
import subprocess
import sys

import pytest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import sass_model  # noqa: E402

triton = pytest.importorskip("triton")
CUOBJDUMP = os.path.join(os.path.dirname(triton.__file__), "backends", "nvidia", "bin", "cuobjdump")
THREADS = 256  # kThreads in csrc/snnkern_ops.cu


def _kernels() -> dict:
    import snnkern

    libs = glob.glob(os.path.join(os.path.dirname(snnkern.__file__), "_C*.so"))
    if not libs or not os.path.exists(CUOBJDUMP):
        pytest.skip("needs the built extension snnkern._C and Triton's bundled cuobjdump")
    sass = subprocess.run([CUOBJDUMP, "-sass", "-arch", "sm_90", libs[0]], capture_output=True, text=True).stdout
    usage = subprocess.run([CUOBJDUMP, "-res-usage", "-arch", "sm_90", libs[0]], capture_output=True, text=True).stdout
    if "Function : " not in sass:
        pytest.skip("the extension holds no sm_90 machine code (built for another architecture)")
    resources = {m.group(1): (int(m.group(2)), int(m.group(3)))
                 for m in re.finditer(r"Function (\S+):\s*\n\s*REG:(\d+) STACK:(\d+)", usage)}
    out = {}
    for block in sass.split("Function : ")[1:]:
        name = block.split("\n", 1)[0].strip()
        kind = re.search(r"(lif_fwd_kernel|lif_bwd_kernel)I(\w+?)EEvll", name)
        if kind:
            regs, stack = resources[name]
            out[(kind.group(1), kind.group(2))] = (sass_model.analyze(block, regs, THREADS // 32), regs, stack)
    assert out, "no LIF kernel found in the extension's SASS"
    return out


def test_cpp_backward_loads_its_chunk_before_storing_and_keeps_bytes_in_flight():
    kernels = _kernels()
    backward = {k: v for k, v in kernels.items() if k[0] == "lif_bwd_kernel"}
    assert len(backward) == 3  # fp32, bf16, fp16
    for (_, types), (a, regs, stack) in backward.items():
        assert stack == 0, (types, "spills")
        assert a["loads_between_stores"] == 0, (types, a)
        assert a["warps_per_sm"] >= 16, (types, regs)  # __launch_bounds__(256, 2): <= 128 registers
        assert a["kb_in_flight_per_sm"] >= 12, (types, a)

