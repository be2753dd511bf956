"""The Triton kernels compile for sm_80 and sm_90 (no GPU needed), specialized as real launches are, and
their machine code keeps the schedule the kernels are written for (guards read from the sm_90 SASS)."""
import json
import os
import subprocess
import sys

import pytest

from snnkern.ops import HAS_TRITON

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import sass_model  # noqa: E402

KINDS = ("fwd", "fwd_infer", "fwd_odd_n", "fwd_channel", "fwd_packed", "bwd", "bwd_learn", "bwd_all", "spike_tiles",
         "spike_grad_w_tiles", "tiles_schedule", "transpose_bits", "spike_gather", "pack", "unpack")
BACKWARD_KINDS = ("bwd", "bwd_learn", "bwd_all")
# Bytes in flight an H100/H200 SM needs to approach its memory bandwidth (latency x bandwidth per SM).
MIN_KB_IN_FLIGHT = 12.0
# Registers of a backward thread on sm_90: below 96 keeps at least 20 warps per SM (5 blocks of 4).
MAX_BWD_REGISTERS = 95


@pytest.fixture(scope="module")
def compiled():
    if not HAS_TRITON:
        pytest.skip("needs triton")
    env = {k: v for k, v in os.environ.items() if k != "TRITON_INTERPRET"}  # compile, do not interpret
    out = subprocess.run([sys.executable, os.path.join(HERE, "kernel_compile_check.py")], capture_output=True,
                         text=True, env=env, timeout=1200)
    assert out.returncode == 0, out.stderr[-4000:]
    return json.loads(out.stdout)


@pytest.fixture(scope="module")
def results(compiled):
    """The variants as launches specialize them (the machine-code guards read these)."""
    return [r for r in compiled if r.get("config") != "ints=1"]


def test_every_kernel_compiles_with_its_int_arguments_equal_to_one(compiled):
    """A launch makes an integer argument equal to 1 a constant (a one-output layer's N, a one-step T, one
    row): every shipped kernel must compile so. The tiles forward read `N.to(tl.int64)`, which fails on a
    constant (Triton 3.6 on the GPU machine: CompilationError for any SpikeLinear(K, 1) through tiles)."""
    rows = [r for r in compiled if r.get("config") == "ints=1"]
    assert len(rows) >= 12, rows  # one per shipped kernel (LIF, tiles, gather, schedule, pack): no empty check
    assert [r for r in rows if r["error"]] == []


def _sm90(results, *kinds):
    rows = [r for r in results if r["arch"] == 90 and r["kernel"] in kinds]
    if rows and "REG" not in rows[0]:
        pytest.skip("cuobjdump missing: compiling is proven, the machine code cannot be read")
    return rows


def test_every_kernel_compiles_for_both_targets(results):
    assert {(r["kernel"], r["arch"]) for r in results} == {(k, a) for k in KINDS for a in (80, 90)}


def test_no_register_spills(results):
    """No variant, and no tile shape the autotuner may pick, spills registers to local memory (sm_80 and
    sm_90), the backward with every option at once (learnable beta and threshold, v0 and membrane
    gradients) included."""
    for r in results:
        if "STACK" in r:
            assert r["STACK"] == 0, f"register spill in {r}"


def test_forward_accesses_are_wide(results):
    """fp32 x loads 16 bytes a thread (4 neurons), also when N is only a multiple of 4 and when beta and
    threshold are per-channel tensors read in place; bf16 8 bytes where checkpoints are written, 16 (8
    neurons) in inference, packed spikes out included."""
    for r in _sm90(results, "fwd", "fwd_infer", "fwd_channel", "fwd_packed"):
        want = 16 if r["dtype"] == "fp32" or r["kernel"] in ("fwd_infer", "fwd_packed") else 8
        assert r["loop_load_bytes"] == [want], f"narrow loads in the forward's loop: {r}"


def test_forward_keeps_enough_bytes_in_flight(results):
    """Every forward variant with a wide schedule keeps >= 12 KB per SM in flight; the 16-bit inference
    kernel (8 neurons a thread) >= 18 KB, where 4 a thread kept 12-16 (sm_90, this commit's nvcc)."""
    for r in _sm90(results, "fwd", "fwd_infer", "fwd_channel", "fwd_packed"):
        assert r["kb_in_flight_per_sm"] >= MIN_KB_IN_FLIGHT, f"too few bytes in flight: {r}"
    for r in _sm90(results, "fwd_infer", "fwd_packed"):
        if r["dtype"] != "fp32":
            assert r["kb_in_flight_per_sm"] >= 18.0, f"16-bit inference forward below 18 KB: {r}"


def test_backward_issues_a_chunks_loads_before_its_stores(results):
    """No load of the backward's loop waits behind one of its stores (the false dependence)."""
    for r in _sm90(results, *BACKWARD_KINDS):
        assert r["loads_between_stores"] == 0, f"loads between the stores of {r}"


def test_backward_keeps_enough_bytes_in_flight(results):
    """Every backward variant, fp32 and bf16, plain and with parameter gradients: >= 12 KB per SM."""
    for r in _sm90(results, *BACKWARD_KINDS):
        assert r["kb_in_flight_per_sm"] >= MIN_KB_IN_FLIGHT, f"too few bytes in flight: {r}"


def test_backward_registers_leave_20_warps_per_sm(results):
    """Every backward variant on sm_90, the learnable beta/threshold ones included, below 96 registers."""
    for r in _sm90(results, *BACKWARD_KINDS):
        assert r["REG"] <= MAX_BWD_REGISTERS and r["warps_per_sm"] >= 20, f"too many registers: {r}"


# The model itself, on hand-written SASS: the old backward's pattern (each load behind the previous
# step's store) against the new one (the chunk's loads first).
INTERLEAVED = """
        /*0100*/                   LDG.E R4, desc[UR4][R2.64] ;
        /*0110*/                   FMUL R5, R4, R9 ;
        /*0120*/                   STG.E desc[UR4][R6.64], R5 ;
        /*0130*/                   LDG.E R8, desc[UR4][R10.64] ;
        /*0140*/                   FMUL R12, R8, R9 ;
        /*0150*/                   STG.E desc[UR4][R14.64], R12 ;
        /*0160*/                   BRA 0x100 ;
        /*0170*/                   BRA 0x170;
"""
HOISTED = """
        /*0100*/                   LDG.E R4, desc[UR4][R2.64] ;
        /*0110*/                   LDG.E R8, desc[UR4][R10.64] ;
        /*0120*/                   FMUL R5, R4, R9 ;
        /*0130*/                   STG.E desc[UR4][R6.64], R5 ;
        /*0140*/                   FMUL R12, R8, R9 ;
        /*0150*/                   STG.E desc[UR4][R14.64], R12 ;
        /*0160*/                   BRA 0x100 ;
        /*0170*/                   BRA 0x170;
"""


def test_sass_model_tells_the_two_schedules_apart():
    old, new = sass_model.analyze(INTERLEAVED, 80, 4), sass_model.analyze(HOISTED, 80, 4)
    assert old["loads_between_stores"] == 1 and new["loads_between_stores"] == 0
    assert old["loop_load_windows"] == 2 and new["loop_load_windows"] == 1
    assert new["bytes_in_flight_per_thread"] == 2 * old["bytes_in_flight_per_thread"] == 8
    assert sass_model.warps_per_sm(80, 4) == 24 and sass_model.warps_per_sm(32, 4) == 64
    assert sass_model.access_bytes("LDG.E.128") == 16 and sass_model.access_bytes("LDG.E.U16") == 2
    # a cp.async kernel's LDGDEPBAR has no register operand: not a load (counting it raised IndexError)
    with_barrier = HOISTED.replace("        /*0160*/                   BRA 0x100 ;",
                                   "        /*0158*/                   LDGDEPBAR ;\n        /*0160*/                   BRA 0x100 ;")
    assert sass_model.analyze(with_barrier, 80, 4)["loop_loads"] == new["loop_loads"]


# ---- spike_linear's gather ----------------------------------------------------------------------------

GATHER_MIN_WEIGHT_LOADS = 4  # 16-byte weight loads a thread issues before the first is used


def gather_keeps_weight_rows_in_flight(r) -> bool:
    """The hot loop has a load window of >= GATHER_MIN_WEIGHT_LOADS 16-byte (weight-row) loads, and no spill."""
    return max(r["window_wide_loads"], default=0) >= GATHER_MIN_WEIGHT_LOADS and r["STACK"] == 0


def test_gather_loads_a_steps_weight_rows_before_adding_them(results):
    """spike_linear's gather issues the weight rows of GATHER_I active inputs (>= 4 16-byte loads a thread)
    before the first instruction reads one, for fp32, bf16 and fp16 weights. The bit-walking kernel it
    replaced (the ``walk_baseline`` rows, compiled but not shipped) adds each weight row before loading the
    next: one narrow load per window, so the same guard rejects it."""
    rows = _sm90(results, "spike_gather")
    new = {r["dtype"]: r for r in rows if r["config"] == "rows"}
    old = [r for r in rows if r["config"] == "walk_baseline"]
    assert set(new) == {"fp32", "bf16", "fp16"} and len(old) == 2
    for r in new.values():
        assert gather_keeps_weight_rows_in_flight(r), f"gather's weight loads are not issued together: {r}"
        assert r["bytes_in_flight_per_thread"] >= 32, r  # the walk kept 4-8 bytes a thread in flight
    for r in old:
        assert not gather_keeps_weight_rows_in_flight(r), f"the guard does not tell the old gather apart: {r}"
        assert max(r["window_loads"]) == 1, r
    active = [r for r in rows if r["config"] == "active_inputs"]
    assert len(active) == 1 and active[0]["STACK"] == 0


# ---- spike_linear's tiles ---------------------------------------------------------------------------------

# The two tiles schedules in miniature: a step's tile through registers (LDG, STS) before its MMA, against
# cp.async copies for a later step issued while one step's copies are awaited with one group in flight.
THROUGH_REGISTERS = """
        /*0100*/                   LDG.E.128 R4, desc[UR4][R2.64] ;
        /*0110*/                   STS.128 [R20], R4 ;
        /*0120*/                   BAR.SYNC.DEFER_BLOCKING 0x0 ;
        /*0130*/                   HGMMA.64x64x16.F32.BF16 R24, gdesc[UR8], R24 ;
        /*0140*/                   BRA 0x100 ;
        /*0150*/                   BRA 0x150;
"""
ASYNC_COPIES = """
        /*0100*/                   DEPBAR.LE SB0, 0x1 ;
        /*0110*/                   BAR.SYNC.DEFER_BLOCKING 0x0 ;
        /*0120*/                   HGMMA.64x64x16.F32.BF16 R24, gdesc[UR8], R24 ;
        /*0130*/                   LDGSTS.E.BYPASS.128 [R20+0x4000], desc[UR4][R2.64] ;
        /*0140*/                   LDGDEPBAR ;
        /*0150*/                   BRA 0x100 ;
        /*0160*/                   BRA 0x160;
"""


def test_sass_model_reads_async_copies():
    old, new = sass_model.async_pipeline(THROUGH_REGISTERS), sass_model.async_pipeline(ASYNC_COPIES)
    assert old == {"loop_async_bytes": 0, "loop_async_wait": -1, "loop_mma": 1}
    assert new == {"loop_async_bytes": 16, "loop_async_wait": 1, "loop_mma": 1}


def tiles_loads_pipelined(r) -> bool:
    """The hot loop copies at least its operand tile (weight parts / dY) to shared memory by cp.async
    (``LDGSTS``), waits for a step's copies while later steps' copies are still in flight
    (``DEPBAR.LE SB0, n`` with n >= 1), runs its MMA in the same loop, and spills nothing."""
    return (r["loop_async_bytes"] >= r["operand_bytes"] > 0 and r["loop_async_wait"] >= 1 and r["loop_mma"] > 0
            and r["STACK"] == 0)


def test_tiles_loads_are_pipelined(results):
    """Both tiles kernels, every TILE_CONFIGS shape and dtype, typical and odd widths: the next steps' tiles
    are in flight (cp.async) while a step's MMA runs, with no spill. The kernels they replaced (``baseline:``
    rows: loads behind the empty-tile branch, compiled but not shipped) load through registers (LDG + STS,
    no cp.async) and wait for nothing in flight, so the same guard rejects every one of them."""
    from snnkern.ops.spike_linear import TILE_CONFIGS
    rows = _sm90(results, "spike_tiles", "spike_grad_w_tiles")
    new = [r for r in rows if not r["config"].startswith("baseline:")]
    old = [r for r in rows if r["config"].startswith("baseline:")]
    n_configs = sum(len(c) for c in TILE_CONFIGS.values())
    assert len({r["config"] for r in new}) == 2 * n_configs and len({r["config"] for r in old}) == n_configs
    for r in new:
        assert tiles_loads_pipelined(r), f"tiles loads not pipelined: {r}"
    for r in old:
        assert not tiles_loads_pipelined(r), f"the guard does not tell the old tiles kernel apart: {r}"
        assert r["loop_async_bytes"] == 0 and r["loop_async_wait"] == -1, r
    assert all(r["STACK"] == 0 for r in _sm90(results, "tiles_schedule"))
