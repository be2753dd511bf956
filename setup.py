"""Build and install snnkern.

Pure-Python install everywhere (Triton kernels + PyTorch reference).  The optional CUDA C++
extension ``snnkern._C`` is built from ``csrc/`` when torch with CUDA and nvcc are both present
in the build environment (use ``pip install --no-build-isolation .`` so the build sees your torch).

Knobs (environment variables):
  SNNKERN_SKIP_CUDA_BUILD=1   never build the extension
  SNNKERN_FORCE_CUDA_BUILD=1  build it or fail loudly (CI uses this so broken csrc cannot land)
  TORCH_CUDA_ARCH_LIST        target architectures (default: the visible GPUs' own; "9.0" on a machine
                              without a GPU; set e.g. "8.0;8.6;8.9;9.0+PTX" to build a wheel for many)
  MAX_JOBS                    parallel compile jobs (read by torch.utils.cpp_extension)
"""
import glob
import os
import sys

from setuptools import find_packages, setup

HERE = os.path.dirname(os.path.abspath(__file__))
NO_GPU_ARCH_LIST = "9.0"  # without a GPU and without TORCH_CUDA_ARCH_LIST (e.g. CI): Hopper only


def _flag(name: str) -> bool:
    return os.environ.get(name, "0").lower() in ("1", "true", "yes", "on")


def _say(msg: str) -> None:
    print(f"snnkern setup: {msg}", file=sys.stderr)


BUILD_NOTE = os.path.join(HERE, "snnkern", "_build_note.txt")  # read by snnkern.extension_status()


def _note_build(reason) -> None:
    """Leave why the extension was not built where the installed package finds it: pip hides this
    script's output, so `pip install ".[bench]"` (build isolation: no torch) would drop it silently."""
    if reason is None:
        if os.path.exists(BUILD_NOTE):
            os.remove(BUILD_NOTE)
        return
    with open(BUILD_NOTE, "w") as f:
        f.write(reason + "\n")


def cuda_extension():
    """([extensions], {cmdclass}) for snnkern._C, or nothing with a message saying why."""
    force = _flag("SNNKERN_FORCE_CUDA_BUILD")
    if _flag("SNNKERN_SKIP_CUDA_BUILD"):
        _say("SNNKERN_SKIP_CUDA_BUILD is set: installing without the CUDA extension")
        _note_build("the install set SNNKERN_SKIP_CUDA_BUILD=1")
        return [], {}
    sources = sorted(glob.glob(os.path.join("csrc", "*.cpp")) + glob.glob(os.path.join("csrc", "*.cu")))
    reason = None
    if not sources:
        reason = "csrc/ holds no sources"
    else:
        # a standard toolkit location wins over an nvcc wrapper on PATH (torch would take PATH's parent)
        if not (os.environ.get("CUDA_HOME") or os.environ.get("CUDA_PATH")) and os.path.exists("/usr/local/cuda/bin/nvcc"):
            os.environ["CUDA_HOME"] = "/usr/local/cuda"
        try:
            import torch
            from torch.utils.cpp_extension import CUDA_HOME, BuildExtension, CUDAExtension
        except ImportError:
            reason = "torch is not importable in the build environment (use pip install --no-build-isolation)"
        else:
            if torch.version.cuda is None:
                reason = f"torch {torch.__version__} is a CPU build"
            elif CUDA_HOME is None:
                reason = "no CUDA toolkit found (set CUDA_HOME or put nvcc on PATH)"
    if reason is not None:
        if force:
            raise RuntimeError(f"SNNKERN_FORCE_CUDA_BUILD=1 but the CUDA extension cannot be built: {reason}")
        _say(f"{reason}: installing without the CUDA extension (Triton kernels and the reference still work)")
        _note_build(f"the install did not build it: {reason}")
        return [], {}
    _note_build(None)
    if "TORCH_CUDA_ARCH_LIST" not in os.environ:
        # a machine with a GPU builds for its own (torch reads the visible devices when the list is unset);
        # one without builds one architecture: enough to prove csrc compiles, minutes instead of a quarter hour
        if not torch.cuda.is_available():
            os.environ["TORCH_CUDA_ARCH_LIST"] = NO_GPU_ARCH_LIST
    _say(f"building snnkern._C for TORCH_CUDA_ARCH_LIST={os.environ.get('TORCH_CUDA_ARCH_LIST', 'the visible GPUs')} "
         "(a few minutes per architecture on two cores)")
    ext = CUDAExtension(
        name="snnkern._C",
        sources=sources,
        include_dirs=[os.path.join(HERE, "csrc")],
        # no FMA contraction and no fast math: the kernels must equal the PyTorch reference bit for bit
        extra_compile_args={"cxx": ["-O3", "-ffp-contract=off"],  # the C++ standard: torch picks it
                            "nvcc": ["-O3", "-fmad=false", "-Xcompiler", "-ffp-contract=off"]},
    )
    return [ext], {"build_ext": BuildExtension.with_options(use_ninja=True)}


ext_modules, cmdclass = cuda_extension()

with open(os.path.join(HERE, "README.md"), encoding="utf-8") as f:
    long_description = f.read()

# the versions the tests run against (their semantics are what swap reproduces bit for bit)
PEERS = ["snntorch==1.0.0", "spikingjelly==2.0.0"]
NIR = ["nir==1.0.8", "nirtorch==2.6"]  # the versions the snnTorch NIR round-trip tests ran against
EVENTS = ["tonic>=1.4"]  # N-MNIST (Luo 2024 experiment 3): tonic's reader, denoising and framing
setup(
    name="snnkern",
    version="0.1.0",
    description="Fused GPU kernels for spiking neural networks in PyTorch, with energy accounting and ANN-vs-SNN studies",
    long_description=long_description,
    long_description_content_type="text/markdown",
    license="MIT",
    python_requires=">=3.9",
    packages=find_packages(include=["snnkern", "snnkern.*"]),
    package_data={"snnkern": ["_build_note.txt"]},
    install_requires=["torch>=2.6", "triton>=3.0; platform_system == 'Linux'", "numpy", "tqdm"],
    extras_require={
        "peers": PEERS,
        "nir": NIR,
        "events": EVENTS,
        "test": ["pytest>=7", "pytest-benchmark>=4", "hypothesis>=6", "scikit-learn", "mlxtend", "matplotlib",
                 "nvidia-ml-py", "torchvision"]
        + PEERS + NIR + EVENTS,
        "study": ["scikit-learn", "mlxtend", "matplotlib", "nvidia-ml-py", "torchvision"],
        "bench": ["pytest>=7", "pytest-benchmark>=4", "nvidia-ml-py", "matplotlib"] + PEERS,
    },
    entry_points={"console_scripts": ["snnkern=snnkern.cli:main"]},
    ext_modules=ext_modules,
    cmdclass=cmdclass,
    zip_safe=False,
)
