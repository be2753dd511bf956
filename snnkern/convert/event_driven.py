"""Event-driven accumulation for converted SNNs: fold each IF layer's threshold into the Linear/Conv2d
layers that read its spikes, so those spikes become binary and the layers become SpikeLinear /
SpikeConv2d (called by ``snnkern.nn.event_driven`` on a ``ConvertedSNN``).

An IF layer emits ``threshold * s`` for binary ``s``; a layer reading it computes
``W (threshold * s) = (W diag(threshold)) s``. So the layer takes the scaled weight and the IF layer
emits ``s``: the same function up to fp32 rounding. An IF layer is folded only when *every* use of
its output reaches such a layer through shape-only steps (Flatten, Identity, the spiking max-pool,
``flatten``/``view``/``reshape``) — a residual add or the network output keeps it as it is — and each
layer is called once in the graph, with a threshold that maps onto its inputs: one value, or one per
channel for a Conv2d (plain, grouped or depthwise: the weight of output channel ``o`` in group ``g``
reads input channels ``g*C_in/groups ...``, so each takes the thresholds of its group's channels), one
per input for a Linear right after the IF layer, or one per channel flattened channel-major into a
Linear.
"""
from __future__ import annotations

from collections import Counter

import torch
from torch import fx, nn

from ..nn.spike_layers import SpikeConv2d, SpikeLinear
from .ann2snn import ConvertedSNN, IFNeuron, SpikingMaxPool2d, _replace_module

PASS_MODULES = (nn.Flatten, nn.Identity, SpikingMaxPool2d)
RESHAPES = {"view", "reshape", "flatten"}


def _readers(gm: fx.GraphModule, node: fx.Node):
    """[(reading Linear/Conv2d node, whether a flatten/reshape lies between)], or None when some use of
    ``node``'s output is anything else."""
    found, stack = [], [(node, False)]
    while stack:
        n, flattened = stack.pop()
        for user in n.users:
            first = user.args[0] is n if user.args else False
            if user.op == "call_module" and first:
                mod = gm.get_submodule(user.target)
                if isinstance(mod, PASS_MODULES):
                    stack.append((user, flattened or isinstance(mod, nn.Flatten)))
                    continue
                if type(mod) in (nn.Linear, nn.Conv2d):
                    found.append((user, flattened))
                    continue
            if user.op == "call_method" and user.target == "size":
                continue  # shape only
            if user.op == "call_method" and user.target in RESHAPES and first:
                stack.append((user, True))
                continue
            if user.op == "call_function" and user.target is torch.flatten and first:
                stack.append((user, True))
                continue
            return None
    return found


def _input_scale(thr: torch.Tensor, layer: nn.Module, flattened: bool) -> torch.Tensor | None:
    """The threshold as a multiplier of the layer's weight over its inputs, or None if it does not map."""
    if thr.numel() == 1:
        return thr.reshape(())
    channels = thr.numel()
    if isinstance(layer, nn.Conv2d):
        if flattened or channels != layer.in_channels:
            return None
        groups = layer.groups
        per_group = thr.reshape(groups, layer.in_channels // groups)  # [g, C_in/g]
        group_of_output = torch.arange(layer.out_channels, device=thr.device) // (layer.out_channels // groups)
        return per_group[group_of_output].reshape(layer.out_channels, -1, 1, 1)  # [C_out, C_in/g, 1, 1]
    if not flattened:  # right after the IF layer of a Linear: one threshold per input
        return thr.reshape(1, -1) if thr.dim() == 1 and channels == layer.in_features else None
    if thr.dim() >= 2 and layer.in_features % channels == 0:  # conv channels flattened channel-major
        return thr.reshape(-1).repeat_interleave(layer.in_features // channels).reshape(1, -1)
    return None


def event_driven_converted(snn: ConvertedSNN, *, algorithm: str = "auto", backend: str = "auto",
                           packed: bool = True) -> list[str]:
    """``packed``: an IF layer whose one reader is a Linear called on its output directly hands it
    bit-packed spikes while autograd is off (``IFNeuron.packed_output``)."""
    gm = snn.graph_module
    calls = Counter(n.target for n in gm.graph.nodes if n.op == "call_module")
    plans = []
    for node in gm.graph.nodes:
        if node.op != "call_module" or not isinstance(gm.get_submodule(node.target), IFNeuron):
            continue
        neuron = gm.get_submodule(node.target)
        readers = _readers(gm, node)
        if not readers or neuron.binary_output:
            continue
        scaled = []
        for reader, flattened in readers:
            layer = gm.get_submodule(reader.target)
            scale = _input_scale(neuron.threshold.detach(), layer, flattened)
            if scale is None or calls[reader.target] != 1:
                break
            scaled.append((reader.target, layer, scale))
        else:
            direct = len(readers) == 1 and readers[0][0].args[0] is node and isinstance(scaled[0][1], nn.Linear)
            plans.append((neuron, scaled, direct))
    swapped = []
    for neuron, scaled, direct in plans:
        for target, layer, scale in scaled:
            kwargs = dict(algorithm=algorithm, backend=backend, assume_binary=True)
            new = (SpikeLinear.from_linear(layer, **kwargs) if isinstance(layer, nn.Linear)
                   else SpikeConv2d.from_conv(layer, **kwargs))
            new.weight = nn.Parameter(layer.weight.detach() * scale.to(layer.weight.dtype),
                                      requires_grad=layer.weight.requires_grad)
            new.train(layer.training)
            _replace_module(gm, target, new)
            swapped.append(target)
        neuron.binary_output = True
        neuron.packed_output = packed and direct
    return swapped


__all__ = ["event_driven_converted"]
