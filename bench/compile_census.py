"""How many Triton kernels would a test run compile on a fresh GPU machine? A pytest plugin that counts it.

On a GPU every distinct specialization of a kernel (its constexpr values, its pointer arguments' dtypes and
16-byte alignment, its integer arguments' == 1 and divisibility by 16) is one JIT compile, 0.75-1.1 s of
CPU each; the GPU session's tests stage (bench/gpu_session.sh) is sized by that count. The interpreter
launches the same kernels with the same arguments, so counting there, on any machine, gives the number:

    TRITON_INTERPRET=1 python -m pytest -p bench.compile_census python_tests -m "triton or gpu or cuda_ext" \\
        --compile-census=census.json

writes {"distinct": N, "launches": L, "by_kernel": {name: [distinct, launches]}} and prints the total.
Counted in the pytest process (kernels launched by tests' subprocesses are not). Under the autotuner each
tiles shape compiles every config of its list, which the interpreter does not run: the GPU session turns
that off for its tests (SNNKERN_TILES_AUTOTUNE=0), so the count is the session's.
"""
from __future__ import annotations

import inspect
import json

import torch

_SEEN: dict = {}


def _runtime_key(value):
    """What Triton's JIT specializes a runtime argument on."""
    if isinstance(value, torch.Tensor):
        return "ptr", str(value.dtype), value.data_ptr() % 16 == 0
    if isinstance(value, bool):
        return "bool", value
    if isinstance(value, int):
        return "int", value == 1, value % 16 == 0
    return (type(value).__name__,)


def specialization(fn, args, kwargs) -> tuple:
    """The compile key of launching ``fn`` (a @triton.jit function) with these arguments."""
    params = inspect.signature(fn).parameters
    bound = dict(zip(params, args)) | {k: v for k, v in kwargs.items() if k in params}
    key = tuple((name, repr(value) if "constexpr" in str(params[name].annotation) else _runtime_key(value))
                for name, value in bound.items())
    options = tuple(sorted((k, repr(v)) for k, v in kwargs.items() if k not in params))  # num_warps, stages
    return fn.__name__, key, options


def pytest_addoption(parser):
    parser.addoption("--compile-census", default=None, metavar="JSON",
                     help="count the distinct Triton specializations launched (TRITON_INTERPRET=1) into JSON")


def pytest_configure(config):
    if not config.getoption("--compile-census"):
        return
    from triton.runtime import interpreter

    launch = interpreter.InterpretedFunction.run

    def counted(self, *args, grid, warmup, **kwargs):
        key = specialization(self.fn, args, kwargs)
        _SEEN[key] = _SEEN.get(key, 0) + 1
        return launch(self, *args, grid=grid, warmup=warmup, **kwargs)

    interpreter.InterpretedFunction.run = counted


def census() -> dict:
    by_kernel: dict = {}
    for (name, _key, _options), launches in _SEEN.items():
        distinct, total = by_kernel.get(name, (0, 0))
        by_kernel[name] = (distinct + 1, total + launches)
    return {"distinct": len(_SEEN), "launches": sum(_SEEN.values()),
            "by_kernel": dict(sorted(by_kernel.items(), key=lambda kv: -kv[1][0]))}


def pytest_unconfigure(config):
    path = config.getoption("--compile-census", default=None)
    if path:
        result = census()
        with open(path, "w") as f:
            json.dump(result, f, indent=1)
        print(f"\ncompile census: {result['distinct']} distinct Triton specializations in {result['launches']} "
              f"launches -> {path}")
