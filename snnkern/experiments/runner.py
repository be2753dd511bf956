"""``snnkern compare``: train an ANN and an SNN of one preset, convert the ANN, measure everything
(the SNN twice: as trained, and with its spike-fed layers event-driven).

Every metric is filled or explicitly "unavailable" with the reason (GPU memory and measured energy
need a GPU with NVML).
"""
from __future__ import annotations

import copy
import os
import statistics
import time

import torch
import torch.nn.functional as F
from torch import nn
from tqdm.auto import tqdm

from .. import convert as convert_ann
from ..convert import accuracy_vs_T
from ..data import Splits, batches
from ..energy import EnergyMeter, count_ops, estimate_energy
from ..nn import ce_rate_loss, event_driven, mse_count_loss, reset_states
from .paper import compare_with_paper
from .presets import Preset, build_model

NOISE_LEVELS = [round(0.1 * i, 2) for i in range(11)]
FGSM_EPS = [round(0.05 * i, 2) for i in range(21)]


TIMING_REPEATS = 7  # timed calls per model after the warm-up: the median and quartiles need several
ENERGY_WINDOWS = 3  # NVML windows per model, 1 s of calls each (the counter's resolution wants >= 1 s)
COUNT_BATCHES = 4  # input batches the operation counts (and so the energy estimate) are taken over


def unavailable(reason: str) -> str:
    return f"unavailable ({reason})"


def spread(values) -> dict:
    """Median and spread of repeated measurements: quartiles (inclusive method), extremes, count."""
    v = sorted(float(x) for x in values)
    q = statistics.quantiles(v, n=4, method="inclusive") if len(v) > 1 else [v[0]] * 3
    return {"median": statistics.median(v), "q25": q[0], "q75": q[2], "min": v[0], "max": v[-1], "n": len(v)}


def cpu_conditions(threads: int | None = None) -> dict:
    """Set torch's CPU thread count (default: torch's own, at most the cores this process may use) and
    say what the CPU looked like: on a shared CPU, timings vary with the other processes' load."""
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    torch.set_num_threads(threads or min(torch.get_num_threads(), cores))
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else None
    return {"threads": torch.get_num_threads(), "cores_available": cores, "load_average_1min": load}


class SNNClassifier(nn.Module):
    """Image batch -> spike counts [B, classes]: encodes the input over T steps, runs the SNN."""

    def __init__(self, snn: nn.Module, T: int, encoding: str):
        super().__init__()
        self.snn, self.T, self.encoding = snn, T, encoding

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        if self.encoding == "events":  # event frames [B, T_data, ...] are time-major already: their first T steps
            return x[:, :self.T].transpose(0, 1)
        x_seq = x.unsqueeze(0).expand(self.T, *x.shape)
        if self.encoding == "rate":  # Poisson spikes; straight-through so attacks can take gradients
            x_seq = x_seq + (torch.bernoulli(x_seq.clamp(0, 1).detach()) - x_seq).detach()
        return x_seq

    def spikes(self, x: torch.Tensor) -> torch.Tensor:
        reset_states(self.snn)
        return self.snn(self.encode(x))  # [T, B, classes]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.spikes(x).sum(0)


def spike_loss(p: Preset, spikes: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """The preset's SNN loss on output spikes [T, B, classes]."""
    if p.loss == "mse_count":
        return mse_count_loss(spikes, y, correct_rate=p.correct_rate, incorrect_rate=p.incorrect_rate)
    return ce_rate_loss(spikes, y)


def _loss(p: Preset, model: nn.Module, x, y, spiking: bool):
    return spike_loss(p, model.spikes(x), y) if spiking else F.cross_entropy(model(x), y)


def train(p: Preset, model: nn.Module, data: Splits, device, *, spiking: bool, progress: bool) -> dict:
    opt = torch.optim.Adam(model.parameters(), lr=p.lr, weight_decay=p.weight_decay)
    epoch_times, val_acc = [], []
    x, y = data.train
    for epoch in range(p.epochs):
        model.train()
        t0 = time.perf_counter()
        steps = batches(x, y, p.batch_size, shuffle=True, seed=epoch)
        bar = tqdm(steps, total=-(-len(y) // p.batch_size), desc=f"{'SNN' if spiking else 'ANN'} epoch {epoch + 1}",
                   disable=not progress, leave=False)
        for xb, yb in bar:
            opt.zero_grad(set_to_none=True)
            loss = _loss(p, model, xb.to(device), yb.to(device), spiking)
            loss.backward()
            opt.step()
            bar.set_postfix(loss=f"{loss.item():.3f}")
        if device.type == "cuda":
            torch.cuda.synchronize()
        epoch_times.append(time.perf_counter() - t0)
        val_acc.append(evaluate(model, data.val, device, p.batch_size)["accuracy"])
    return {"epoch_seconds": epoch_times, "val_accuracy": val_acc}


@torch.no_grad()
def predict(model: nn.Module, x: torch.Tensor, device, batch_size: int) -> torch.Tensor:
    model.eval()
    return torch.cat([model(x[i:i + batch_size].to(device)).argmax(-1).cpu() for i in range(0, len(x), batch_size)])


def evaluate(model, split, device, batch_size: int) -> dict:
    from sklearn.metrics import f1_score, recall_score

    x, y = split
    pred = predict(model, x, device, batch_size)
    return {"accuracy": float((pred == y).float().mean()),
            "recall_macro": float(recall_score(y, pred, average="macro", zero_division=0)),
            "f1_macro": float(f1_score(y, pred, average="macro", zero_division=0))}


def measure(model: nn.Module, name: str, data: Splits, device, p: Preset, counts_input, counts_kwargs=None,
            batch_dim: int = 0, repeats: int = TIMING_REPEATS) -> dict:
    """Accuracy metrics, time, memory, measured and estimated energy, size. Time and energy are
    medians with their spread (``*_spread``) over repeated calls / NVML windows / count batches;
    ``counts_input`` is one input batch or a list of them."""
    torch.manual_seed(0)  # rate-encoded inputs draw the same spikes for every model measured
    out = evaluate(model, data.test, device, p.batch_size)
    out["test_samples"] = len(data.test[1])
    x = data.test[0][:p.batch_size].to(device)
    model.eval()
    sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)
    with torch.no_grad():
        model(x)  # warm-up (kernels compile on first use)
        sync()
        if device.type == "cuda":
            torch.cuda.reset_peak_memory_stats()
        times = []
        for _ in range(repeats):
            t0 = time.perf_counter()
            model(x)
            sync()
            times.append((time.perf_counter() - t0) * 1e3 / len(x))
        out["inference_ms_per_sample_spread"] = spread(times)
        out["inference_ms_per_sample"] = out["inference_ms_per_sample_spread"]["median"]
        out["peak_gpu_memory_mb"] = (torch.cuda.max_memory_allocated() / 2**20 if device.type == "cuda"
                                     else unavailable("CPU run"))
        readings, reason = [], "CPU run"
        for _ in range(ENERGY_WINDOWS if device.type == "cuda" else 0):
            calls = 0
            with EnergyMeter(samples=None, idle_seconds=0.5) as meter:
                t0 = time.perf_counter()
                while time.perf_counter() - t0 < 1.0:
                    model(x)
                    calls += 1
            r = meter.reading
            if not r.available:
                reason = r.reason
                break
            readings.append((r.joules / (calls * len(x)), r.mean_watts, r.gpu))
    if readings:
        out["measured_j_per_sample_spread"] = spread(j for j, _, _ in readings)
        out.update(measured_j_per_sample=out["measured_j_per_sample_spread"]["median"],
                   measured_watts=statistics.median(w for _, w, _ in readings), gpu=readings[0][2])
    else:
        out.update(measured_watts=unavailable(reason), measured_j_per_sample=unavailable(reason))
    batches_in = counts_input if isinstance(counts_input, (list, tuple)) else [counts_input]
    counted = [count_ops(model, b, batch_dim=batch_dim, forward_kwargs=counts_kwargs) for b in batches_in]
    out["estimated_j_per_sample_spread"] = spread(estimate_energy(c, "45nm-fp32") for c in counted)
    out.update(macs_per_sample=statistics.median(c.per_sample("macs") for c in counted),
               acs_per_sample=statistics.median(c.per_sample("acs") for c in counted),
               estimated_j_per_sample=out["estimated_j_per_sample_spread"]["median"],
               energy_preset=f"45nm-fp32 (estimate; median over {len(counted)} input batches)")
    params = sum(q.numel() for q in model.parameters())
    out.update(parameters=params, model_size_mb=sum(q.numel() * q.element_size() for q in model.parameters()) / 2**20,
               name=name)
    return out


def measure_event_driven(model: nn.Module, name: str, T: int, data: Splits, device, p: Preset, sample,
                         repeats: int = TIMING_REPEATS) -> dict:
    """``measure`` of a copy of ``model`` whose spike-fed layers went event-driven (``event_driven``;
    a converted SNN's thresholds folded): the same predictions, its own time, memory and joules."""
    event = copy.deepcopy(model)
    out = {"T": T, "event_driven_layers": event_driven(event)}
    out.update(measure(event, name, data, device, p, sample, repeats=repeats))
    return out


def robustness(model: nn.Module, data: Splits, device, batch_size: int, seed: int = 0, *, name: str = "",
               progress: bool = False) -> dict:
    """Accuracy under Gaussian input noise (sigma 0..1) and FGSM (epsilon 0..1, step 0.05)."""
    x, y = data.test
    gen = torch.Generator().manual_seed(seed)

    def accuracy(inputs) -> float:
        # every level of both sweeps draws the same rate-encoding spikes: their clean points (sigma 0,
        # epsilon 0) are then the same evaluation, and the curves differ only by the perturbation
        torch.manual_seed(seed)
        return float((predict(model, inputs, device, batch_size) == y).float().mean())

    noise = {}
    for sigma in tqdm(NOISE_LEVELS, desc=f"{name} noise sweep", disable=not progress, leave=False):
        noise[sigma] = accuracy((x + sigma * torch.randn(x.shape, generator=gen)).clamp(0, 1))
    fgsm = {}
    model.eval()
    grads = []
    for xb, yb in batches(x, y, batch_size):
        xb = xb.to(device).requires_grad_()
        F.cross_entropy(model(xb).float(), yb.to(device)).backward()
        grads.append(xb.grad.sign().cpu())
    sign = torch.cat(grads)
    for eps in tqdm(FGSM_EPS, desc=f"{name} FGSM sweep", disable=not progress, leave=False):
        fgsm[eps] = accuracy((x + eps * sign).clamp(0, 1))
    return {"gaussian_noise": noise, "fgsm": fgsm}


ERROR_THRESHOLD_POINTS = 0.5  # "converged": within half a point of the accuracy at the largest T
MAC_PER_SO_COST = 14  # Niederlechner 2019 (after Rueckauer et al.): a MAC costs 14 synaptic operations
# Table 2's Total-Costs: 14 per MAC plus 1 per other flop, and "half of all Flops are MAC", so one other
# flop per MAC: 15 per MAC (every row's Total-Costs is 7.5 x its MFlops, i.e. 15 x its MFlops / 2)
ANN_TOTAL_COST_PER_MAC = MAC_PER_SO_COST + 1


def operations_to_error_threshold(converted: nn.Module, accuracy_vs_T: dict, sample: torch.Tensor,
                                  ann_macs: float, count_at=None) -> dict:
    """Niederlechner 2019's Table 2 measure, per sample, up to the first T of ``accuracy_vs_T`` (every
    step, for the paper's "first time step") at which the converted SNN's error reaches its threshold
    (here: accuracy within ERROR_THRESHOLD_POINTS of the largest T's), counted there and at each T of
    ``count_at`` (default: every T of ``accuracy_vs_T``).

    ``so_cost_*``: the paper's SO-Costs, as its simulator (snntoolbox's INIsim) counts them: spikes x
    fan-out, that is the ACs of the layers fed spikes (exact at a padded convolution's border, where
    INIsim charges the whole kernel), plus one per spike into a pooling layer (INIsim's pooling layers
    are spiking layers, fan-out 1 into them). The first layer on the analog input is not
    an SO there (INIsim counts its flops once, as neuron operations, outside the SO count its figures
    and Table 2 show). ``efficiency_factor_14x``: the paper's Factor, Total-Costs / SO-Costs, with
    Total-Costs = ANN_TOTAL_COST_PER_MAC x the ANN's MACs.

    ``so_cost_with_input_layer_*``: what this SNN really spends in SO units: its ACs plus its MACs (the
    first layer on the analog input, every step) at 14 SOs each, and the factor 14 x ANN MACs over that."""
    ts = sorted(accuracy_vs_T)
    final = accuracy_vs_T[ts[-1]]
    T = next(t for t in ts if accuracy_vs_T[t] >= final - ERROR_THRESHOLD_POINTS / 100)
    paper, charged = {}, {}
    for t in sorted({T, *(ts if count_at is None else count_at)}):
        counts = count_ops(converted, sample, forward_kwargs={"T": t})
        real_fed = [layer.name for layer in counts.layers if layer.macs]
        # past the input layer, real values (an average pool's mean of spikes, say) are no spikes to count
        paper[t] = counts.per_sample("acs") + counts.per_sample("pool_input_spikes") if len(real_fed) <= 1 else \
            unavailable(f"real values reach more layers than the input one ({', '.join(real_fed)}): "
                        "not countable as spikes x fan-out")
        charged[t] = counts.per_sample("acs") + MAC_PER_SO_COST * counts.per_sample("macs")

    def factor(cost_per_mac, so):
        if isinstance(so, str):
            return so
        return cost_per_mac * ann_macs / so if so else unavailable("no operations")

    return {"T_at_error_threshold": T,
            "so_cost_vs_T": paper, "so_cost_to_error_threshold": paper[T],
            "efficiency_factor_14x": factor(ANN_TOTAL_COST_PER_MAC, paper[T]),
            "so_cost_with_input_layer_vs_T": charged, "so_cost_with_input_layer_to_error_threshold": charged[T],
            "efficiency_factor_14x_with_input_layer": factor(MAC_PER_SO_COST, charged[T])}


def run_study(p: Preset, data: Splits, device: torch.device, *, with_robustness: bool = False,
              progress: bool = True, threads: int | None = None, download: bool = False,
              repeats: int = TIMING_REPEATS, count_batches: int = COUNT_BATCHES) -> dict:
    """Train, convert and measure one preset; ``threads``: torch's CPU threads (default: its own, at
    most the cores available); the CPU's thread count and load before and after go in ``result["cpu"]``.
    ``download``: pretrained weights a preset uses may be fetched. ``repeats`` / ``count_batches``: timed
    calls and energy-count batches per model (a smoke run takes fewer)."""
    cpu = cpu_conditions(threads)
    torch.manual_seed(0)
    result = {"preset": p.name, "source": p.source, "filled_defaults": list(p.filled), "dataset": data.name,
              "dataset_source": data.source, "device": str(device),
              "gpu": torch.cuda.get_device_name(device) if device.type == "cuda" else unavailable("CPU run"),
              "settings": {k: v for k, v in vars(p).items() if k not in ("extra", "paper")}, "cpu": cpu}
    # the operation counts (spikes, so the energy estimate) vary with the input: a few batches give a spread
    sample = [data.test[0][i:i + 8].to(device) for i in range(0, min(len(data.test[0]), 8 * count_batches), 8)]

    ann = build_model(p, data.input_shape, data.classes, spiking=False, download=download).to(device)
    if getattr(ann, "weights_source", None):
        result["weights_source"] = ann.weights_source
    result["ann"] = {"training": train(p, ann, data, device, spiking=False, progress=progress)}
    result["ann"].update(measure(ann, "ANN", data, device, p, sample, repeats=repeats))

    if p.train_snn:
        snn = SNNClassifier(build_model(p, data.input_shape, data.classes, spiking=True, download=download).to(device),
                            p.T, p.encoding)
        result["snn"] = {"training": train(p, snn, data, device, spiking=True, progress=progress), "T": p.T}
        result["snn"].update(measure(snn, f"SNN (T={p.T})", data, device, p, sample, repeats=repeats))
        result["snn_event"] = measure_event_driven(snn, f"SNN event-driven (T={p.T})", p.T, data, device, p, sample,
                                                   repeats)
    else:
        result["snn"] = result["snn_event"] = unavailable("this preset converts only")

    if p.convert:
        converted = convert_ann(ann.eval(), data.train[0][:512].to(device), mode="99.9%")
        loader = list(batches(data.test[0], data.test[1], p.batch_size))
        # every step costs what the curve's steps cost (one run at the largest T): the threshold is found
        # at its first step, as the paper finds it
        T_max = max(p.T_list)
        acc_every_step = accuracy_vs_T(converted, [(xb.to(device), yb.to(device)) for xb, yb in loader],
                                       range(1, T_max + 1))
        acc = {t: acc_every_step[t] for t in sorted(p.T_list)}
        converted.T = T_max
        conv = {"accuracy_vs_T": acc, "T": T_max}
        conv.update(measure(converted, f"converted SNN (T={T_max})", data, device, p, sample, repeats=repeats))
        ann_ops = result["ann"]["macs_per_sample"] * 4.6
        conv_ops = conv["macs_per_sample"] * 4.6 + conv["acs_per_sample"] * 0.9
        conv["efficiency_factor"] = ann_ops / conv_ops if conv_ops else unavailable("no operations")
        conv.update(operations_to_error_threshold(converted, acc_every_step, sample[0],
                                                  result["ann"]["macs_per_sample"], count_at=sorted(p.T_list)))
        result["converted"] = conv
        result["converted_event"] = measure_event_driven(converted, f"converted event-driven (T={T_max})", T_max,
                                                         data, device, p, sample, repeats)
    else:
        result["converted"] = result["converted_event"] = unavailable("conversion off for this preset")

    if with_robustness:
        result["robustness"] = {"ann": robustness(ann, data, device, p.batch_size, name="ANN", progress=progress)}
        if p.train_snn:
            result["robustness"]["snn"] = robustness(snn, data, device, p.batch_size, name="SNN", progress=progress)
    result["paper_vs_run"] = compare_with_paper(result, p.paper, p.paper_setup)
    if hasattr(os, "getloadavg"):
        cpu["load_average_1min_after"] = os.getloadavg()[0]
    return result
