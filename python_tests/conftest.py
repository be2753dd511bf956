"""Test setup: which device the Triton kernels run on here, and the markers.

- ``triton`` tests run the real kernels: on a GPU, or on CPU tensors under TRITON_INTERPRET=1 (how CI
  proves them). Elsewhere they skip per test, with the reason.
- ``gpu`` tests need CUDA and skip per test without it.
"""
import os

import pytest
import torch

from snnkern._dispatch import triton_interpret
from snnkern._extension import cuda_extension_available, extension_status
from snnkern.ops import HAS_TRITON


def pytest_configure(config):
    config.addinivalue_line("markers", "triton: runs the Triton kernels (GPU, or CPU with TRITON_INTERPRET=1)")
    config.addinivalue_line("markers", "gpu: needs a CUDA device")
    config.addinivalue_line("markers", "cuda_ext: runs the compiled C++/CUDA backend (snnkern._C)")
    # CI has no GPU: without the interpreter the kernel tests would all skip and prove nothing; and
    # without the compiled extension its tests would skip, so broken csrc could land.
    if os.environ.get("CI") and not torch.cuda.is_available() and not triton_interpret():
        raise pytest.UsageError("CI without a GPU must run the tests with TRITON_INTERPRET=1")
    if os.environ.get("CI") and not cuda_extension_available():
        raise pytest.UsageError(f"CI must build the CUDA extension first: snnkern._C {extension_status()}")


def pytest_collection_modifyitems(config, items):
    can_run_kernels = HAS_TRITON and (torch.cuda.is_available() or triton_interpret())
    for item in items:
        if "triton" in item.keywords and not can_run_kernels:
            item.add_marker(pytest.mark.skip(reason="needs a CUDA device or TRITON_INTERPRET=1"))
        if "gpu" in item.keywords and not torch.cuda.is_available():
            item.add_marker(pytest.mark.skip(reason="needs a CUDA device"))
        if "cuda_ext" in item.keywords and not cuda_extension_available():
            item.add_marker(pytest.mark.skip(reason=f"snnkern._C {extension_status()}"))


@pytest.fixture
def kernel_device():
    """Where the Triton kernels run in this session: CUDA if present, else CPU under the interpreter."""
    return "cuda" if torch.cuda.is_available() else "cpu"
