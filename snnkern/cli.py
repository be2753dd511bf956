"""Command line: ``snnkern info`` (environment and a kernel self-check).

The study runner (``snnkern compare``) joins here as its own subcommand.
"""
from __future__ import annotations

import argparse
import platform
import sys

import torch

from . import HAS_TRITON, __version__, functional, last_backend
from ._dispatch import triton_interpret


def _environment() -> list[tuple[str, str]]:
    rows = [("snnkern", __version__), ("python", platform.python_version()), ("torch", torch.__version__)]
    try:
        import triton

        rows.append(("triton", triton.__version__))
    except ImportError:
        rows.append(("triton", "not installed"))
    rows.append(("torch CUDA build", str(torch.version.cuda)))
    if torch.cuda.is_available():
        rows.append(("GPU", f"{torch.cuda.get_device_name()} (sm_{''.join(map(str, torch.cuda.get_device_capability()))})"))
    else:
        rows.append(("GPU", "none"))
    rows.append(("TRITON_INTERPRET", "on" if triton_interpret() else "off"))
    return rows


def self_check(device: str, T: int = 8, shape=(4, 257)) -> list[tuple[str, str, bool]]:
    """Run every backend that can run here against the reference on random input; (backend, detail, ok)."""
    gen = torch.Generator().manual_seed(0)
    x = (torch.randn((T, *shape), generator=gen) + 0.5).to(device)
    results = []
    ref_s, ref_v = functional.lif(x, backend="torch", convention="snntorch")
    backends = ["auto"]
    if HAS_TRITON and (device == "cuda" or triton_interpret()):
        backends.append("triton")
    for backend in backends:
        s, v = functional.lif(x, backend=backend, convention="snntorch")
        ok = torch.equal(s, ref_s) and torch.allclose(v, ref_v, rtol=0, atol=0)
        detail = f"ran {last_backend('lif')}, spikes {'equal' if torch.equal(s, ref_s) else 'DIFFER'}, " \
                 f"max |dv| {(v - ref_v).abs().max().item():.2e}"
        results.append((backend, detail, ok))
    return results


def cmd_info(args) -> int:
    for key, value in _environment():
        print(f"{key:>18}: {value}")
    device = args.device or ("cuda" if torch.cuda.is_available() else "cpu")
    print(f"\nself-check of snnkern.functional.lif on {device}:")
    all_ok = True
    for backend, detail, ok in self_check(device):
        print(f"  backend={backend:<7} {detail}  {'OK' if ok else 'FAILED'}")
        all_ok &= ok
    return 0 if all_ok else 1


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="snnkern", description="Fused SNN kernels for PyTorch")
    sub = parser.add_subparsers(dest="command", required=True)
    info = sub.add_parser("info", help="versions, GPU, backends, and a self-check of the LIF kernels")
    info.add_argument("--device", choices=["cpu", "cuda"], default=None)
    info.set_defaults(func=cmd_info)
    args = parser.parse_args(argv)
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
