"""Compile every Triton kernel variant for real GPU targets, on a machine without a GPU, and read its
machine code.

The interpreter (TRITON_INTERPRET=1) proves what the kernels compute but not that they compile, nor
how fast the compiled code can be.  This script compiles each kernel to cubin for sm_80 and sm_90,
**specialized as a real launch specializes it** (pointers from torch allocations are 16-byte aligned;
integer arguments carry Triton's divisibility-by-16 hint where a typical call has it), and reports per
variant: registers and stack (spills), and from the sm_90 SASS the access widths, the hot loop's load
windows, loads waiting behind stores, occupancy and the estimated bytes in flight (``sass_model.py``).
JSON on stdout; with ``--table`` a readable table on stderr.  Run in a process without
TRITON_INTERPRET (the test does this).
"""
import inspect
import itertools
import json
import os
import subprocess
import sys

import triton
from triton.backends.compiler import GPUTarget

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import gather_walk_baseline  # noqa: E402
import sass_model  # noqa: E402
import spike_tiles_baseline  # noqa: E402

from snnkern.ops.lif import kernels as L  # noqa: E402
from snnkern.ops.lif.launch import forward_schedule  # noqa: E402
from snnkern.ops.lif.spec import MAX_CHUNK  # noqa: E402
from snnkern.ops import spike_linear as SL  # noqa: E402
from snnkern.ops import spike_pack as SP  # noqa: E402

BIN = os.path.join(os.path.dirname(triton.__file__), "backends", "nvidia", "bin")
CUOBJDUMP = os.path.join(BIN, "cuobjdump")

INT_ARGS = ("T", "N", "N_VECS", "M", "K", "W", "WM", "M_BUCKET", "NBLK", "KS", "NS", "beta_div", "beta_period",
            "thr_div", "thr_period")


def compile_variant(kernel, constexprs, num_warps, arch, dtype="fp32", pointers=None, num_stages=3, div16=(),
                    sass_hook=None, ones=()):
    """pointers: {argument: element type} for pointers that are not fp32 (LIF: x, spikes and their grads
    take ``dtype``). Every pointer gets the 16-byte alignment hint of a torch allocation; the integer
    arguments named in ``div16`` get the divisible-by-16 hint, those in ``ones`` are the constant 1 (a
    launch's JIT makes an integer argument equal to 1 a constexpr: code that treats it as a tensor, e.g.
    ``N.to(tl.int64)``, then fails to compile). Returns registers/stack and, when the bundled cuobjdump
    exists, the SASS analysis (plus ``sass_hook(sass)``'s fields, if given)."""
    pointers = pointers if pointers is not None else {n: dtype for n in ("x_ptr", "s_ptr", "gs_ptr", "gx_ptr")}
    constexprs = {**constexprs, **{name: 1 for name in ones}}
    sig, attrs = {}, {}
    for i, name in enumerate(inspect.signature(kernel.fn).parameters):
        if name in constexprs:
            sig[name] = "constexpr"
        elif name.endswith("_ptr"):
            sig[name] = "*" + pointers.get(name, "fp32")
            attrs[(i,)] = [["tt.divisibility", 16]]
        elif name in INT_ARGS:
            sig[name] = "i32"
            if name in div16:
                attrs[(i,)] = [["tt.divisibility", 16]]
        else:
            sig[name] = "fp32"
    src = triton.compiler.ASTSource(fn=kernel, signature=sig, constexprs=constexprs, attrs=attrs)
    compiled = triton.compile(src, target=GPUTarget("cuda", arch, 32),
                              options={"num_warps": num_warps, "num_stages": num_stages, "enable_fp_fusion": False})
    usage = {}
    if os.path.exists(CUOBJDUMP):
        path = f"/tmp/snnkern_check_{os.getpid()}.cubin"
        with open(path, "wb") as f:
            f.write(compiled.asm["cubin"])
        out = subprocess.run([CUOBJDUMP, "--dump-resource-usage", path], capture_output=True, text=True).stdout
        line = [l for l in out.splitlines() if "REG:" in l][-1]
        usage = {k: int(v) for k, v in (f.split(":") for f in line.split()[:2])}
        if arch == 90:  # the machine code the guards read: the target of the GPU runs
            sass = subprocess.run([CUOBJDUMP, "-sass", path], capture_output=True, text=True).stdout
            usage.update(sass_model.analyze(sass, usage["REG"], num_warps))
            if sass_hook is not None:
                usage.update(sass_hook(sass))
        os.remove(path)
    return usage


def variants():
    """(kind, kernel, constexprs, warps, dtype, div16) of the LIF kernels."""
    for delayed, reset, dtype in itertools.product([True, False], [0, 1, 2], ["fp32", "bf16"]):
        fwd = dict(CHUNK=MAX_CHUNK, DELAYED=delayed, RESET=reset, DECAY_INPUT=not delayed, HAS_V0=True,
                   BETA_MODE=2, THR_MODE=1, SAVE_CKPT=True, STORE_V=True, PACK=False, BLOCK=L.FWD_BLOCK,
                   VEC=L.FWD_VEC)
        # N a multiple of FWD_VEC but not of 16 (e.g. 1000 neurons): VEC alone must give the wide accesses
        yield "fwd", L.lif_fwd_kernel, fwd, L.FWD_WARPS, dtype, ()
        # inference (no checkpoints, no membrane sequence), with the schedule the launcher picks for it
        vec, warps = forward_schedule(4 if dtype == "fp32" else 2, False, L.FWD_BLOCK)
        infer = dict(fwd, SAVE_CKPT=False, STORE_V=False, VEC=vec)
        yield "fwd_infer", L.lif_fwd_kernel, infer, warps, dtype, ()
        if reset == 1:
            yield "fwd_odd_n", L.lif_fwd_kernel, dict(fwd, VEC=1), L.FWD_WARPS, dtype, ()
            # learnable per-channel beta and threshold, read in place (mode 3)
            yield "fwd_channel", L.lif_fwd_kernel, dict(fwd, BETA_MODE=3, THR_MODE=3), L.FWD_WARPS, dtype, ()
            # packed spikes out (inference: no checkpoints, no membrane sequence); N a multiple of 32
            yield "fwd_packed", L.lif_fwd_kernel, dict(infer, PACK=True), warps, dtype, ()
        # plain; learnable per-channel beta and threshold (read in place, mode 3); and everything at once
        # (per-neuron parameters, + v0 and membrane grads)
        for kind, learn, everything in (("bwd", False, False), ("bwd_learn", True, False), ("bwd_all", True, True)):
            bwd = dict(CHUNK=MAX_CHUNK, DELAYED=delayed, RESET=reset, DECAY_INPUT=not delayed, DETACH=delayed,
                       SURROGATE=0 if delayed else 1, HAS_V0=True,
                       BETA_MODE=(2 if everything else 3) if learn else 0, THR_MODE=(2 if everything else 3) if learn else 0, HAS_GS=True, HAS_GV=True, HAS_GVS=everything,
                       STORE_GV0=everything, BETA_GRAD=learn, THR_GRAD=learn, BLOCK=L.BWD_BLOCK)
            yield kind, L.lif_bwd_kernel, bwd, L.BWD_WARPS, dtype, ()


def gather_load_windows(sass: str) -> dict:
    """The gather's hot loop as load windows (``sass_model.load_windows``' rule: loads issued back to back
    before any instruction reads one of them), counted in instructions: per window, how many global loads
    and how many of them 16-byte (the gather's weight-row loads are its only 16-byte ones; its spike words
    and indices are 4-byte)."""
    body = sass_model.loop_body(sass_model.parse(sass))
    windows, pending, loads, wide = [], set(), 0, 0
    for _addr, op, args in body:
        regs = [int(r) for r in sass_model._REG.findall(args)]
        if op.startswith("LDG"):
            if set(regs[1:]) & pending:
                windows.append((loads, wide))
                pending, loads, wide = set(), 0, 0
            pending |= set(range(regs[0], regs[0] + max(sass_model.access_bytes(op) // 4, 1)))
            loads, wide = loads + 1, wide + (sass_model.access_bytes(op) == 16)
            continue
        writes_first = not op.startswith("STG") and args.startswith("R")
        if set(regs[1:] if writes_first else regs) & pending:
            windows.append((loads, wide))
            pending, loads, wide = set(), 0, 0
    if loads:
        windows.append((loads, wide))
    windows = [w for w in windows if w[0]]
    return {"window_loads": [w[0] for w in windows], "window_wide_loads": [w[1] for w in windows]}


def tiles_hook(operand_bytes: int):
    """sass_model.async_pipeline plus the bytes per thread of the operand tile that must come by cp.async
    (weight parts in the forward, dY in grad_weight)."""
    return lambda sass: {**sass_model.async_pipeline(sass), "operand_bytes": operand_bytes}


def spike_variants():
    """(kind, kernel, constexprs, warps, dtype, pointers, stages, tile config index or variant name[,
    compile_variant options])"""
    sizes = {"bf16": 2, "fp16": 2, "fp32": 4}
    for precision, configs in SL.TILE_CONFIGS.items():  # every shape the autotuner may pick
        for i, (bm, bn, bk, warps, stages) in enumerate(configs):
            tile = dict(BLOCK_M=bm, BLOCK_N=bn, BLOCK_K=bk)
            threads = 32 * warps
            weights = (("bf16", 3),) if precision == "fp32" else (("bf16", 1), ("fp16", 1))
            grads = (("fp32", True),) if precision == "fp32" else (("bf16", False), ("fp16", False))
            # the shipped kernels with K and N multiples of 16 (as a typical layer's widths specialize them), and
            # with odd widths (no hint; the launcher pads the rows the kernels load to 8 elements, so they are
            # pipelined alike); and the kernels they replaced (``baseline:``, typical widths; not shipped), which
            # the pipelining guard must reject
            for config, module, div16 in ((f"{precision}:{i}", SL, ("K", "N")), (f"{precision}:{i}:odd", SL, ()),
                                          (f"baseline:{precision}:{i}", spike_tiles_baseline, ("K", "N"))):
                sched = {"sched_ptr": "i32"} if module is SL else {}
                for wdtype, parts in weights:
                    out = "fp32" if parts == 3 else wdtype
                    yield ("spike_tiles", module._spike_mm_tiles_kernel,
                           dict(PARTS=parts, HAS_BIAS=True, UPCAST_DOT=False, **tile), warps, wdtype,
                           {"p_ptr": "i32", "w_ptr": wdtype, "b_ptr": out, "y_ptr": out, **sched}, stages, config,
                           {"div16": div16, "sass_hook": tiles_hook(bk * bn * 2 * parts // threads)})
                for gdtype, split in grads:
                    yield ("spike_grad_w_tiles", module._spike_grad_w_tiles_kernel,
                           dict(SPLIT=split, UPCAST_DOT=False, **tile), warps, gdtype,
                           {"p_ptr": "i32", "g_ptr": gdtype, "gw_ptr": gdtype, **sched}, stages, config,
                           {"div16": div16, "sass_hook": tiles_hook(bm * bn * sizes[gdtype] // threads)})
    yield ("tiles_schedule", SP._row_any_kernel, dict(ROWS=SP.SCHED_ROWS, CHUNK_W=SP.SCHED_CHUNK_W), 4, "i32",
           {"p_ptr": "i32", "flag_ptr": "i32", "cnt_ptr": "i32", "union_ptr": "i32"}, 3, None, {})
    yield ("tiles_schedule", SP._schedule_kernel,
           dict(ROWS=SP.SCHED_COMPACT, SUB=SP.SCHED_ROWS, BLOCK_C=SP.SCHED_COUNTS, CHUNK_W=SP.SCHED_CHUNK_W), 4, "i32",
           {"flag_ptr": "i32", "cnt_ptr": "i32", "sched_ptr": "i32"}, 3, None, {})
    # the one-program schedule: every tile a launch may pick (pow2 rows up to SP.SCHED_ONE_ROWS)
    for m in (2 ** e for e in range(SP.SCHED_ONE_MIN_ROWS.bit_length() - 1, SP.SCHED_ONE_ROWS.bit_length())):
        rows, chunk = SP._sched_one_shape(m)
        yield ("tiles_schedule", SP._schedule_one_kernel, dict(ROWS=rows, CHUNK_W=chunk), SP.SCHED_ONE_WARPS, "i32",
               {"p_ptr": "i32", "sched_ptr": "i32"}, 3, f"one:{rows}x{chunk}", {})
    yield ("transpose_bits", SP._transpose_bits_kernel, dict(BLOCK_K=SP.TRANSPOSE_BLOCK_K, WORDS=SP.TRANSPOSE_WORDS), 4, "i32",
           {"p_ptr": "i32", "q_ptr": "i32"}, 3, None)
    # the gather algorithm: its hot kernel per weight dtype (N a multiple of 16, as a typical layer's width
    # specializes it), its active-input compaction, and the bit-walking kernel it replaced (a baseline the
    # load-window guard must reject; not shipped)
    gather = {"div16": ("N",), "sass_hook": gather_load_windows}
    for wdtype in ("fp32", "bf16", "fp16"):
        yield ("spike_gather", SL._spike_mm_gather_kernel,
               dict(HAS_BIAS=True, FMA_DOT=wdtype == "fp32", ROWS=SL.GATHER_ROWS, BLOCK_N=SL.GATHER_N,
                    BLOCK_I=SL.GATHER_I), SL.GATHER_WARPS, wdtype,
               {"p_ptr": "i32", "idx_ptr": "i32", "cnt_ptr": "i32", "wt_ptr": wdtype, "b_ptr": wdtype, "y_ptr": wdtype},
               SL.GATHER_STAGES, "rows", gather)
    yield ("spike_gather", SP._active_inputs_kernel, dict(ROWS=SL.GATHER_ROWS, CHUNK_W=SP.ACTIVE_CHUNK_W), 4, "i32",
           {"p_ptr": "i32", "idx_ptr": "i32", "cnt_ptr": "i32"}, 3, "active_inputs", {})
    for wdtype in ("fp32", "bf16"):
        yield ("spike_gather", gather_walk_baseline.gather_walk_kernel,
               dict(HAS_BIAS=True, BLOCK_N=gather_walk_baseline.BLOCK_N), gather_walk_baseline.WARPS, wdtype,
               {"p_ptr": "i32", "wt_ptr": wdtype, "b_ptr": wdtype, "y_ptr": wdtype}, 3, "walk_baseline", gather)
    for sdtype in ("fp32", "bf16", "u8"):
        yield ("pack", SP._pack_kernel, dict(BLOCK_W=SP.PACK_BLOCK_W), 4, sdtype, {"s_ptr": sdtype, "p_ptr": "i32"},
               3, None)
        yield ("unpack", SP._unpack_kernel, dict(BLOCK_W=SP.PACK_BLOCK_W), 4, sdtype, {"s_ptr": sdtype, "p_ptr": "i32"},
               3, None)


def lif_pointers(consts, dtype):
    """The element types of a LIF kernel's pointers that are not fp32: x and the gradients in ``dtype``, the
    spikes too unless packed (int32 words)."""
    return {n: dtype for n in ("x_ptr", "gs_ptr", "gx_ptr")} | {"s_ptr": "i32" if consts.get("PACK") else dtype}


def main():
    results = []
    for arch in (80, 90):
        for kind, kernel, consts, warps, dtype, div16 in variants():
            usage = compile_variant(kernel, consts, warps, arch, dtype, lif_pointers(consts, dtype), div16=div16)
            results.append({"kernel": kind, "arch": arch, "dtype": dtype, "delayed": consts["DELAYED"],
                            "reset": consts["RESET"], "param_grads": consts.get("BETA_GRAD"), **usage})
        for kind, kernel, consts, warps, dtype, pointers, stages, config, *options in spike_variants():
            options = options[0] if options else {}
            usage = compile_variant(kernel, consts, warps, arch, dtype, pointers, stages, **options)
            results.append({"kernel": kind, "arch": arch, "dtype": dtype, "parts": consts.get("PARTS"),
                            "split": consts.get("SPLIT"), "config": config, **usage})
    results += int_arguments_equal_to_one()
    json.dump(results, sys.stdout)
    if "--table" in sys.argv:
        print_table(results, sys.stderr)


def int_arguments_equal_to_one():
    """Each shipped kernel (first variant of each), sm_90, with every integer argument the constant 1, as a
    launch with N == 1 (a one-output layer), M == 1 or T == 1 specializes it: {"kernel", "config": "ints=1",
    "error"} with the compile error, or None."""
    seen, out = set(), []
    lif = ((kind, k, c, w, d, lif_pointers(c, d), 3, None) for kind, k, c, w, d, _ in variants())
    for kind, kernel, consts, warps, dtype, pointers, stages, _config, *options in itertools.chain(lif,
                                                                                                  spike_variants()):
        options = options[0] if options else {}
        if kernel in seen or not kernel.fn.__module__.startswith("snnkern."):  # baselines are not shipped
            continue
        seen.add(kernel)
        ones = [n for n in inspect.signature(kernel.fn).parameters if n in INT_ARGS and n not in consts]
        try:
            compile_variant(kernel, consts, warps, 90, dtype, pointers, stages, ones=ones,
                            div16=tuple(n for n in options.get("div16", ()) if n not in ones))
            error = None
        except Exception as e:  # noqa: BLE001 - recorded for the test to show
            error = f"{type(e).__name__}: {str(e)[-400:]}"
        out.append({"kernel": kind, "arch": 90, "dtype": dtype, "config": "ints=1", "ones": ones, "error": error})
    return out


def print_table(results, out):
    """The bytes-in-flight model per sm_90 variant: registers -> warps/SM -> loads in flight -> KB/SM."""
    cols = ("kernel", "dtype", "delayed", "reset", "param_grads", "config", "REG", "STACK", "load_bytes", "store_bytes",
            "loop_load_windows", "loads_between_stores", "warps_per_sm", "bytes_in_flight_per_thread",
            "kb_in_flight_per_sm", "loop_async_bytes", "loop_async_wait")
    print("  ".join(cols), file=out)
    for r in results:
        if r["arch"] == 90:
            cell = lambda v: "/".join(map(str, v)) if isinstance(v, list) else str(v)  # noqa: E731
            print("  ".join(cell(r.get(c, "")) for c in cols), file=out)


if __name__ == "__main__":
    main()
