"""Distributed data parallel training of a preset's SNN: ``torch.distributed`` + ``DistributedDataParallel``.

One process per device, started by ``torchrun`` (it sets RANK, LOCAL_RANK, WORLD_SIZE, MASTER_ADDR/PORT)::

    torchrun --standalone --nproc_per_node=2 -m snnkern train --ddp --preset luo2024-mlp --steps 200

gloo on CPU, nccl on CUDA (process ``LOCAL_RANK`` on ``cuda:LOCAL_RANK``). The batch size is the
global batch: each of the W processes takes batch_size / W samples of every step (DistributedSampler)
and DDP averages the gradients, so W processes train what one process trains on the whole batch, to
fp32 rounding. What makes it equal, not only alike:

- rate coding draws the Poisson spikes of a step for the whole global batch from a generator seeded by
  (seed, step), and each process keeps its own samples' rows: a sample sees the same spikes however
  many processes share the batch (DistributedSampler gives process r the positions r, r+W, r+2W, ...
  of each global batch);
- the neurons' membrane state is a plain attribute, never a buffer that DDP would broadcast (its
  shape follows the local batch), and it is reset before every batch;
- a learnable beta / threshold is a parameter used in every forward: DDP all-reduces its gradient
  like a weight's (no ``find_unused_parameters``);
- ``SpikeLinear`` saves its input spikes as bits and computes grad_weight from them; its cached bf16
  weight parts are keyed on the weight's version, which DDP's initial broadcast and every optimizer
  step bump. With ``algorithm="auto"`` each process picks the kernel from its own inputs' firing rate
  (gather below 1%, else tiles): the kernels differ in summation order only, not in the result beyond
  fp32 rounding.

Not equal across process counts: dropout masks (drawn per process, alike in distribution only), and a
training set whose size W does not divide (DistributedSampler repeats samples to even it out).
"""
from __future__ import annotations

import json
import os
import time

import torch
import torch.distributed as dist
from torch import nn
from torch.nn.parallel import DistributedDataParallel
from torch.utils.data import DataLoader, TensorDataset
from torch.utils.data.distributed import DistributedSampler

from ..data import Splits
from ..nn import LIF, event_driven, reset_states
from .presets import Preset, build_model
from .runner import SNNClassifier, spike_loss
from .runner import evaluate as evaluate_model

TORCHRUN_VARS = ("RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT")
RECIPE = "torchrun --standalone --nproc_per_node=2 -m snnkern train --ddp --preset luo2024-mlp"


def init_distributed(device: str | None = None) -> torch.device:
    """Join the process group that torchrun's environment describes (gloo on CPU, nccl on CUDA) and
    return this process's device. Raises RuntimeError, with the recipe, outside torchrun."""
    missing = [k for k in TORCHRUN_VARS if k not in os.environ]
    if missing:
        raise RuntimeError(f"DDP runs under torchrun, which sets {', '.join(missing)}; e.g. {RECIPE}")
    use_cuda = device == "cuda" or (device is None and torch.cuda.is_available())
    if use_cuda:
        local_rank = int(os.environ["LOCAL_RANK"])
        torch.cuda.set_device(local_rank)
        dev = torch.device("cuda", local_rank)
    else:
        dev = torch.device("cpu")
    if not dist.is_initialized():
        dist.init_process_group("nccl" if use_cuda else "gloo")
    return dev


def build_snn(p: Preset, input_shape: tuple, classes: int, *, learn_beta: bool = False,
              learn_threshold: bool = False, spike_layers: bool = False, backend: str = "auto") -> nn.Module:
    """The preset's SNN (``build_model``) with, as asked, learnable beta / threshold in every LIF, its
    spike-fed Linear/Conv2d layers as SpikeLinear/SpikeConv2d (``event_driven``: input spikes saved as
    bits), and ``backend`` for neurons and spike layers."""
    snn = build_model(p, input_shape, classes, spiking=True)
    for m in snn.modules():
        if isinstance(m, LIF):
            m.backend = backend
            for name, learn in (("beta", learn_beta), ("threshold", learn_threshold)):
                if learn:
                    setattr(m, name, nn.Parameter(torch.tensor(float(getattr(m, name)))))
    if spike_layers:
        event_driven(snn, backend=backend, packed=False)
    return snn


def encode(x: torch.Tensor, T: int, encoding: str, generator: torch.Generator | None, rank: int = 0,
           world: int = 1) -> torch.Tensor:
    """Images [B, ...] -> input sequence [T, B, ...]. ``"rate"``: Poisson spikes, drawn for the global
    batch [T, world*B, ...] from ``generator`` and cut to this process's rows (rank, rank+world, ...),
    so that a sample's spikes do not depend on the number of processes. ``"direct"``: x at every step."""
    x_seq = x.unsqueeze(0).expand(T, *x.shape)
    if encoding != "rate":
        return x_seq
    u = torch.rand((T, world * x.shape[0], *x.shape[1:]), generator=generator, device=x.device)
    return (u[:, rank::world] < x_seq).to(x.dtype)


def _rank_divergence(model: nn.Module) -> float:
    """Largest |parameter - rank 0's| over all parameters and processes (0 when DDP kept them in step)."""
    worst = torch.zeros((), dtype=torch.float64)
    for q in model.parameters():
        ref = q.detach().clone()
        dist.broadcast(ref, 0)
        worst = torch.maximum(worst, (q.detach() - ref).abs().max().double().cpu())
    worst = worst.to(next(model.parameters()).device)
    dist.all_reduce(worst, op=dist.ReduceOp.MAX)
    return float(worst)


def train_snn(p: Preset, data: Splits, *, steps: int | None = None, batch_size: int | None = None, seed: int = 0,
              device: torch.device | str = "cpu", learn_beta: bool = False, learn_threshold: bool = False,
              spike_layers: bool = False, backend: str = "auto", evaluate: bool = True,
              out: str | None = None) -> dict | None:
    """Train ``p``'s SNN with Adam(p.lr) for ``steps`` optimizer steps (default: p.epochs epochs) on global
    batches of ``batch_size`` (default p.batch_size) — under DDP when a process group is initialized
    (``init_distributed``), else in this one process.

    Returns, on rank 0, ``{"state_dict": ..., "metrics": ...}`` (weights on the CPU; metrics: steps, final
    global-batch loss, seconds, samples/s, world size, the largest parameter difference between
    processes, test accuracy if ``evaluate``) and writes them to ``out``/snn.pt and ``out``/metrics.json
    when ``out`` is given; returns None on the other ranks."""
    ddp = dist.is_available() and dist.is_initialized()
    rank, world = (dist.get_rank(), dist.get_world_size()) if ddp else (0, 1)
    device = torch.device(device)
    global_batch = batch_size or p.batch_size
    if global_batch % world:
        raise ValueError(f"batch_size {global_batch} must be a multiple of the number of processes ({world})")
    if steps is not None and steps < 1:
        raise ValueError(f"steps must be a positive integer, got {steps}")
    if p.encoding == "events":  # frames rendered per batch (data.EventFrames): not a TensorDataset
        raise ValueError(f"preset {p.name!r} reads event frames, which snnkern train does not take yet; "
                         "run it with snnkern compare")

    torch.manual_seed(seed)  # every process builds the same initial weights (DDP broadcasts rank 0's anyway)
    snn = build_snn(p, data.input_shape, data.classes, learn_beta=learn_beta, learn_threshold=learn_threshold,
                    spike_layers=spike_layers, backend=backend).to(device)
    model = DistributedDataParallel(snn, device_ids=[device.index] if device.type == "cuda" else None) if ddp else snn
    opt = torch.optim.Adam(model.parameters(), lr=p.lr)
    x, y = data.train
    sampler = DistributedSampler(TensorDataset(x, y), num_replicas=world, rank=rank, shuffle=True, seed=seed)
    loader = DataLoader(TensorDataset(x, y), batch_size=global_batch // world, sampler=sampler)
    gen = torch.Generator(device=device)
    total = steps if steps is not None else p.epochs * len(loader)

    model.train()
    step, epoch, loss = 0, 0, torch.zeros(())
    t0 = time.perf_counter()
    while step < total:
        sampler.set_epoch(epoch)
        for xb, yb in loader:
            xb, yb = xb.to(device), yb.to(device)
            gen.manual_seed(seed * 1_000_003 + step)
            reset_states(snn)  # a new batch: no membrane (nor graph) carried over from the last one
            loss = spike_loss(p, model(encode(xb, p.T, p.encoding, gen, rank, world)), yb)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            step += 1
            if step == total:
                break
        epoch += 1
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    seconds = time.perf_counter() - t0
    final_loss = loss.detach().double()
    divergence = 0.0
    if ddp:
        dist.all_reduce(final_loss)  # equal local batches: the global-batch loss is the mean of the ranks'
        final_loss /= world
        divergence = _rank_divergence(snn)
    reset_states(snn)
    if rank != 0:
        return None
    metrics = {"preset": p.name, "dataset": data.name, "steps": step, "epochs_started": epoch,
               "global_batch": global_batch, "world_size": world, "backend": dist.get_backend() if ddp else "none",
               "device": str(device), "T": p.T, "final_loss": float(final_loss), "seconds": seconds,
               "samples_per_second": step * global_batch / seconds if seconds > 0 else float("nan"),
               "max_parameter_difference_between_processes": divergence}
    if evaluate:
        torch.manual_seed(seed)
        metrics.update(evaluate_model(SNNClassifier(snn, p.T, p.encoding), data.test, device, global_batch))
    state = {k: v.detach().cpu() for k, v in snn.state_dict().items()}
    if out:
        os.makedirs(out, exist_ok=True)
        torch.save({"state_dict": state, "metrics": metrics}, os.path.join(out, "snn.pt"))
        with open(os.path.join(out, "metrics.json"), "w") as f:
            json.dump(metrics, f, indent=2)
    return {"state_dict": state, "metrics": metrics}


__all__ = ["init_distributed", "build_snn", "encode", "train_snn"]
