"""ANN -> SNN conversion running on snnkern's fused multi-step IF kernel.

Recipe (rate-based conversion, Rueckauer et al. 2017; thresholds from activation percentiles as in
snntoolbox / SpingJelly's converter):

1. trace the ANN with torch.fx (``nn.Sequential`` and any fx-traceable model: torchvision's VGG19,
   VGG19-BN and MobileNetV2 as they come), fold every BatchNorm into the Conv/Linear before it (plain,
   grouped or depthwise), drop Dropout (the classifier's too); MaxPool becomes the spiking max-pool of Rueckauer
   et al. (gated by spike counts; ``maxpool="spiking"``, the default) or AvgPool (``maxpool="avg"``,
   which changes the function: only sound for a network that tolerates it — measured on an 8x8-digits
   CNN trained with max-pooling, avg replacement fell to chance while the spiking max-pool kept the
   ANN's accuracy at T=256);
2. run the calibration data through it and record, per ReLU, the ``mode`` statistic of its positive
   activations: ``"max"``, a percentile like ``"99.9%"``, or a float fraction of the max (per channel
   with ``per_channel=True``);
3. replace each ReLU by an IF neuron (SpikingJelly convention, soft reset by subtraction) with that
   scale as threshold, emitting ``threshold``-valued spikes so the next layer sees the ANN's scale;
   ``init_membrane=0.5`` starts every membrane at threshold/2 (rounds instead of floors the rate:
   markedly better accuracy at small T).

ReLU6 (MobileNetV2) and ``Hardtanh(0, cap)``: an IF neuron fires at most once a step, so its decoded
output ``threshold * rate`` is ``clip(x, 0, threshold)`` — it clips by construction. The threshold is
the calibration statistic of the *clipped* activation, so it never exceeds the cap (6): with
``mode="max"`` on data that reaches the cap it is exactly ReLU6, with a percentile it clips a little
lower, as for ReLU. (``min(statistic, cap)`` is enforced for any mode.)

Everything between two IF layers is linear (Conv of any groups, Linear, average / adaptive average
pooling, flatten, residual ``+``), applied at every step to the spikes (valued ``threshold``) of the
IF layers before it, so its time average is the same linear function of their rates. A residual add
of two spike trains therefore needs no threshold of its own: MobileNetV2's adds join linear
bottlenecks (no activation after them), and where an activation follows an add (ResNet-style) that
activation becomes an IF neuron calibrated on the ANN's post-add activation like any other.

The converted model runs all T steps at once: stateless layers on the merged ``[T*B, ...]`` batch,
each IF layer as one fused kernel call over ``[T, B, ...]``.
"""
from __future__ import annotations

import copy
import operator
import re
from typing import Iterable

import torch
import torch.nn.functional as F
from torch import fx, nn
from torch.nn.utils.fusion import fuse_conv_bn_eval, fuse_linear_bn_eval

from ..functional import if_
from ..functional_spikes import count_spikes

STATELESS_MODULES = (nn.Conv1d, nn.Conv2d, nn.Linear, nn.AvgPool1d, nn.AvgPool2d, nn.AdaptiveAvgPool1d,
                     nn.AdaptiveAvgPool2d, nn.Flatten, nn.Identity, nn.Unflatten)
ACTIVATION_MODULES = (nn.ReLU, nn.ReLU6, nn.Hardtanh)  # Hardtanh only as (0, cap]: ReLU6 is Hardtanh(0, 6)
FOLDED_MODULES = (nn.BatchNorm1d, nn.BatchNorm2d)
REMOVED_MODULES = (nn.Dropout, nn.Dropout1d, nn.Dropout2d)
RELU_FUNCTIONS = {torch.relu, F.relu, F.relu6}
FUNCTIONS = {torch.flatten, operator.add, torch.add, F.avg_pool2d, F.adaptive_avg_pool2d,
             F.adaptive_avg_pool1d, F.avg_pool1d} | RELU_FUNCTIONS
METHODS = {"view", "reshape", "flatten", "relu", "size", "__add__", "add"}
SUPPORTED = ("Conv1d/Conv2d (any groups), Linear, BatchNorm (folded), ReLU, ReLU6, Hardtanh(0, cap), Avg/MaxPool, "
             "AdaptiveAvgPool, Dropout, Flatten, residual +")
MAXPOOL_MODES = ("avg", "spiking")


def _parse_mode(mode):
    """'max' -> ('max', 1.0); '99.9%' -> ('percentile', 0.999); 0.9 -> ('fraction', 0.9)."""
    if isinstance(mode, str):
        if mode.lower() == "max":
            return "max", 1.0
        match = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*%\s*", mode)
        if match and 0 < float(match.group(1)) <= 100:
            return "percentile", float(match.group(1)) / 100
    elif isinstance(mode, (int, float)) and not isinstance(mode, bool) and 0 < mode <= 1:
        return "fraction", float(mode)
    raise ValueError(f"mode must be 'max', a percentile like '99.9%', or a fraction of the max in (0, 1]; got {mode!r}")


class _TemporalLayer(nn.Module):
    """A layer of the converted graph that needs the time axis: it sees the merged ``[T*B, ...]`` batch
    and ``ConvertedSNN`` sets ``T`` before each run."""

    T = 1


class IFNeuron(_TemporalLayer):
    """The converted ReLU: multi-step IF (soft reset, ``>=``) emitting ``threshold``-valued spikes
    (``binary_output=True``: 0/1 spikes, once ``event_driven`` has folded the threshold into the
    layers that read them)."""

    def __init__(self, threshold: torch.Tensor, init_membrane: float, backend: str = "auto"):
        super().__init__()
        self.register_buffer("threshold", threshold)
        self.init_membrane = init_membrane
        self.backend = backend
        self.binary_output = False
        # with binary_output, while autograd is off: spikes bit-packed along the last dim for the
        # SpikeLinear that alone reads them (set by event_driven)
        self.packed_output = False
        self._spike_sum, self._spike_slots = None, 0  # of the last call, kept on device: no sync per forward

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x_seq = x.reshape(self.T, x.shape[0] // self.T, *x.shape[1:])
        thr = self.threshold
        v0 = (thr * self.init_membrane).expand(x_seq.shape[1:]).contiguous() if self.init_membrane else None
        packed = self.binary_output and self.packed_output and not torch.is_grad_enabled()
        spikes, _ = if_(x_seq, v0, threshold=thr, reset="subtract", convention="spikingjelly", backend=self.backend,
                        spike_dtype=torch.int32 if packed else None)
        if not torch.compiler.is_compiling():
            count = count_spikes(spikes) if packed else spikes.detach().sum()
            self._spike_sum, self._spike_slots = count, x_seq.numel()
        if packed:
            return spikes.reshape(*x.shape[:-1], spikes.shape[-1])
        return (spikes if self.binary_output else spikes * thr).reshape(x.shape)

    @property
    def last_rate(self) -> float | None:
        """Firing rate (spikes per neuron per step) of the last forward; None before any."""
        if self._spike_sum is None:
            return None
        return float(self._spike_sum) / max(self._spike_slots, 1)

    def extra_repr(self) -> str:
        t = self.threshold
        shown = f"{t.item():.4g}" if t.numel() == 1 else f"<per channel, {t.numel()}>"
        binary = ", binary_output=True" if self.binary_output else ""
        return f"threshold={shown}, init_membrane={self.init_membrane}, backend={self.backend!r}{binary}"


class SpikingMaxPool2d(_TemporalLayer):
    """Max-pooling for spike trains (Rueckauer et al. 2017): each window passes, at every step, the
    spikes of the input that has fired most so far, instead of the max of the current spikes (which
    would let any spike through and inflate the rate)."""

    def __init__(self, pool: nn.MaxPool2d):
        super().__init__()
        if pool.dilation not in (1, (1, 1)) or pool.return_indices:
            raise ValueError("spiking max-pool supports MaxPool2d without dilation or return_indices")
        self.kernel_size, self.stride, self.padding, self.ceil_mode = (pool.kernel_size, pool.stride, pool.padding,
                                                                       pool.ceil_mode)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        seq = x.reshape(self.T, x.shape[0] // self.T, *x.shape[1:])
        counts = seq.cumsum(0).reshape(x.shape)  # spikes (in threshold units) fired up to each step
        _, idx = F.max_pool2d(counts, self.kernel_size, self.stride, self.padding, ceil_mode=self.ceil_mode,
                              return_indices=True)
        return x.flatten(2).gather(2, idx.flatten(2)).reshape(idx.shape)


class ConvertedSNN(nn.Module):
    """A converted network: ``forward(x, T)`` takes ANN-style input ``[B, ...]`` and returns logits
    ``[B, classes]`` decoded from T time steps (``return_steps=True``: the per-step outputs ``[T, B, ...]``).

    ``encoding``: ``"direct"`` (the input as a constant current every step) or ``"rate"`` (Bernoulli
    spikes with probability = input, inputs in [0, 1]). Decoding: the last layer's output averaged over
    the steps (its accumulated membrane / T)."""

    def __init__(self, graph: fx.GraphModule, T: int = 32, encoding: str = "direct"):
        super().__init__()
        self.graph_module = graph
        self.T = T
        self.encoding = encoding

    @property
    def neurons(self) -> list[IFNeuron]:
        return [m for m in self.graph_module.modules() if isinstance(m, IFNeuron)]

    @property
    def temporal_layers(self) -> list[_TemporalLayer]:
        return [m for m in self.graph_module.modules() if isinstance(m, _TemporalLayer)]

    def forward(self, x: torch.Tensor, T: int | None = None, *, return_steps: bool = False) -> torch.Tensor:
        T = self.T if T is None else T
        if isinstance(T, bool) or not isinstance(T, int) or T < 1:
            raise ValueError(f"T must be an int >= 1, got {T!r}")
        x_seq = x.unsqueeze(0).expand(T, *x.shape)
        if self.encoding == "rate":
            x_seq = torch.bernoulli(x_seq.clamp(0, 1))
        for layer in self.temporal_layers:
            layer.T = T
        out = self.graph_module(x_seq.reshape(T * x.shape[0], *x.shape[1:]))
        out = out.reshape(T, x.shape[0], *out.shape[1:])
        return out if return_steps else out.mean(0)


def _trace(model: nn.Module) -> fx.GraphModule:
    try:
        return fx.symbolic_trace(model)
    except Exception as exc:  # fx raises many types; the user needs to know it is tracing that failed
        raise ValueError(f"the model is not torch.fx-traceable, so it cannot be converted: {exc}") from exc


def _activation_cap(mod: nn.Module) -> float | None:
    """The upper clip of a supported activation module (None: ReLU, unbounded); ValueError otherwise."""
    if isinstance(mod, nn.Hardtanh):  # ReLU6 included
        if mod.min_val != 0 or not mod.max_val > 0:
            raise ValueError(f"Hardtanh({mod.min_val}, {mod.max_val}) cannot become an IF neuron: only a ReLU "
                             "clipped at a positive cap, Hardtanh(0, cap) such as ReLU6, can")
        return float(mod.max_val)
    return None


def _check_supported(gm: fx.GraphModule) -> None:
    for node in gm.graph.nodes:
        if node.op == "call_module":
            mod = gm.get_submodule(node.target)
            ok = (STATELESS_MODULES + FOLDED_MODULES + REMOVED_MODULES + ACTIVATION_MODULES
                  + (nn.MaxPool2d, nn.MaxPool1d))
            if not isinstance(mod, ok):
                raise ValueError(f"cannot convert layer {node.target!r} ({type(mod).__name__}): supported are "
                                 f"{SUPPORTED}")
            if isinstance(mod, nn.Hardtanh):
                try:
                    _activation_cap(mod)
                except ValueError as exc:
                    raise ValueError(f"cannot convert layer {node.target!r}: {exc}") from None
        elif node.op == "call_function" and node.target not in FUNCTIONS:
            raise ValueError(f"cannot convert operation {getattr(node.target, '__name__', node.target)!r} "
                             f"at node {node.name!r}")
        elif node.op == "call_method" and node.target not in METHODS:
            raise ValueError(f"cannot convert tensor method .{node.target}() at node {node.name!r}")


def _replace_module(gm: fx.GraphModule, target: str, new: nn.Module) -> None:
    parent_name, _, name = target.rpartition(".")
    setattr(gm.get_submodule(parent_name) if parent_name else gm, name, new)


def fold_batchnorm(model: nn.Module) -> fx.GraphModule:
    """Trace ``model`` (eval mode) and fold each BatchNorm into the Conv/Linear that feeds only it.

    Exact up to fp32 rounding: the folded model computes the same function."""
    gm = _trace(copy.deepcopy(model).eval())
    for node in list(gm.graph.nodes):
        if node.op != "call_module" or not isinstance(gm.get_submodule(node.target), FOLDED_MODULES):
            continue
        prev = node.args[0]
        prev_mod = gm.get_submodule(prev.target) if getattr(prev, "op", None) == "call_module" else None
        bn = gm.get_submodule(node.target)
        if len(prev.users) != 1 or not isinstance(prev_mod, (nn.Conv1d, nn.Conv2d, nn.Linear)):
            raise ValueError(f"BatchNorm {node.target!r} does not directly follow a Conv/Linear, cannot fold it")
        fuse = fuse_linear_bn_eval if isinstance(prev_mod, nn.Linear) else fuse_conv_bn_eval
        _replace_module(gm, prev.target, fuse(prev_mod, bn))
        node.replace_all_uses_with(prev)
        gm.graph.erase_node(node)
    gm.graph.lint()
    gm.delete_all_unused_submodules()
    gm.recompile()
    return gm


def _normalize_graph(gm: fx.GraphModule, maxpool: str | None) -> None:
    """ReLU / ReLU6 calls become nn.ReLU / nn.ReLU6 modules (to hook and replace); Dropout goes; MaxPool
    becomes the spiking max-pool or AvgPool (``maxpool=None``: stays, for the ANN reference)."""
    count = 0
    for node in list(gm.graph.nodes):
        is_relu = (node.op == "call_function" and node.target in RELU_FUNCTIONS) or \
                  (node.op == "call_method" and node.target == "relu")
        if is_relu:
            name = f"snnkern_relu_{count}"
            count += 1
            gm.add_submodule(name, nn.ReLU6() if node.target is F.relu6 else nn.ReLU())
            with gm.graph.inserting_after(node):
                new = gm.graph.call_module(name, (node.args[0],))
            node.replace_all_uses_with(new)
            gm.graph.erase_node(node)
        elif node.op == "call_module":
            mod = gm.get_submodule(node.target)
            if isinstance(mod, REMOVED_MODULES):
                node.replace_all_uses_with(node.args[0])
                gm.graph.erase_node(node)
            elif isinstance(mod, (nn.MaxPool1d, nn.MaxPool2d)):
                if mod.dilation not in (1, (1, 1)) or mod.return_indices:
                    raise ValueError(f"cannot convert MaxPool {node.target!r} with dilation or return_indices")
                if maxpool is None:
                    continue
                if maxpool == "avg":
                    pool = nn.AvgPool2d if isinstance(mod, nn.MaxPool2d) else nn.AvgPool1d
                    _replace_module(gm, node.target, pool(mod.kernel_size, mod.stride, mod.padding, mod.ceil_mode,
                                                          count_include_pad=False))
                elif isinstance(mod, nn.MaxPool2d):
                    _replace_module(gm, node.target, SpikingMaxPool2d(mod))
                else:
                    raise ValueError(f"spiking max-pool supports MaxPool2d; {node.target!r} is a MaxPool1d")
    gm.graph.lint()
    gm.delete_all_unused_submodules()
    gm.recompile()


def _activations(gm: fx.GraphModule) -> list[tuple[str, nn.Module]]:
    """(name, module) of every activation of a normalized graph, in graph order: what becomes IF neurons."""
    return [(n.target, gm.get_submodule(n.target)) for n in gm.graph.nodes
            if n.op == "call_module" and isinstance(gm.get_submodule(n.target), ACTIVATION_MODULES)]


class _Recorder:
    """Collects a bounded random sample of the positive activations of one ReLU (per channel if asked)."""

    def __init__(self, per_channel: bool, budget: int, generator: torch.Generator):
        self.per_channel, self.budget, self.gen = per_channel, budget, generator
        self.samples: list[torch.Tensor] = []
        self.ndim = 0  # rank of the activation, [B, C, ...]

    def __call__(self, module, inputs, output):
        out = output.detach()
        flat = out.transpose(0, 1).reshape(out.shape[1], -1) if self.per_channel else out.reshape(1, -1)
        keep = min(flat.shape[1], max(1, self.budget // 16))
        idx = torch.randperm(flat.shape[1], generator=self.gen)[:keep].to(flat.device)
        self.samples.append(flat[:, idx].float().cpu())
        self.ndim = out.dim()

    def scale(self, kind: str, q: float) -> torch.Tensor:
        values = torch.cat(self.samples, dim=1)[:, -self.budget:]
        result = []
        for row in values:
            pos = row[row > 0]
            if pos.numel() == 0:
                result.append(torch.tensor(1.0))  # a dead unit/channel: any positive threshold is exact
            elif kind == "percentile":
                k = max(1, min(pos.numel(), int(round(q * pos.numel()))))
                result.append(pos.kthvalue(k).values)
            else:
                result.append(pos.max() * q)
        return torch.stack(result)


def _batches(calibration) -> Iterable[torch.Tensor]:
    if isinstance(calibration, torch.Tensor):
        yield calibration
        return
    for batch in calibration:
        yield batch[0] if isinstance(batch, (tuple, list)) else batch


def convert(ann: nn.Module, calibration, *, mode="99.9%", per_channel: bool = False, init_membrane: float = 0.5,
            maxpool: str = "spiking", T: int = 32, encoding: str = "direct", max_calibration_samples: int = 2**20,
            seed: int = 0, backend: str = "auto") -> ConvertedSNN:
    """Convert a trained ReLU network into an SNN of IF neurons that runs on snnkern's fused kernel.

    ``calibration``: a DataLoader (batches or (inputs, targets)) or a tensor batch of ANN inputs.
    ``mode``: ``"max"``, a percentile string (``"99.9%"``), or a float fraction of the max.
    Returns a ``ConvertedSNN``; call it with ``T`` steps (default ``T``).  Unsupported layers and empty
    calibration data raise ValueError naming them.  ``backend`` goes to the IF kernels.
    """
    if not isinstance(ann, nn.Module):
        raise TypeError(f"ann must be a torch.nn.Module, got {type(ann).__name__}")
    kind, q = _parse_mode(mode)
    if maxpool not in MAXPOOL_MODES:
        raise ValueError(f"maxpool must be one of {MAXPOOL_MODES}; got {maxpool!r}")
    if encoding not in ("direct", "rate"):
        raise ValueError(f"encoding must be 'direct' or 'rate'; got {encoding!r}")
    if not (isinstance(init_membrane, (int, float)) and 0 <= init_membrane < 1):
        raise ValueError(f"init_membrane must be a fraction of the threshold in [0, 1); got {init_membrane!r}")
    _check_supported(_trace(copy.deepcopy(ann)))
    gm = fold_batchnorm(ann)
    _normalize_graph(gm, maxpool)

    relus = _activations(gm)
    gen = torch.Generator().manual_seed(seed)
    recorders = {name: _Recorder(per_channel, max_calibration_samples, gen) for name, _ in relus}
    handles = [mod.register_forward_hook(recorders[name]) for name, mod in relus]
    device = next((p.device for p in gm.parameters()), torch.device("cpu"))
    seen = 0
    try:
        with torch.no_grad():
            for x in _batches(calibration):
                if not isinstance(x, torch.Tensor) or x.numel() == 0:
                    continue
                gm(x.to(device))
                seen += x.shape[0]
    finally:
        for h in handles:
            h.remove()
    if seen == 0:
        raise ValueError("calibration holds no data: pass a non-empty DataLoader or tensor batch")

    for name, mod in relus:
        rec = recorders[name]
        scale = rec.scale(kind, q).to(device)
        cap = _activation_cap(mod)
        if cap is not None:  # the IF neuron clips at its threshold: a threshold at or below the cap keeps ReLU6's clip
            scale = scale.clamp(max=cap)
        # per channel: [C] -> [C, 1, ...], broadcastable over the neuron shape [B, C, *spatial]
        scale = scale.reshape(-1, *([1] * (rec.ndim - 2))) if per_channel else scale.reshape(())
        _replace_module(gm, name, IFNeuron(scale, float(init_membrane), backend))
    gm.recompile()
    return ConvertedSNN(gm, T=T, encoding=encoding)


def accuracy_vs_T(snn: ConvertedSNN, loader, T_list, device=None) -> dict[int, float]:
    """Top-1 accuracy of ``snn`` at every T in ``T_list`` from one run at max(T_list): outputs are causal,
    so the logits at T are the mean of the first T steps."""
    T_list = sorted({int(t) for t in T_list})
    if not T_list or T_list[0] < 1:
        raise ValueError("T_list must hold positive ints")
    device = device or next((p.device for p in snn.parameters()), torch.device("cpu"))
    correct = {t: 0 for t in T_list}
    total = 0
    snn.eval()
    with torch.no_grad():
        for x, y in loader:
            steps = snn(x.to(device), T_list[-1], return_steps=True)  # [T, B, C]
            cum = steps.cumsum(0)
            y = y.to(device)
            for t in T_list:
                correct[t] += int((cum[t - 1].argmax(-1) == y).sum())
            total += y.numel()
    if total == 0:
        raise ValueError("loader holds no data")
    return {t: correct[t] / total for t in T_list}


def _corr(a: torch.Tensor, b: torch.Tensor) -> float:
    a, b = a.double().flatten(), b.double().flatten()
    a, b = a - a.mean(), b - b.mean()
    denom = (a.norm() * b.norm()).item()
    return float((a @ b).item() / denom) if denom > 0 else float(torch.equal(a, b))


def layer_agreement(ann: nn.Module, snn: ConvertedSNN, x: torch.Tensor, T: int | None = None) -> list[dict]:
    """How well ``snn`` (converted from ``ann``) tracks the ANN, layer by layer, on the batch ``x``.

    One row per IF layer (in graph order) and a last row ``"output"`` for the logits: ``corr`` is the
    Pearson correlation between the ANN activation and the SNN's decoded output (threshold x firing rate,
    averaged over the T steps); ``rel_err`` the relative L2 error; ``rate`` the SNN's firing rate and
    ``threshold`` its (mean) threshold. The ANN side is the ANN's own graph with BatchNorm folded and
    Dropout removed (the function the conversion targets, max-pool kept as max-pool)."""
    T = snn.T if T is None else T
    ref = fold_batchnorm(ann)
    _normalize_graph(ref, None)
    names = [name for name, _ in _activations(ref)]
    neurons = {name: mod for name, mod in snn.graph_module.named_modules() if isinstance(mod, IFNeuron)}
    if set(names) != set(neurons):
        raise ValueError("snn was not converted from ann: their activation layers differ")
    device = next((p.device for p in snn.parameters()), x.device)
    x = x.to(device)
    ann_out, snn_out, handles = {}, {}, []
    for name in names:
        handles.append(ref.get_submodule(name).register_forward_hook(
            lambda m, a, out, name=name: ann_out.__setitem__(name, out.detach().clone())))

        def snn_hook(m, a, out, name=name):
            value = out.float() * m.threshold if m.binary_output else out
            snn_out[name] = value.reshape(m.T, -1, *value.shape[1:]).mean(0)
        handles.append(neurons[name].register_forward_hook(snn_hook))
    packed = {name: m.packed_output for name, m in neurons.items()}
    try:
        for m in neurons.values():
            m.packed_output = False  # decoded values, not bit-packed words
        with torch.no_grad():
            ann_logits = ref(x)
            snn_logits = snn(x, T)
    finally:
        for h in handles:
            h.remove()
        for name, m in neurons.items():
            m.packed_output = packed[name]
    rows = []
    for name in names + ["output"]:
        a, s = (ann_logits, snn_logits) if name == "output" else (ann_out[name], snn_out[name])
        row = {"layer": name, "corr": _corr(a, s),
               "rel_err": float((a - s).norm() / a.norm().clamp_min(1e-12))}
        if name != "output":
            row.update(rate=neurons[name].last_rate, threshold=float(neurons[name].threshold.mean()))
        rows.append(row)
    return rows


def plot_accuracy_vs_T(results: dict[int, float], path: str, *, ann_accuracy: float | None = None,
                       label: str = "converted SNN") -> str:
    """Save accuracy-vs-T (log2 x axis, ticked at the T values of ``results``) as a PNG at ``path``;
    returns the path."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(5, 3.5))
    points = sorted((int(t), results[t]) for t in results)  # keys may be strings (a report.json read back)
    ts = [t for t, _ in points]
    ax.plot(ts, [100 * a for _, a in points], marker="o", label=label)
    if ann_accuracy is not None:
        ax.axhline(100 * ann_accuracy, color="gray", linestyle="--", label="ANN")
    ax.set_xscale("log", base=2)
    ax.set_xticks(ts, [str(t) for t in ts])  # ticks at the T values run (5, 20, 50 fall between powers of 2)
    ax.minorticks_off()
    ax.set_xlabel("time steps T (log scale)")
    ax.set_ylabel("accuracy (%)")
    ax.grid(alpha=0.3)
    ax.legend(loc="best")  # the ANN line runs along the top: a fixed corner may cover it
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path
