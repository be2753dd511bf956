"""Compile every Triton kernel variant for real GPU targets, on a machine without a GPU.

The interpreter (TRITON_INTERPRET=1) proves what the kernels compute but not that they compile:
some constructs run in the interpreter and are rejected by the compiler.  This script compiles
the kernels to cubin for sm_80 and sm_90 and reports registers and stack (spills) per variant, as
JSON on stdout.  Run in a process without TRITON_INTERPRET (the test does this).
"""
import inspect
import itertools
import json
import os
import subprocess
import sys

import triton
from triton.backends.compiler import GPUTarget

from snnkern.ops import lif as L

CUOBJDUMP = os.path.join(os.path.dirname(triton.__file__), "backends", "nvidia", "bin", "cuobjdump")


def compile_variant(kernel, constexprs, num_warps, arch, dtype="fp32"):
    sig = {}
    for name in inspect.signature(kernel.fn).parameters:
        if name in constexprs:
            sig[name] = "constexpr"
        elif name.endswith("_ptr"):
            sig[name] = f"*{dtype}" if name in ("x_ptr", "s_ptr", "gs_ptr", "gx_ptr") else "*fp32"
        elif name in ("T", "N"):
            sig[name] = "i32"
        else:
            sig[name] = "fp32"
    src = triton.compiler.ASTSource(fn=kernel, signature=sig, constexprs=constexprs)
    compiled = triton.compile(src, target=GPUTarget("cuda", arch, 32),
                              options={"num_warps": num_warps, "enable_fp_fusion": False})
    usage = {}
    if os.path.exists(CUOBJDUMP):
        path = f"/tmp/snnkern_check_{os.getpid()}.cubin"
        with open(path, "wb") as f:
            f.write(compiled.asm["cubin"])
        out = subprocess.run([CUOBJDUMP, "--dump-resource-usage", path], capture_output=True, text=True).stdout
        os.remove(path)
        line = [l for l in out.splitlines() if "REG:" in l][-1]
        usage = {k: int(v) for k, v in (f.split(":") for f in line.split()[:2])}
    return usage


def variants():
    for delayed, reset, dtype in itertools.product([True, False], [0, 1, 2], ["fp32", "bf16"]):
        fwd = dict(CHUNK=L.MAX_CHUNK, DELAYED=delayed, RESET=reset, DECAY_INPUT=not delayed, HAS_V0=True,
                   BETA_MODE=2, THR_MODE=1, SAVE_CKPT=True, STORE_V=True, BLOCK=L.FWD_BLOCK)
        yield "fwd", L._lif_fwd_kernel, fwd, L.FWD_WARPS, dtype
        for grads in (True, False):
            bwd = dict(CHUNK=L.MAX_CHUNK, DELAYED=delayed, RESET=reset, DECAY_INPUT=not delayed, DETACH=delayed,
                       SURROGATE=0 if delayed else 1, HAS_V0=True, BETA_MODE=2, THR_MODE=2,
                       HAS_GS=True, HAS_GV=True, HAS_GVS=grads, STORE_GV0=grads, BETA_GRAD=grads, THR_GRAD=grads,
                       BLOCK=L.BWD_BLOCK)
            yield "bwd", L._lif_bwd_kernel, bwd, L.BWD_WARPS, dtype


def main():
    results = []
    for arch in (80, 90):
        for kind, kernel, consts, warps, dtype in variants():
            usage = compile_variant(kernel, consts, warps, arch, dtype)
            results.append({"kernel": kind, "arch": arch, "dtype": dtype, "delayed": consts["DELAYED"],
                            "reset": consts["RESET"], "param_grads": consts.get("BETA_GRAD"), **usage})
    json.dump(results, sys.stdout)


if __name__ == "__main__":
    main()
