"""The seeds' networks as ANN and as SNN (trained-style with snnkern neurons, the same with its spike-fed
layers event-driven (``snnkern.nn.event_driven``), and converted, plain and event-driven), T in
{1, 4, 8, 16, 32}: inference and training-step throughput, latency, peak memory, and measured W and
J/sample (NVML) — the ``networks`` group of the suite (issue 8).

``test_vgg_cnn``: a spiking VGG-style CNN (6 conv layers in 3 stages, BatchNorm, average pooling, one
classifier layer) on 32x32x3 inputs, B=64, T in {4, 8}, train step and inference: snnkern's neurons in
a ``SpikingSequential`` against the same network with SpikingJelly 2.0's multi-step ``LIFNode`` (its
own default kernels) and against the dense ANN (ReLU) — time, peak memory and measured energy.

A session run (``SNNKERN_BENCH_SESSION=1``) keeps the seeds' MLP at T in {4, 8} and the VGG CNN.
"""
from __future__ import annotations

import pytest
import torch
from torch import nn

import snnkern
from snnkern.experiments import PRESETS, build_model
from snnkern.experiments.runner import SNNClassifier

from .common import ON_GPU, SESSION, record

pytestmark = pytest.mark.energy  # records measured energy (bench/conftest.py: the idle baseline)

DEVICE = "cuda" if ON_GPU else "cpu"
BATCH = 256 if ON_GPU else 4
TS = ([4, 8] if SESSION else [1, 4, 8, 16, 32]) if ON_GPU else [1, 4]
NETWORKS = {  # name: (preset, input shape)
    "mlp-784-256-256-10": ("luo2024-mlp", (1, 28, 28)),
    "mlp-S-256": ("cassetta2023-mlp-s", (1, 28, 28)),
    "mlp-M-512-256-64": ("cassetta2023-mlp-m", (1, 28, 28)),
    "mlp-L-2000-500-64-16": ("cassetta2023-mlp-l", (1, 28, 28)),
    "cnn-5conv-cifar10": ("luo2024-cnn", (3, 32, 32)),
    "cnn-lenet-mnist": ("niederlechner2019-cnn", (1, 28, 28)),
}
if SESSION:
    NETWORKS = {"mlp-784-256-256-10": NETWORKS["mlp-784-256-256-10"]}


def _model(network: str, kind: str, T: int):
    preset, shape = NETWORKS[network]
    p = PRESETS[preset]
    torch.manual_seed(0)
    x = torch.rand(BATCH, *shape, device=DEVICE)
    if kind == "ann":
        return build_model(p, shape, 10, spiking=False).to(DEVICE), x
    if kind in ("snn", "snn-event"):
        net = build_model(p, shape, 10, spiking=True).to(DEVICE)
        if kind == "snn-event":  # spike-fed Linear/Conv2d -> event-driven SpikeLinear/SpikeConv2d
            snnkern.nn.event_driven(net)
        return SNNClassifier(net, T, p.encoding), x
    ann = build_model(p, shape, 10, spiking=False).to(DEVICE).eval()
    snn = snnkern.convert(ann, x, T=T)
    if kind == "converted-event":  # thresholds folded into the spike-fed layers, which go event-driven
        snnkern.nn.event_driven(snn)
    return snn, x


@pytest.mark.parametrize("mode", ["inference", "train_step"])
@pytest.mark.parametrize("T", TS)
@pytest.mark.parametrize("kind", ["ann", "snn", "snn-event", "converted", "converted-event"])
@pytest.mark.parametrize("network", list(NETWORKS))
def test_network(benchmark, meta, network, kind, T, mode):
    if kind == "ann" and T != TS[0]:
        pytest.skip("the ANN has no time steps: measured once")
    if kind.startswith("converted") and mode == "train_step":
        pytest.skip("converted SNNs are for inference")
    model, x = _model(network, kind, T)
    y = torch.randint(0, 10, (BATCH,), device=DEVICE)
    fn = step_fn(model, x, y, mode, lambda params: torch.optim.Adam(params, lr=1e-3))
    benchmark.group = f"network {network} {mode}"
    record_network(benchmark, meta, fn, network, kind, T, mode, BATCH)


def step_fn(model, x, y, mode: str, make_optimizer):
    """What one benchmark call runs: a no-grad forward ("inference") or a training step."""
    if mode == "inference":
        model.eval()

        def fn():
            with torch.no_grad():
                model(x)
        return fn
    model.train()
    opt = make_optimizer(model.parameters())

    def fn():
        opt.zero_grad(set_to_none=True)
        nn.functional.cross_entropy(model(x).float(), y).backward()
        opt.step()
    return fn


def record_network(benchmark, meta, fn, network: str, kind: str, T: int, mode: str, batch: int):
    """Time fn and record it as one row of a network group (the ANN, T-less, is the baseline)."""
    stats = record(benchmark, fn, meta, impl=kind if kind == "ann" else f"{kind} T={T}", network=network, kind=kind,
                   T=0 if kind == "ann" else T, mode=mode, batch=batch, dtype="fp32", baseline=kind == "ann",
                   samples_per_call=batch)
    benchmark.extra_info["samples_per_s"] = batch / (stats["ms_median"] * 1e-3)


VGG_BATCH = 64 if ON_GPU else 2
VGG_TS = [4, 8] if ON_GPU else [2]
VGG_WIDTH = 64 if ON_GPU else 4  # channels of the first stage; x2 per stage


def vgg_layers(L, neuron, c=VGG_WIDTH):
    """The VGG-style CNN's layers from the layer namespace ``L`` (torch.nn, or SpikingJelly's ``layer``),
    with ``neuron()`` after every BatchNorm."""
    return [L.Conv2d(3, c, 3, padding=1), L.BatchNorm2d(c), neuron(),
            L.Conv2d(c, c, 3, padding=1), L.BatchNorm2d(c), neuron(), L.AvgPool2d(2),
            L.Conv2d(c, 2 * c, 3, padding=1), L.BatchNorm2d(2 * c), neuron(),
            L.Conv2d(2 * c, 2 * c, 3, padding=1), L.BatchNorm2d(2 * c), neuron(), L.AvgPool2d(2),
            L.Conv2d(2 * c, 4 * c, 3, padding=1), L.BatchNorm2d(4 * c), neuron(), L.AvgPool2d(2),
            L.Flatten(), L.Linear(4 * c * 16, 10)]


def vgg_model(kind: str, T: int):
    """x [B, 3, 32, 32] -> logits [B, 10]; the spiking ones see x at every step (direct encoding) and
    average the classifier's output over T, starting from reset neurons at every call."""
    torch.manual_seed(0)
    if kind == "ann":
        return nn.Sequential(*vgg_layers(nn, nn.ReLU)).to(DEVICE)
    if kind == "snn":  # SpikingJelly's LIFNode semantics: tau=2, input decayed, hard reset to 0
        body = snnkern.nn.SpikingSequential(*vgg_layers(nn, lambda: snnkern.nn.LIF(
            tau=2.0, convention="spikingjelly", decay_input=True, reset="hard", v_reset=0.0,
            surrogate="sigmoid"))).to(DEVICE)
        reset = snnkern.nn.reset_states
    else:
        pytest.importorskip("spikingjelly.activation_based", reason="SpikingJelly not installed")
        from spikingjelly.activation_based import functional, layer, neuron

        body = nn.Sequential(*vgg_layers(layer, lambda: neuron.LIFNode(tau=2.0))).to(DEVICE)
        functional.set_step_mode(body, "m")
        reset = functional.reset_net

    class Spiking(nn.Module):
        def __init__(self):
            super().__init__()
            self.body = body

        def forward(self, x):
            reset(self.body)
            return self.body(x.unsqueeze(0).expand(T, *x.shape)).mean(0)
    return Spiking()


@pytest.mark.parametrize("mode", ["inference", "train_step"])
@pytest.mark.parametrize("T", VGG_TS)
@pytest.mark.parametrize("kind", ["ann", "snn", "spikingjelly"])
def test_vgg_cnn(benchmark, meta, kind, T, mode):
    if kind == "ann" and T != VGG_TS[0]:
        pytest.skip("the ANN has no time steps: measured once")
    model = vgg_model(kind, T)
    torch.manual_seed(1)
    x = torch.rand(VGG_BATCH, 3, 32, 32, device=DEVICE)
    y = torch.randint(0, 10, (VGG_BATCH,), device=DEVICE)
    fn = step_fn(model, x, y, mode, lambda params: torch.optim.SGD(params, lr=1e-3, momentum=0.9))
    benchmark.group = f"network vgg-cnn-32x32 {mode} B={VGG_BATCH}"
    record_network(benchmark, meta, fn, "vgg-cnn-32x32", kind, T, mode, VGG_BATCH)
