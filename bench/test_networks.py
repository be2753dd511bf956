"""The seeds' networks as ANN and as SNN (trained-style with snnkern neurons, the same with its spike-fed
layers event-driven (``snnkern.nn.event_driven``), and converted, plain and event-driven), T in
{1, 4, 8, 16, 32}: inference and training-step throughput, latency, peak memory, and measured W and
J/sample (NVML) — the ``networks`` group of the suite (issue 8)."""
from __future__ import annotations

import pytest
import torch
from torch import nn

import snnkern
from snnkern.experiments import PRESETS, build_model
from snnkern.experiments.runner import SNNClassifier

from .common import ON_GPU, record

DEVICE = "cuda" if ON_GPU else "cpu"
BATCH = 256 if ON_GPU else 4
TS = [1, 4, 8, 16, 32] if ON_GPU else [1, 4]
NETWORKS = {  # name: (preset, input shape)
    "mlp-784-256-256-10": ("luo2024-mlp", (1, 28, 28)),
    "mlp-S-256": ("cassetta2023-mlp-s", (1, 28, 28)),
    "mlp-M-512-256-64": ("cassetta2023-mlp-m", (1, 28, 28)),
    "mlp-L-2000-500-64-16": ("cassetta2023-mlp-l", (1, 28, 28)),
    "cnn-5conv-cifar10": ("luo2024-cnn", (3, 32, 32)),
    "cnn-lenet-mnist": ("niederlechner2019-cnn", (1, 28, 28)),
}


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
    if mode == "inference":
        model.eval()

        def fn():
            with torch.no_grad():
                model(x)
    else:
        model.train()
        opt = torch.optim.Adam(model.parameters(), lr=1e-3)

        def fn():
            opt.zero_grad(set_to_none=True)
            nn.functional.cross_entropy(model(x).float(), y).backward()
            opt.step()
    benchmark.group = f"network {network} {mode}"
    stats = record(benchmark, fn, meta, impl=kind if kind == "ann" else f"{kind} T={T}", network=network, kind=kind,
                   T=0 if kind == "ann" else T, mode=mode, batch=BATCH, dtype="fp32", baseline=kind == "ann",
                   samples_per_call=BATCH)
    benchmark.extra_info["samples_per_s"] = BATCH / (stats["ms_median"] * 1e-3)
