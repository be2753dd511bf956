"""Synaptic-operation counting: dense MACs vs spike-driven ACs, measured on the actual inputs.

``count_ops(model, example_input)`` runs the model once with forward hooks.  Every Linear / Conv
call (snnkern's SpikeLinear / SpikeConv2d included) looks at the input it really got:

- spike-fed (binary 0/1 input, or the very tensor a neuron layer emitted, viewed or reshaped — e.g.
  the threshold-valued spikes of a converted network): ACs = the number of (active input, weight)
  pairs that reach an output, counted exactly (for a convolution: per output position, the active
  inputs in its window);
- otherwise: MACs = output elements x (in_channels/groups x kernel size) — what dense hardware does.

Neuron layers (snnkern's, snnTorch's, SpikingJelly's, converted IF layers) add their state updates
(one per neuron per step) and firing rate.  Pooling layers fed spikes add those spikes to the total
``pool_input_spikes`` (snntoolbox's simulator makes pooling layers spiking layers, so it counts each
spike into one as a synaptic operation; here a pool is no neuron and these are no ACs).  Counts are
summed over all calls (all time steps) and reported per sample.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torch import nn

from ..convert.ann2snn import SpikingMaxPool2d
from ..functional_spikes import count_spikes, is_binary, unpack_spikes

SYNAPTIC = (nn.Linear, nn.Conv1d, nn.Conv2d)
# Layers whose output holds only values of their input (selected, reshaped, or the input itself): spikes in,
# spikes out. Threshold-valued spikes of a converted SNN are recognised by where they came from, so these
# pass that on (a max-pool makes a new tensor of the same spikes).
SPIKE_PRESERVING = (nn.MaxPool1d, nn.MaxPool2d, nn.MaxPool3d, nn.Flatten, nn.Unflatten, nn.Dropout, nn.Identity,
                    SpikingMaxPool2d)
POOLING = (nn.MaxPool1d, nn.MaxPool2d, nn.MaxPool3d, nn.AvgPool1d, nn.AvgPool2d, nn.AvgPool3d, SpikingMaxPool2d)


@dataclass
class LayerOps:
    name: str
    kind: str
    params: int = 0
    macs: int = 0  # dense multiply-accumulates (layers fed real values)
    acs: int = 0  # accumulates (layers fed spikes)
    neuron_updates: int = 0  # membrane updates (neuron layers)
    spikes: int = 0  # spikes emitted (neuron layers)
    input_rate: float | None = None  # active fraction of the inputs (synaptic layers fed spikes)
    calls: int = 0

    @property
    def firing_rate(self) -> float | None:
        return self.spikes / self.neuron_updates if self.neuron_updates else None


@dataclass
class OpsReport:
    """Per-layer counts (totals over the example batch) and per-sample totals."""

    layers: list[LayerOps]
    samples: int
    totals: dict = field(default_factory=dict)

    def per_sample(self, key: str) -> float:
        return self.totals[key] / self.samples

    def to_markdown(self) -> str:
        lines = [f"Operations per sample ({self.samples} samples measured)", "",
                 "| layer | type | params | MACs | ACs | neuron updates | input rate | firing rate |",
                 "|---|---|---:|---:|---:|---:|---:|---:|"]
        for row in self.layers:
            rate_in = "—" if row.input_rate is None else f"{row.input_rate:.3f}"
            rate_out = "—" if row.firing_rate is None else f"{row.firing_rate:.3f}"
            lines.append(f"| {row.name} | {row.kind} | {row.params} | {row.macs / self.samples:.4g} | "
                         f"{row.acs / self.samples:.4g} | {row.neuron_updates / self.samples:.4g} | {rate_in} | "
                         f"{rate_out} |")
        t = self.totals
        lines.append(f"| **total** | | {t['params']} | {t['macs'] / self.samples:.4g} | {t['acs'] / self.samples:.4g} | "
                     f"{t['neuron_updates'] / self.samples:.4g} | | |")
        return "\n".join(lines)


def _is_neuron(m: nn.Module) -> bool:
    from ..convert.ann2snn import IFNeuron
    from ..nn.neurons import SpikingNeuron

    if isinstance(m, (SpikingNeuron, IFNeuron)):
        return True
    mod = type(m).__module__
    if mod.startswith("snntorch") or "snnkern.convert._snntorch" in mod:
        return hasattr(m, "spike_grad")
    return hasattr(m, "v_threshold") and hasattr(m, "surrogate_function")  # SpikingJelly nodes (and swapped)


def _conv_acs(conv, x_active: torch.Tensor) -> int:
    """Exact ACs of a convolution: per output channel and position, the active inputs in its window."""
    groups, cout = conv.groups, conv.out_channels
    cin_g = conv.in_channels // groups
    conv_fn = F.conv1d if isinstance(conv, nn.Conv1d) else F.conv2d
    ones = torch.ones((groups, cin_g, *conv.kernel_size), device=x_active.device, dtype=torch.float64)
    per_group = conv_fn(x_active.double(), ones, None, conv.stride, conv.padding, conv.dilation, groups)
    return int(round(per_group.sum().item())) * (cout // groups)


def _dense_macs(m, x: torch.Tensor, out: torch.Tensor) -> int:
    if isinstance(m, nn.Linear):
        return out.numel() * m.in_features
    k = 1
    for s in m.kernel_size:
        k *= s
    return out.numel() * (m.in_channels // m.groups) * k


def count_ops(model: nn.Module, example_input, *, batch_dim: int = 0, forward_kwargs: dict | None = None) -> OpsReport:
    """Count parameters, MACs, ACs, neuron updates and firing rates of one forward of ``model``.

    ``example_input``: a tensor (or tuple of tensors) the model takes; the number of samples is its size
    along ``batch_dim`` (1 for multi-step ``[T, B, ...]`` input).  ``forward_kwargs`` go to the forward
    (e.g. ``{"T": 16}`` for a converted SNN).  Reset your stateful model first if it carries state.
    """
    if not isinstance(model, nn.Module):
        raise TypeError(f"model must be a torch.nn.Module, got {type(model).__name__}")
    inputs = example_input if isinstance(example_input, tuple) else (example_input,)
    if not inputs or not isinstance(inputs[0], torch.Tensor):
        raise TypeError("example_input must be a tensor or a tuple of tensors")
    if not -inputs[0].dim() <= batch_dim < inputs[0].dim():
        raise ValueError(f"batch_dim={batch_dim} is out of range for input of shape {tuple(inputs[0].shape)}")
    samples = inputs[0].shape[batch_dim]
    rows: dict[str, LayerOps] = {}
    handles = []
    emitted: set[int] = set()  # storage of tensors neuron layers emitted in this forward
    pool_input_spikes = 0

    def synaptic_hook(name):
        def hook(m, args, out):
            x = args[0]
            row = rows[name]
            row.calls += 1
            if x.dtype == torch.int32:  # packed spikes (SpikeLinear): every set bit is one active input
                x = unpack_spikes(x, m.in_features)
            if x.data_ptr() in emitted or (x.numel() > 0 and is_binary(x)):
                active = x != 0
                row.acs += int(active.sum()) * m.out_features if isinstance(m, nn.Linear) \
                    else _conv_acs(m, active.to(torch.float64))
                rate = active.float().mean().item()
                row.input_rate = rate if row.input_rate is None else (row.input_rate * (row.calls - 1) + rate) / row.calls
            else:
                row.macs += _dense_macs(m, x, out)
        return hook

    def neuron_hook(name):
        def hook(m, args, out):
            spikes = out[0] if isinstance(out, tuple) else out
            emitted.add(spikes.data_ptr())
            row = rows[name]
            row.calls += 1
            if spikes.dtype == torch.int32:  # packed (packed_output): the input counts the neurons, bits the spikes
                row.neuron_updates += args[0].numel()
                row.spikes += int(count_spikes(spikes))
            else:
                row.neuron_updates += spikes.numel()
                row.spikes += int((spikes != 0).sum())
        return hook

    def pass_through_hook(m, args, out):
        nonlocal pool_input_spikes
        x = args[0]
        if not isinstance(x, torch.Tensor) or x.data_ptr() not in emitted:
            return
        if isinstance(m, POOLING):
            pool_input_spikes += int((x != 0).sum())
        if isinstance(m, SPIKE_PRESERVING) and isinstance(out, torch.Tensor):
            emitted.add(out.data_ptr())

    for name, m in model.named_modules():
        if isinstance(m, SPIKE_PRESERVING + POOLING):
            handles.append(m.register_forward_hook(pass_through_hook))
        elif isinstance(m, SYNAPTIC):
            rows[name] = LayerOps(name, type(m).__name__, params=sum(p.numel() for p in m.parameters(recurse=False)))
            handles.append(m.register_forward_hook(synaptic_hook(name)))
        elif _is_neuron(m):
            rows[name] = LayerOps(name, type(m).__name__, params=sum(p.numel() for p in m.parameters(recurse=False)))
            handles.append(m.register_forward_hook(neuron_hook(name)))
    try:
        with torch.no_grad():
            model(*inputs, **(forward_kwargs or {}))
    finally:
        for h in handles:
            h.remove()
    layers = [r for r in rows.values() if r.calls]
    totals = {"params": sum(p.numel() for p in model.parameters()),
              "macs": sum(r.macs for r in layers), "acs": sum(r.acs for r in layers),
              "neuron_updates": sum(r.neuron_updates for r in layers), "spikes": sum(r.spikes for r in layers),
              "pool_input_spikes": pool_input_spikes}
    return OpsReport(layers, samples, totals)
