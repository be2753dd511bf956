"""Converted-SNN inference throughput and measured energy (NVML) vs its ANN, T in {4, 8, 16, 32}
(issue 6's benchmark). A session run (``SNNKERN_BENCH_SESSION=1``) keeps T in {4, 8}."""
from __future__ import annotations

import pytest
import torch
from torch import nn

import snnkern

from .common import ON_GPU, SESSION, record

pytestmark = pytest.mark.energy  # records measured energy (bench/conftest.py: the idle baseline)

DEVICE = "cuda" if ON_GPU else "cpu"
BATCH = 256 if ON_GPU else 4


def cifar_style_cnn():
    """A VGG-ish CIFAR-10 CNN (random weights: throughput does not depend on training)."""
    c = 64 if ON_GPU else 8
    return nn.Sequential(
        nn.Conv2d(3, c, 3, padding=1), nn.BatchNorm2d(c), nn.ReLU(), nn.AvgPool2d(2),
        nn.Conv2d(c, 2 * c, 3, padding=1), nn.BatchNorm2d(2 * c), nn.ReLU(), nn.AvgPool2d(2),
        nn.Conv2d(2 * c, 4 * c, 3, padding=1), nn.BatchNorm2d(4 * c), nn.ReLU(), nn.AvgPool2d(2),
        nn.Flatten(), nn.Linear(4 * c * 16, 256), nn.ReLU(), nn.Linear(256, 10)).eval()


@pytest.fixture(scope="module")
def models():
    torch.manual_seed(0)
    ann = cifar_style_cnn().to(DEVICE)
    x = torch.rand(BATCH, 3, 32, 32, device=DEVICE)
    return ann, snnkern.convert(ann, x), x


@pytest.mark.parametrize("T", [0, 4, 8] if SESSION else [0, 4, 8, 16, 32])
def test_converted_inference(benchmark, meta, models, T):
    ann, snn, x = models

    def fn():
        with torch.no_grad():
            ann(x) if T == 0 else snn(x, T)
    benchmark.group = f"converted CNN inference B={BATCH}"
    stats = record(benchmark, fn, meta, impl="ANN" if T == 0 else f"SNN T={T}", T=T, batch=BATCH, dtype="fp32",
                   mode="inference", baseline=T == 0, samples_per_call=BATCH)
    benchmark.extra_info["samples_per_s"] = BATCH / (stats["ms_median"] * 1e-3)
