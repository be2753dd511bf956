"""The C++/CUDA LIF kernels' machine code, read from the built extension (sm_90 SASS, no GPU needed).

Forward: where rows are aligned the launcher runs the vector instantiation with as many neurons a thread
as one 16-byte load of x holds (4 fp32, 8 bf16/fp16): x moves 16 bytes a load in every dtype, fp32 outputs
16 bytes a store (two per 8 neurons) and spikes V x their size; the next step's x is loaded before this
step's stores; nothing spills; 4-wide: at most 48 registers (40 warps per SM), 8-wide: at most 64 (32
warps, one step down). The estimated KB in flight per SM is printed for each (pytest -s); bf16/fp16 must
keep 1.5x what their 4-wide kernel kept (10 KB: 8-byte loads at 40 warps; the 8-wide one reads 16 KB).
The 4-wide bf16/fp16 kernels stay, for rows aligned to 4 elements but not 8, with their 8-byte loads.
Shown failing on the build before (the main branch's .so read in place of this one's, and each check
evaluated on its kernels): its widest bf16/fp16 kernels (4-wide) fail the 16-byte vector kernel, the
16-byte load width ([8]) and the floor (10 KB < 15); the 8-wide kernel with x carried as a Pack of 16-bit
elements (one register each, not InputRow's words) spilled 8 bytes in bf16, failing the spill check;
unbounded it took 77-89 registers (16-24 warps, 8-12 KB), failing the register bound. The forward before
any vector kernel (one neuron a thread) failed each of the earlier guards: 4-byte loads and stores (2-byte
bf16/fp16 loads, 1-byte uint8/bool spikes), one load issued between the stores of each unrolled step pair
(loads_between_stores 1), 8 KB in flight per SM in fp32; unbounded, the 4-wide kernel took 52 registers
with uint8 or bool spikes (32 warps per SM).

Backward: it issues every load of a chunk before the chunk's first store and keeps enough bytes in
flight at its occupancy, like the Triton kernels (test_kernel_compile.py). Before this schedule (loads of
grad_spikes/grad_v_seq in the reverse walk, each behind the previous step's grad_x store) the same check
read 174 loads between stores and 90 registers in every backward variant.

Nothing spills, in any variant."""
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
        # lif_fwd_kernel<V, xT, sT> (the forward of a build before the vector kernel: <xT, sT>, V = 1)
        kind = re.search(r"(lif_fwd_kernel|lif_bwd_kernel)I(?:Li(\d+)E)?(\w+?)EEvll", name)
        if kind:
            regs, stack = resources[name]
            key = (kind.group(1), int(kind.group(2) or 1), kind.group(3))
            block = _main_path(block)
            out[key] = (sass_model.analyze(block, regs, THREADS // 32), regs, stack, block)
    assert out, "no LIF kernel found in the extension's SASS"
    return out


def _main_path(block: str) -> str:
    """A kernel's code up to its first unconditional EXIT. After it the compiler puts out-of-line paths,
    such as a warp shuffle's for lanes found diverged, which branch back into the loop: their branch is
    the last backward one but no loop (loop_body would take it for the hot loop)."""
    end = re.search(r"/\*[0-9a-f]{4,}\*/\s+EXIT\s*;", block)
    return block[:end.end()] if end else block


def _types(mangled: str) -> tuple:
    """(bytes of an x element, bytes of a spike) from the mangled <xT, sT> of a kernel."""
    x = 4 if mangled.startswith("f") else 2  # float, or c10::Half / c10::BFloat16
    s = {"h": 1, "b": 1, "i": 4}.get(mangled[-1], x)  # uint8_t, bool, int32_t (32 packed), or xT itself
    return x, s


# KB in flight per SM of the bf16/fp16 forward with 4 neurons a thread (8-byte x loads, 40 warps per SM)
FORWARD_16BIT_KB_BEFORE = 10.0


def test_cpp_forward_moves_whole_vectors_and_keeps_the_next_load_in_flight():
    kernels = _kernels()
    forward = {k: v for k, v in kernels.items() if k[0] == "lif_fwd_kernel"}
    # what the launcher runs on aligned rows: the widest instantiation of each (x dtype, spike dtype)
    widest = {}
    for (_, vec, types), v in forward.items():
        if vec >= widest.get(types, (0,))[0] and not types.endswith("i"):  # packed spikes: the next test
            widest[types] = (vec, *v)
    assert len(widest) == 9  # x in fp32, bf16, fp16; spikes in x's dtype, uint8, bool
    for types, (vec, a, regs, stack, block) in sorted(widest.items()):
        x_bytes, s_bytes = _types(types)
        print(f"lif_fwd_kernel<{vec}, {types}>: {regs} registers, {a['warps_per_sm']} warps/SM, "
              f"{a['bytes_in_flight_per_thread']} B/thread, {a['kb_in_flight_per_sm']} KB in flight per SM")
        assert vec * x_bytes == 16, (types, vec, "no vector kernel with 16-byte x loads")
        assert a["loop_load_bytes"] == [16], (types, a)  # x: LDG.E.128 in every dtype
        # stores: fp32 v_seq / checkpoints / v_last 16 bytes, spikes V of them in one access
        assert a["store_bytes"] == sorted({16, vec * s_bytes}), (types, a)
        # in the loop, one spike store per step (one x load per step) is all that is narrower than 16 bytes
        body = sass_model.loop_body(sass_model.parse(block))
        narrow = [sass_model.access_bytes(op) for _a, op, _g in body
                  if op.startswith("STG") and sass_model.access_bytes(op) != 16]
        assert narrow == ([] if vec * s_bytes == 16 else [vec * s_bytes] * a["loop_loads"]), (types, narrow)
        assert a["loads_between_stores"] == 0, (types, a)  # step t+1's load is issued before step t's stores
        assert stack == 0, (types, "spills")
        if vec == 4:
            assert regs <= 48 and a["warps_per_sm"] >= 40, (types, regs)  # __launch_bounds__(256, 5)
        else:
            assert regs <= 64 and a["warps_per_sm"] >= 32, (types, regs)  # __launch_bounds__(256, 4)
        floor = 16 if x_bytes == 4 else 1.5 * FORWARD_16BIT_KB_BEFORE
        assert a["kb_in_flight_per_sm"] >= floor, (types, a)
    # bf16/fp16 rows aligned to 4 elements but not 8: the 4-wide kernel, 8-byte x loads, as before
    fallback = {types: v for (_, vec, types), v in forward.items()
                if vec == 4 and _types(types)[0] == 2 and not types.endswith("i")}
    assert len(fallback) == 6, sorted(fallback)
    for types, (a, regs, stack, _block) in fallback.items():
        assert a["loop_load_bytes"] == [8] and a["loads_between_stores"] == 0, (types, a)
        assert regs <= 48 and a["warps_per_sm"] >= 40 and stack == 0, (types, regs, stack)
    for (_, vec, types), (_a, _regs, stack, _b) in forward.items():  # the scalar kernels too
        assert stack == 0, (types, vec, "spills")


def test_cpp_forward_writes_packed_words_from_whole_vectors():
    """int32 spikes (32 | the last dim): the lanes of a word combine their bits (shuffles, a ballot for one
    neuron a lane) and one stores the 4-byte word, in the loop after the next step's x load, as the widest
    unpacked kernel. It took 48 registers with 16 bytes of spills in fp32 under the 4-wide bound (256, 5):
    packed 4-wide fp32 and 8-wide kernels are bounded at (256, 4), 32 warps per SM."""
    forward = {k: v for k, v in _kernels().items() if k[0] == "lif_fwd_kernel" and k[2].endswith("i")}
    assert len(forward) == 8, sorted(forward)  # fp32: 4 and 1 neurons a thread; bf16/fp16: 8, 4 and 1
    for (_, vec, types), (a, regs, stack, block) in sorted(forward.items()):
        x_bytes = _types(types)[0]
        print(f"lif_fwd_kernel<{vec}, {types}>: {regs} registers, {a['warps_per_sm']} warps/SM, "
              f"{a['kb_in_flight_per_sm']} KB in flight per SM")
        assert stack == 0, (types, vec, "spills")
        if vec == 1:
            continue
        assert a["loop_load_bytes"] == [vec * x_bytes] and a["loads_between_stores"] == 0, (types, vec, a)
        body = sass_model.loop_body(sass_model.parse(block))
        narrow = [sass_model.access_bytes(op) for _a, op, _g in body
                  if op.startswith("STG") and sass_model.access_bytes(op) != 16]
        assert narrow == [4] * a["loop_loads"], (types, vec, narrow)  # one word a step, fp32 outputs 16 B
        assert regs <= 64 and a["warps_per_sm"] >= 32, (types, vec, regs)
        if vec * x_bytes == 16:
            assert a["kb_in_flight_per_sm"] >= 16, (types, vec, a)


def test_cpp_backward_loads_its_chunk_before_storing_and_keeps_bytes_in_flight():
    kernels = _kernels()
    backward = {k: v for k, v in kernels.items() if k[0] == "lif_bwd_kernel"}
    assert len(backward) == 3  # fp32, bf16, fp16
    for (_, _vec, types), (a, regs, stack, _block) in backward.items():
        assert stack == 0, (types, "spills")
        assert a["loads_between_stores"] == 0, (types, a)
        assert a["warps_per_sm"] >= 16, (types, regs)  # __launch_bounds__(256, 2): <= 128 registers
        assert a["kb_in_flight_per_sm"] >= 12, (types, a)
