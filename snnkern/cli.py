"""Command line: ``snnkern compare`` (the ANN-vs-SNN study), ``snnkern train`` (a preset's SNN, under DDP
with ``--ddp`` and torchrun), ``snnkern presets``, ``snnkern info``."""
from __future__ import annotations

import argparse
import os
import platform
import sys

import torch

from . import HAS_TRITON, __version__, cuda_extension_available, extension_status, functional, last_backend
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
    rows.append(("C++/CUDA extension", extension_status()))
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
    if cuda_extension_available():
        backends.append("cuda")
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


def cmd_presets(args) -> int:
    from .experiments import PRESETS
    from .experiments.paper import METRICS

    for p in PRESETS.values():
        print(f"{p.name:<22} {p.arch.upper()} on {p.dataset}: {p.source}")
        if p.filled:
            print(f"{'':<22} filled defaults: {'; '.join(p.filled)}")
        if p.paper:
            print(f"{'':<22} the paper ({p.paper_setup}) reported:")
            for f in p.paper:
                on = f", {f.dataset}" if f.dataset else ""
                print(f"{'':<24} {f.model.upper():<4} {METRICS[f.metric][0]}: {f.value:g} ({f.where}{on})")
    return 0


def cmd_compare(args) -> int:
    from .experiments import PRESETS, run_study, write_report
    from .experiments.report import verdict

    if args.preset not in PRESETS:
        print(f"snnkern compare: unknown preset {args.preset!r}; see `snnkern presets`", file=sys.stderr)
        return 2
    preset = PRESETS[args.preset]
    if args.robustness and preset.encoding == "events":  # refused before any training, not after
        print(f"snnkern compare: --robustness perturbs images; preset {preset.name!r} reads event frames",
              file=sys.stderr)
        return 2
    problem = _check_out_dir(args.out)
    if problem:
        print(f"snnkern compare: {problem}", file=sys.stderr)
        return 2
    if args.smoke:
        preset = preset.override(epochs=1, T=4, T_list=(2, 4))
        args.subset = args.subset or 256
    changes = dict(epochs=args.epochs, batch_size=args.batch_size)
    if args.T:
        changes.update(T=max(args.T), T_list=tuple(sorted(args.T)))
    preset = preset.override(**changes)
    # a filled-in default that the command line replaced is no longer the run's setting: say what is
    given = {k for k, v in changes.items() if v is not None} | ({"epochs", "T"} if args.smoke else set())
    stale = tuple(f for f in preset.filled if any(word in f for k in given for word in FILLED_WORDS.get(k, ())))
    if stale:
        epochs = f"{preset.epochs} epoch{'s' if preset.epochs != 1 else ''}"
        said = {"T": f"T={preset.T}", "batch_size": f"batch size {preset.batch_size}", "epochs": epochs}
        preset = preset.override(filled=tuple(f for f in preset.filled if f not in stale)
                                 + ("set on the command line: " + ", ".join(v for k, v in said.items() if k in given),))
    data = _load_data("compare", args, preset)
    if data is None:
        return 2
    device = _device("compare", args)
    if device is None:
        return 2
    print(f"snnkern compare: preset {preset.name} on {data.name} ({data.source}), device {device}")
    # a smoke run proves every stage, not the numbers: fewer timed calls and count batches (a spread still)
    timing = dict(repeats=3, count_batches=2) if args.smoke else {}
    result = run_study(preset, data, device, with_robustness=args.robustness, progress=not args.quiet,
                       threads=args.threads, download=args.download, **timing)
    paths = write_report(result, args.out)
    print(f"report: {paths['markdown']} (and {paths['json']}, plots in {args.out})")
    for key in ("ann", "snn", "snn_event", "converted", "converted_event"):
        if isinstance(result.get(key), dict):
            r = result[key]
            joules = r["measured_j_per_sample"]
            joules = f"{joules:.3g} J/sample measured" if isinstance(joules, float) else "J/sample unavailable"
            print(f"  {r['name']:<34} accuracy {r['accuracy']:.4f}  {r['inference_ms_per_sample']:.4g} ms/sample  "
                  f"{joules}  {r['estimated_j_per_sample']:.3g} J/sample estimated")
    for line in verdict(result):
        print(f"verdict: {line}")
    return 0


def cmd_train(args) -> int:
    """Train a preset's SNN for --steps steps; with --ddp, one process of a torchrun job (DDP)."""
    from .experiments import PRESETS
    from .experiments.distributed import init_distributed, train_snn

    if args.preset not in PRESETS:
        print(f"snnkern train: unknown preset {args.preset!r}; see `snnkern presets`", file=sys.stderr)
        return 2
    preset = PRESETS[args.preset].override(T=args.T, lr=args.lr, hidden=tuple(args.hidden) if args.hidden else None)
    data = _load_data("train", args, preset)
    if data is None:
        return 2
    device = _device("train", args)
    if device is None:
        return 2
    try:
        if args.ddp:
            device = init_distributed(args.device)
    except RuntimeError as exc:  # not under torchrun
        print(f"snnkern train: {exc}", file=sys.stderr)
        return 2
    try:
        result = train_snn(preset, data, steps=args.steps, batch_size=args.batch_size, seed=args.seed, device=device,
                           learn_beta=args.learn_beta, learn_threshold=args.learn_threshold,
                           spike_layers=args.spike_layers, backend=args.backend, evaluate=not args.no_eval,
                           out=args.out)
        if args.ddp:
            # every rank past its last collective and rank 0's saving before any tears gloo down: a rank that
            # destroyed its group while the other still used its connection aborted ("terminate called
            # without an active exception": 4 runs in 30 here, none in 24 with the barrier)
            torch.distributed.barrier()
    except ValueError as exc:
        print(f"snnkern train: {exc}", file=sys.stderr)
        return 2
    finally:
        if args.ddp and torch.distributed.is_initialized():
            torch.distributed.destroy_process_group()
    if result is not None:  # rank 0
        m = result["metrics"]
        print(f"snnkern train: {preset.name} SNN on {data.name}, {m['steps']} steps of {m['global_batch']} samples "
              f"on {m['world_size']} process(es) ({m['backend']}, {m['device']}): final loss {m['final_loss']:.4f}, "
              f"{m['samples_per_second']:.1f} samples/s"
              + (f", test accuracy {m['accuracy']:.4f}" if "accuracy" in m else ""))
        print(f"weights and metrics: {os.path.join(args.out, 'snn.pt')}, {os.path.join(args.out, 'metrics.json')}")
    return 0


# words by which a preset's filled-in defaults name a setting the command line can replace
FILLED_WORDS = {"T": ("T=",), "T_list": ("T=",), "batch_size": ("batch size",), "epochs": ("epochs",)}


def _load_data(prog: str, args, preset):
    """The dataset named by --dataset (or a one-line error saying how to provide it); without one, the
    preset's, else its offline fallbacks in turn, the switch said. None after printing the error."""
    from .data import OFFLINE_FALLBACK, DatasetUnavailable, load_dataset

    dataset = args.dataset or preset.dataset
    try:
        return load_dataset(dataset, data_dir=args.data_dir, download=getattr(args, "download", False),
                            val_fraction=preset.val_fraction, subset=args.subset)
    except DatasetUnavailable as exc:
        if not args.dataset:
            for fallback in OFFLINE_FALLBACK.get(dataset, ("digits",)):
                try:
                    data = load_dataset(fallback, val_fraction=preset.val_fraction, subset=args.subset)
                except DatasetUnavailable as missing:
                    print(f"note: offline {fallback!r} unavailable too ({missing})")
                    continue
                print(f"note: preset dataset {dataset!r} unavailable ({exc}); running on the offline {fallback!r} "
                      f"instead")
                return data
        print(f"snnkern {prog}: {exc}", file=sys.stderr)
        return None


def _device(prog: str, args):
    """--device, else CUDA when there is one; None after a one-line error when CUDA is asked for and absent."""
    if args.device == "cuda" and not torch.cuda.is_available():
        print(f"snnkern {prog}: --device cuda but no CUDA device is available", file=sys.stderr)
        return None
    return torch.device(args.device or ("cuda" if torch.cuda.is_available() else "cpu"))


def _positive_int(text: str) -> int:
    """argparse type: an integer >= 1 (argparse turns the ValueError into a one-line usage error)."""
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be a positive integer, got {text}")
    return value


def _check_out_dir(path: str) -> str | None:
    """Why ``path`` cannot hold the report, or None; creates it, so this is known before hours of training."""
    if os.path.exists(path) and not os.path.isdir(path):
        return f"--out {path!r} is an existing file, not a directory"
    try:
        os.makedirs(path, exist_ok=True)
        probe = os.path.join(path, ".snnkern-write-test")
        with open(probe, "w"):
            pass
        os.remove(probe)
    except OSError as exc:
        return f"--out {path!r} cannot be written ({exc.strerror or exc})"
    return None


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="snnkern", description="Fused SNN kernels for PyTorch")
    sub = parser.add_subparsers(dest="command", required=True)
    cmp_ = sub.add_parser("compare", help="train an ANN and an SNN, convert the ANN, measure, write a report")
    cmp_.add_argument("--preset", default="luo2024-mlp", help="see `snnkern presets` (default luo2024-mlp)")
    cmp_.add_argument("--dataset", default=None,
                      help="mnist-5k (5,000 real MNIST digits, offline), digits (8x8, offline), mnist, fashion-mnist, "
                           "cifar10, flowers102, nmnist (tonic), mnist-32")
    cmp_.add_argument("--data-dir", default=None, help="where torchvision datasets are (or go with --download)")
    cmp_.add_argument("--download", action="store_true", help="let torchvision download the dataset")
    cmp_.add_argument("--epochs", type=_positive_int, default=None, help="override the preset's epochs")
    cmp_.add_argument("--batch-size", type=_positive_int, default=None)
    cmp_.add_argument("--T", type=_positive_int, nargs="+", default=None,
                      help="time steps: the SNN runs at the largest, the converted SNN is evaluated at all")
    cmp_.add_argument("--subset", type=_positive_int, default=None,
                      help="use only this many training images (quick runs)")
    cmp_.add_argument("--smoke", action="store_true",
                      help="a smoke run: 1 epoch, 256 training images, T=4 (converted at 2 and 4), to see every "
                           "stage work in seconds; the numbers mean nothing")
    cmp_.add_argument("--device", choices=["cpu", "cuda"], default=None)
    cmp_.add_argument("--out", default="snnkern-report", help="output directory (default snnkern-report)")
    cmp_.add_argument("--robustness", action="store_true", help="Gaussian noise and FGSM sweeps, ANN vs SNN")
    cmp_.add_argument("--quiet", action="store_true", help="no progress bars")
    cmp_.add_argument("--threads", type=_positive_int, default=None,
                      help="torch CPU threads (default: torch's own, at most the cores available); recorded")
    cmp_.set_defaults(func=cmd_compare)
    trn = sub.add_parser("train", help="train a preset's SNN; --ddp under torchrun: DistributedDataParallel",
                         description="Train a preset's SNN. Data parallel over N processes: torchrun --standalone "
                                     "--nproc_per_node=N -m snnkern train --ddp ... (gloo on CPU, nccl on CUDA)")
    trn.add_argument("--ddp", action="store_true",
                     help="one process of a torchrun job: DistributedDataParallel over the job's processes")
    trn.add_argument("--preset", default="luo2024-mlp", help="see `snnkern presets` (default luo2024-mlp)")
    trn.add_argument("--dataset", default=None, help="as for compare (default: the preset's, else an offline one)")
    trn.add_argument("--data-dir", default=None)
    trn.add_argument("--subset", type=_positive_int, default=None, help="use only this many training images")
    trn.add_argument("--steps", type=_positive_int, default=None, help="optimizer steps (default: the preset's epochs)")
    trn.add_argument("--batch-size", type=_positive_int, default=None,
                     help="global batch, split evenly over the processes (default: the preset's)")
    trn.add_argument("--T", type=_positive_int, default=None, help="time steps (default: the preset's)")
    trn.add_argument("--hidden", type=_positive_int, nargs="+", default=None, help="MLP hidden sizes")
    trn.add_argument("--lr", type=float, default=None, help="Adam learning rate (default: the preset's)")
    trn.add_argument("--learn-beta", action="store_true", help="learnable beta in every LIF")
    trn.add_argument("--learn-threshold", action="store_true", help="learnable threshold in every LIF")
    trn.add_argument("--spike-layers", action="store_true",
                     help="spike-fed Linear/Conv2d as SpikeLinear/SpikeConv2d (input spikes saved as bits)")
    trn.add_argument("--backend", choices=["auto", "triton", "torch"], default="auto",
                     help="for neurons and spike layers (triton on CPU needs TRITON_INTERPRET=1)")
    trn.add_argument("--seed", type=int, default=0)
    trn.add_argument("--device", choices=["cpu", "cuda"], default=None)
    trn.add_argument("--no-eval", action="store_true", help="skip the test-set evaluation")
    trn.add_argument("--out", default="snnkern-train", help="where rank 0 writes snn.pt and metrics.json")
    trn.set_defaults(func=cmd_train)
    pre = sub.add_parser("presets", help="list the study presets and their sources")
    pre.set_defaults(func=cmd_presets)
    info = sub.add_parser("info", help="versions, GPU, backends, and a self-check of the LIF kernels")
    info.add_argument("--device", choices=["cpu", "cuda"], default=None)
    info.set_defaults(func=cmd_info)
    args = parser.parse_args(argv)
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
