"""Reading a kernel's machine code (SASS, from ``cuobjdump -sass``) for what decides its memory speed.

A memory-bound kernel is as fast as the bytes it keeps in flight (Little's law: bandwidth x latency;
an H100/H200 SM needs roughly 9-15 KB outstanding to approach peak).  From the SASS we read:

- the width of every global load/store (``LDG.E.128`` is 16 bytes a thread, plain ``LDG.E`` 4);
- the main loop's body (the last backward branch), and in it the *load windows*: loads issued back to
  back before any instruction reads one of their results.  Each window costs about one memory
  latency, so the loop keeps ``bytes loaded per iteration / windows per iteration`` in flight per
  thread (a load that waits behind a store it may alias starts a window of its own);
- loads issued between the loop's stores (the symptom of that false dependence);
- occupancy from the register count: warps per SM, hence bytes in flight per SM;
- for tensor-core loops: the bytes a thread copies to shared memory by cp.async (``LDGSTS``) per
  iteration and how many copy groups the loop's wait leaves in flight (``DEPBAR.LE SB0, n``).

These are estimates, printed beside each kernel by ``kernel_compile_check.py`` and guarded in CI;
the GPU run measures what they predict.
"""
from __future__ import annotations

import re

_INSTR = re.compile(r"/\*([0-9a-f]{4,})\*/\s+(@!?U?P\w+\s+)?([A-Z0-9_.]+)\s*([^;]*);")
_REG = re.compile(r"\bR(\d+)\b")
_WIDTH = {"128": 16, "64": 8, "U16": 2, "S16": 2, "U8": 1, "S8": 1}

# sm_80 / sm_90: 64K 32-bit registers and at most 64 resident warps (32 blocks) per SM; registers are
# granted per warp in units of 256.
REGS_PER_SM, MAX_WARPS, MAX_BLOCKS, REG_UNIT = 65536, 64, 32, 256


def parse(sass: str) -> list[tuple[int, str, str]]:
    """(address, opcode, operands) of every instruction."""
    out = []
    for m in _INSTR.finditer(sass):
        out.append((int(m.group(1), 16), m.group(3), m.group(4).strip()))
    return out


def access_bytes(opcode: str) -> int:
    """Bytes a thread moves with one LDG/STG: ``LDG.E.128`` -> 16, ``LDG.E`` -> 4."""
    for part in reversed(opcode.split(".")[1:]):
        if part in _WIDTH:
            return _WIDTH[part]
    return 4


def loop_body(instrs):
    """The instructions of the outermost hot loop: from the target of the last backward branch to it
    (the whole kernel when there is no loop). The trailing ``BRA`` to itself that ends every kernel is
    not a loop."""
    for i in range(len(instrs) - 1, -1, -1):
        addr, op, args = instrs[i]
        if op == "BRA" or op.startswith("BRA."):
            m = re.search(r"0x([0-9a-f]+)", args)
            if m and int(m.group(1), 16) < addr:
                target = int(m.group(1), 16)
                return [ins for ins in instrs if target <= ins[0] <= addr]
    return instrs


def _is_load(op):
    # LDGDEPBAR (a cp.async group barrier, no register operand) is not a load
    return op.startswith("LDG") and not op.startswith("LDGDEPBAR")


def _is_store(op):
    return op.startswith("STG")


def load_windows(body) -> list[int]:
    """Bytes per load window: loads issued before any instruction reads one of their results."""
    windows, pending, current = [], set(), 0
    for _addr, op, args in body:
        regs = [int(r) for r in _REG.findall(args)]
        if _is_load(op):
            dest, n = regs[0], access_bytes(op) // 4 or 1
            uses = set(regs[1:])  # address registers
            if uses & pending:
                windows.append(current)
                pending, current = set(), 0
            pending |= set(range(dest, dest + n))
            current += access_bytes(op)
            continue
        # a store reads every register it names; other instructions write their first operand when it is a
        # register (ISETP and friends write a predicate and read all of theirs)
        writes_first = not _is_store(op) and args.startswith("R")
        sources = set(regs[1:] if writes_first else regs)
        if sources & pending:
            windows.append(current)
            pending, current = set(), 0
    if current:
        windows.append(current)
    return [w for w in windows if w]


def loads_between_stores(body) -> int:
    """Loads issued after the loop's first store and before its last: each waits for a store."""
    stores = [i for i, (_a, op, _g) in enumerate(body) if _is_store(op)]
    if len(stores) < 2:
        return 0
    return sum(1 for _a, op, _g in body[stores[0]:stores[-1]] if _is_load(op))


def async_pipeline(sass: str) -> dict:
    """The hot loop's asynchronous copies: bytes a thread copies to shared memory by cp.async (``LDGSTS``)
    per iteration, the most copy groups its wait leaves in flight (``DEPBAR.LE SB0, n``: n; -1 without such
    a wait) and its tensor-core instructions (``HGMMA``/``HMMA``). A pipelined loop waits for one step's
    copies while later steps' copies are still on their way: n >= 1."""
    body = loop_body(parse(sass))
    waits = [int(m.group(1), 0) for _a, op, g in body if op == "DEPBAR.LE"
             for m in [re.match(r"SB0,\s*(0x[0-9a-f]+|\d+)", g)] if m]
    return {"loop_async_bytes": sum(access_bytes(op) for _a, op, _g in body if op.startswith("LDGSTS")),
            "loop_async_wait": max(waits, default=-1),
            "loop_mma": sum(1 for _a, op, _g in body if op.startswith(("HGMMA", "HMMA")))}


def warps_per_sm(registers: int, warps_per_block: int) -> int:
    per_warp = -(-max(registers, 1) * 32 // REG_UNIT) * REG_UNIT
    by_regs = REGS_PER_SM // per_warp
    blocks = min(MAX_BLOCKS, by_regs // warps_per_block, MAX_WARPS // warps_per_block)
    return blocks * warps_per_block


def analyze(sass: str, registers: int, warps_per_block: int) -> dict:
    """Everything the CI guards read, as one dict."""
    instrs = parse(sass)
    body = loop_body(instrs)
    windows = load_windows(body)
    per_thread = sum(windows) / len(windows) if windows else 0.0
    warps = warps_per_sm(registers, warps_per_block)
    return {
        "load_bytes": sorted({access_bytes(op) for _a, op, _g in instrs if _is_load(op)}),
        "store_bytes": sorted({access_bytes(op) for _a, op, _g in instrs if _is_store(op)}),
        "loop_loads": sum(1 for _a, op, _g in body if _is_load(op)),
        "loop_load_bytes": sorted({access_bytes(op) for _a, op, _g in body if _is_load(op)}),
        "loop_stores": sum(1 for _a, op, _g in body if _is_store(op)),
        "loop_load_windows": len(windows),
        "loads_between_stores": loads_between_stores(body),
        "warps_per_sm": warps,
        "bytes_in_flight_per_thread": round(per_thread, 1),
        "kb_in_flight_per_sm": round(per_thread * warps * 32 / 1024, 1),
    }
