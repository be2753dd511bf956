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
from snnkern.ops import spike_linear as SL
from snnkern.ops import spike_pack as SP

CUOBJDUMP = os.path.join(os.path.dirname(triton.__file__), "backends", "nvidia", "bin", "cuobjdump")


INT_ARGS = ("T", "N", "M", "K", "W", "WM", "M_BUCKET")


def compile_variant(kernel, constexprs, num_warps, arch, dtype="fp32", pointers=None, num_stages=3):
    """pointers: {argument: element type} for pointers that are not fp32 (LIF: x, spikes and their grads
    take ``dtype``)."""
    pointers = pointers if pointers is not None else {n: dtype for n in ("x_ptr", "s_ptr", "gs_ptr", "gx_ptr")}
    sig = {}
    for name in inspect.signature(kernel.fn).parameters:
        if name in constexprs:
            sig[name] = "constexpr"
        elif name.endswith("_ptr"):
            sig[name] = "*" + pointers.get(name, "fp32")
        elif name in INT_ARGS:
            sig[name] = "i32"
        else:
            sig[name] = "fp32"
    src = triton.compiler.ASTSource(fn=kernel, signature=sig, constexprs=constexprs)
    compiled = triton.compile(src, target=GPUTarget("cuda", arch, 32),
                              options={"num_warps": num_warps, "num_stages": num_stages, "enable_fp_fusion": False})
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
                   BETA_MODE=2, THR_MODE=1, SAVE_CKPT=True, STORE_V=True, PACK=False, BLOCK=L.FWD_BLOCK)
        yield "fwd", L._lif_fwd_kernel, fwd, L.FWD_WARPS, dtype
        if reset == 1:  # packed spikes out (inference: no checkpoints, no membrane sequence)
            packed = dict(fwd, SAVE_CKPT=False, STORE_V=False, PACK=True)
            yield "fwd_packed", L._lif_fwd_kernel, packed, L.FWD_WARPS, dtype
        for grads in (True, False):
            bwd = dict(CHUNK=L.MAX_CHUNK, DELAYED=delayed, RESET=reset, DECAY_INPUT=not delayed, DETACH=delayed,
                       SURROGATE=0 if delayed else 1, HAS_V0=True, BETA_MODE=2, THR_MODE=2,
                       HAS_GS=True, HAS_GV=True, HAS_GVS=grads, STORE_GV0=grads, BETA_GRAD=grads, THR_GRAD=grads,
                       BLOCK=L.BWD_BLOCK)
            yield "bwd", L._lif_bwd_kernel, bwd, L.BWD_WARPS, dtype


def spike_variants():
    """(kind, kernel, constexprs, warps, dtype, pointers, stages, tile config index)"""
    for i, (bm, bn, bk, warps, stages) in enumerate(SL.TILE_CONFIGS):  # every shape the autotuner may pick
        tile = dict(BLOCK_M=bm, BLOCK_N=bn, BLOCK_K=bk)
        for wdtype, parts in (("bf16", 1), ("fp16", 1), ("bf16", 3)):
            out = "fp32" if parts == 3 else wdtype
            yield ("spike_tiles", SL._spike_mm_tiles_kernel, dict(PARTS=parts, HAS_BIAS=True, UPCAST_DOT=False, **tile),
                   warps, wdtype, {"p_ptr": "i32", "w_ptr": wdtype, "b_ptr": out, "y_ptr": out}, stages, i)
        for gdtype, split in (("fp32", True), ("bf16", False), ("fp16", False)):
            yield ("spike_grad_w_tiles", SL._spike_grad_w_tiles_kernel, dict(SPLIT=split, UPCAST_DOT=False, **tile),
                   warps, gdtype, {"p_ptr": "i32", "g_ptr": gdtype, "gw_ptr": gdtype}, stages, i)
    yield ("transpose_bits", SP._transpose_bits_kernel, dict(BLOCK_K=SP.TRANSPOSE_BLOCK_K), 4, "i32",
           {"p_ptr": "i32", "q_ptr": "i32"}, 3, None)
    for wdtype in ("fp32", "bf16"):
        yield ("spike_gather", SL._spike_mm_gather_kernel, dict(HAS_BIAS=True, BLOCK_N=SL.GATHER_N),
               SL.GATHER_WARPS, wdtype, {"p_ptr": "i32", "wt_ptr": wdtype, "b_ptr": wdtype, "y_ptr": wdtype}, 3, None)
    for sdtype in ("fp32", "bf16", "u8"):
        yield ("pack", SP._pack_kernel, dict(BLOCK_W=SP.PACK_BLOCK_W), 4, sdtype, {"s_ptr": sdtype, "p_ptr": "i32"},
               3, None)
        yield ("unpack", SP._unpack_kernel, dict(BLOCK_W=SP.PACK_BLOCK_W), 4, sdtype, {"s_ptr": sdtype, "p_ptr": "i32"},
               3, None)


def main():
    results = []
    for arch in (80, 90):
        for kind, kernel, consts, warps, dtype in variants():
            pointers = {n: dtype for n in ("x_ptr", "gs_ptr", "gx_ptr")} | {"s_ptr": "i32" if consts.get("PACK") else dtype}
            usage = compile_variant(kernel, consts, warps, arch, dtype, pointers)
            results.append({"kernel": kind, "arch": arch, "dtype": dtype, "delayed": consts["DELAYED"],
                            "reset": consts["RESET"], "param_grads": consts.get("BETA_GRAD"), **usage})
        for kind, kernel, consts, warps, dtype, pointers, stages, config in spike_variants():
            usage = compile_variant(kernel, consts, warps, arch, dtype, pointers, stages)
            results.append({"kernel": kind, "arch": arch, "dtype": dtype, "parts": consts.get("PARTS"),
                            "split": consts.get("SPLIT"), "config": config, **usage})
    json.dump(results, sys.stdout)


if __name__ == "__main__":
    main()
