"""Distributed data parallel (``snnkern.experiments.distributed``, ``snnkern train --ddp``): two gloo
processes on CPU train what one process trains on the same global batch."""
import json
import os
import subprocess
import sys
import time

import pytest
import torch
from torch.utils.data.distributed import DistributedSampler

from snnkern._dispatch import last_backend, triton_interpret
from snnkern.data import load_dataset
from snnkern.experiments import PRESETS
from snnkern.experiments.distributed import build_snn, encode, init_distributed, train_snn
from snnkern.nn import LIF, SpikeLinear, reset_states
from snnkern.ops import HAS_TRITON

# a small SNN: 64 -> 32 LIF -> SpikeLinear 10 -> LIF, learnable beta and threshold in both LIFs;
# lr 0.01 so that every layer spikes within the 20 steps
STEPS, GLOBAL_BATCH, T, HIDDEN, LR = 20, 8, 4, 32, 0.01
# SpikeLinear saves its input as bits on the Triton path (the reference backend keeps dense spikes)
BACKEND = "triton" if HAS_TRITON and triton_interpret() else "torch"


def _preset():
    return PRESETS["luo2024-mlp"].override(T=T, hidden=(HIDDEN,), lr=LR)


def test_rate_coding_of_a_sample_does_not_depend_on_the_process_count():
    x = torch.rand(6, 1, 2, 2)
    whole = encode(x, 3, "rate", torch.Generator().manual_seed(5))
    # DistributedSampler hands process r the positions r, r+W, ... of every global batch
    ds = list(range(12))
    per_rank = [list(DistributedSampler(ds, num_replicas=2, rank=r, shuffle=True, seed=3)) for r in range(2)]
    single = list(DistributedSampler(ds, num_replicas=1, rank=0, shuffle=True, seed=3))
    assert [i for pair in zip(*per_rank) for i in pair] == single
    for rank in range(2):
        part = encode(x[rank::2], 3, "rate", torch.Generator().manual_seed(5), rank, 2)
        assert torch.equal(part, whole[:, rank::2])
    assert torch.equal(encode(x, 3, "direct", None), x.expand(3, *x.shape))


def test_snn_holds_no_state_ddp_would_broadcast():
    snn = build_snn(_preset(), (1, 8, 8), 10, learn_beta=True, learn_threshold=True, spike_layers=True)
    assert [type(m) for m in snn if isinstance(m, (LIF, SpikeLinear))] == [LIF, SpikeLinear, LIF]
    learnable = {n for n, _ in snn.named_parameters() if n.endswith(("beta", "threshold"))}
    assert learnable == {"2.beta", "2.threshold", "4.beta", "4.threshold"}
    assert list(snn.buffers()) == []  # nothing for DDP to broadcast: the membrane is a plain attribute
    snn(encode(torch.rand(4, 1, 8, 8), T, "rate", torch.Generator().manual_seed(0)))
    assert snn[2].v is not None and "2.v" not in snn.state_dict()
    reset_states(snn)
    assert snn[2].v is None


def test_ddp_outside_torchrun_names_the_recipe(monkeypatch):
    monkeypatch.delenv("RANK", raising=False)
    with pytest.raises(RuntimeError, match="torchrun --standalone --nproc_per_node=2"):
        init_distributed("cpu")


def test_two_gloo_processes_train_what_one_process_trains(tmp_path):
    """The README recipe (torchrun, 2 CPU processes, gloo) for 20 steps vs this process on the same global
    batches: every parameter within 1e-5, learnable beta/threshold and the bit-saving SpikeLinear included."""
    args = ["--preset", "luo2024-mlp", "--dataset", "digits", "--steps", str(STEPS), "--batch-size", str(GLOBAL_BATCH),
            "--T", str(T), "--hidden", str(HIDDEN), "--lr", str(LR), "--learn-beta", "--learn-threshold",
            "--spike-layers", "--backend", BACKEND, "--device", "cpu", "--no-eval", "--out", str(tmp_path)]
    env = dict(os.environ, OMP_NUM_THREADS="1")
    t0 = time.perf_counter()
    # --standalone: torchrun picks a free port for the rendezvous
    run = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2",
                          "-m", "snnkern", "train", "--ddp", *args], env=env, capture_output=True, text=True,
                         timeout=240)
    ddp_seconds = time.perf_counter() - t0
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    assert "on 2 process(es) (gloo, cpu)" in run.stdout
    saved = torch.load(tmp_path / "snn.pt")
    metrics = json.loads((tmp_path / "metrics.json").read_text())
    assert metrics["world_size"] == 2 and metrics["steps"] == STEPS and metrics["backend"] == "gloo"
    assert metrics["max_parameter_difference_between_processes"] == 0.0  # DDP kept the processes in step

    data = load_dataset("digits", val_fraction=_preset().val_fraction)
    single = train_snn(_preset(), data, steps=STEPS, batch_size=GLOBAL_BATCH, learn_beta=True, learn_threshold=True,
                       spike_layers=True, backend=BACKEND, evaluate=False)
    assert single["metrics"]["world_size"] == 1
    assert last_backend("spike_linear") == BACKEND  # on "triton": grad_weight from the saved bits
    ref, got = single["state_dict"], saved["state_dict"]
    assert set(ref) == set(got) and {"2.beta", "2.threshold", "4.beta", "4.threshold", "3.weight"} <= set(ref)
    torch.manual_seed(0)  # train_snn's seed: the initial weights
    snn = build_snn(_preset(), data.input_shape, data.classes, learn_beta=True, learn_threshold=True)
    initial = {k: v.clone() for k, v in snn.state_dict().items()}
    diffs = {k: (got[k] - ref[k]).abs().max().item() for k in ref}
    print(f"DDP run {ddp_seconds:.1f} s; max |w_ddp - w_single| per parameter: {diffs}")
    for k in ref:
        assert not torch.equal(ref[k], initial[k]), f"{k} did not train"
        assert diffs[k] <= 1e-5, f"{k}: DDP and single-process weights differ by {diffs[k]:.3g}"
    assert abs(metrics["final_loss"] - single["metrics"]["final_loss"]) <= 1e-6
    snn.load_state_dict(got)  # the trained SNN spikes in every layer: the test compared a working network
    rates = []
    for m in (snn[2], snn[4]):
        m.register_forward_hook(lambda _m, _i, out: rates.append(float(out.mean())))
    with torch.no_grad():
        snn(encode(data.train[0][:64], T, "rate", torch.Generator().manual_seed(0)))
    assert min(rates) > 0.01, rates
