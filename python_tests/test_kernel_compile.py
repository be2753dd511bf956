"""The Triton kernels compile for sm_80 and sm_90 (no GPU needed), without register spills."""
import json
import os
import subprocess
import sys

import pytest

from snnkern.ops import HAS_TRITON

HERE = os.path.dirname(os.path.abspath(__file__))


@pytest.mark.skipif(not HAS_TRITON, reason="needs triton")
def test_kernels_compile_for_real_targets():
    env = {k: v for k, v in os.environ.items() if k != "TRITON_INTERPRET"}  # compile, do not interpret
    out = subprocess.run([sys.executable, os.path.join(HERE, "kernel_compile_check.py")], capture_output=True,
                         text=True, env=env, timeout=900)
    assert out.returncode == 0, out.stderr[-4000:]
    results = json.loads(out.stdout)
    kinds = ("fwd", "fwd_packed", "bwd", "spike_tiles", "spike_grad_w_tiles", "transpose_bits", "spike_gather", "pack", "unpack")
    assert {(r["kernel"], r["arch"]) for r in results} == {(k, a) for k in kinds for a in (80, 90)}
    for r in results:
        if "STACK" not in r:
            continue  # cuobjdump missing: compiling is still proven
        if r.get("config"):  # shapes only the GPU autotuner may pick: compiling is what must hold; it times them
            continue
        if r["kernel"] == "bwd" and r["param_grads"]:  # learnable beta/threshold keep the inputs too
            assert r["STACK"] <= 16, f"register spill in {r}"
        elif r["kernel"] == "spike_tiles" and r["parts"] == 3:  # fp32 weights: three operand tiles
            assert r["STACK"] <= 64, f"register spill in {r}"
        else:
            assert r["STACK"] == 0, f"register spill in {r}"
