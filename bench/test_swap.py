"""Training-step time of loop-style snnTorch and multi-step SpikingJelly models, before and after
``snnkern.swap``, and the snnTorch model rewritten with ``SpikingSequential`` (issue 4's benchmark)."""
from __future__ import annotations

import copy

import pytest
import torch
from torch import nn

import snnkern
from snnkern.nn import LIF, SpikingSequential, mse_count_loss, reset_states

from .common import ON_GPU, record

pytestmark = pytest.mark.energy  # records measured energy (bench/conftest.py: the idle baseline)

DEVICE = "cuda" if ON_GPU else "cpu"
# snnTorch tutorial 5: 784-1000-10, beta=0.95, 25 steps, batch 128 (CPU: a smoke-sized version)
T, BATCH, IN, HIDDEN, OUT = (25, 128, 784, 1000, 10) if ON_GPU else (5, 8, 64, 32, 10)
snntorch = pytest.importorskip("snntorch", reason="snnTorch not installed (pip install .[peers])")


class TutorialMLP(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc1, self.fc2 = nn.Linear(IN, HIDDEN), nn.Linear(HIDDEN, OUT)
        self.lif1, self.lif2 = snntorch.Leaky(beta=0.95), snntorch.Leaky(beta=0.95)

    def forward(self, x):
        mem1, mem2 = self.lif1.init_leaky(), self.lif2.init_leaky()
        out = []
        for t in range(x.shape[0]):
            spk1, mem1 = self.lif1(self.fc1(x[t]), mem1)
            spk2, mem2 = self.lif2(self.fc2(spk1), mem2)
            out.append(spk2)
        return torch.stack(out)


def _train_step(model, x, y):
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)

    def step():
        reset_states(model)
        opt.zero_grad(set_to_none=True)
        mse_count_loss(model(x), y, correct_rate=0.8, incorrect_rate=0.2).backward()
        opt.step()
    return step


@pytest.mark.parametrize("variant", ["snntorch", "snntorch+swap", "spiking_sequential"])
def test_snntorch_mlp_train_step(benchmark, meta, variant):
    torch.manual_seed(0)
    base = TutorialMLP().to(DEVICE)
    if variant == "snntorch":
        model = base
    elif variant == "snntorch+swap":
        model = snnkern.swap(copy.deepcopy(base)).model
    else:
        model = SpikingSequential(base.fc1, LIF(beta=0.95), base.fc2, LIF(beta=0.95)).to(DEVICE)
    x = torch.rand(T, BATCH, IN, device=DEVICE)
    y = torch.randint(0, OUT, (BATCH,), device=DEVICE)
    benchmark.group = f"swap: snnTorch tutorial MLP train step T={T} B={BATCH}"
    record(benchmark, _train_step(model, x, y), meta, impl=variant, T=T, N=BATCH * HIDDEN, dtype="fp32",
           mode="train_step", baseline=variant == "snntorch", samples_per_call=BATCH)


@pytest.mark.parametrize("variant", ["spikingjelly", "spikingjelly+swap"])
def test_spikingjelly_cnn_train_step(benchmark, meta, variant):
    sj = pytest.importorskip("spikingjelly.activation_based", reason="SpikingJelly not installed")
    from spikingjelly.activation_based import functional, layer, neuron

    channels, size, steps, batch = (64, 32, 8, 32) if ON_GPU else (4, 8, 2, 2)
    torch.manual_seed(0)
    model = nn.Sequential(
        layer.Conv2d(3, channels, 3, padding=1), layer.BatchNorm2d(channels), neuron.LIFNode(tau=2.0),
        layer.MaxPool2d(2),
        layer.Conv2d(channels, channels, 3, padding=1), layer.BatchNorm2d(channels), neuron.LIFNode(tau=2.0),
        layer.MaxPool2d(2), layer.Flatten(), layer.Linear(channels * (size // 4) ** 2, 10), neuron.LIFNode(tau=2.0),
    ).to(DEVICE)
    functional.set_step_mode(model, "m")
    if variant.endswith("+swap"):
        snnkern.swap(model)
    x = torch.rand(steps, batch, 3, size, size, device=DEVICE)
    y = torch.randint(0, 10, (batch,), device=DEVICE)
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)

    def step():
        functional.reset_net(model)
        opt.zero_grad(set_to_none=True)
        nn.functional.cross_entropy(model(x).mean(0), y).backward()
        opt.step()
    benchmark.group = f"swap: SpikingJelly CNN train step T={steps} B={batch} C={channels}"
    record(benchmark, step, meta, impl=variant, T=steps, N=batch * channels * size * size, dtype="fp32",
           mode="train_step", baseline=variant == "spikingjelly", samples_per_call=batch)
