"""NIR (Neuromorphic Intermediate Representation) export and import for snnkern SNNs.

``export(model, sample)`` writes a ``nir.NIRGraph`` of a chain of layers (``nn.Sequential``,
``SpikingSequential``, a ``ConvertedSNN`` or any fx-traceable chain); ``load(graph)`` builds an snnkern
``SpikingSequential`` from one.  Both also take a file path (``nir.write`` / ``nir.read``).

Time and state.  NIR describes one time step of a continuous-time network; snnkern runs time-major
sequences.  The model ``load`` returns takes ``[T, B, ...]`` and returns ``[T, B, ...]``: stateless
layers see the T*B samples merged, each neuron layer runs the whole sequence in one call and keeps its
membrane between calls (``snnkern.nn.reset_states(model)`` starts a new sequence, from the membrane
the neuron's convention starts at: 0 in the snnTorch convention).  NIR has no initial state: a graph
from elsewhere starts at 0 too.  ``export`` takes ``sample`` as one time step
``[B, ...]``: it only reads shapes from it and does not touch the neuron states.

Discretization.  NIR's LIF is ``tau dv/dt = (v_leak - v) + r I``, spiking when ``v > v_threshold`` and
then setting ``v = v_reset``.  With forward Euler at step ``dt`` (default 1e-4, the value snnTorch's NIR
import and export assume) it is ``v = beta v + k I + (1 - beta) v_leak`` with ``beta = 1 - dt/tau``
and input gain ``k = r dt / tau``.  snnkern writes ``tau = dt / (1 - beta)`` and ``r = tau / dt``
(``k = 1``; ``r = 1`` for ``decay_input=True``, ``k = 1 - beta``), and checks that beta comes back
bitwise in float32.  NIR's IF (``dv/dt = r I``) is read as ``v = v + r I`` per step.

What maps exactly (spikes identical):
    snnkern.nn.LIF / IF / PLIF with ``convention="snntorch"`` and ``reset="zero"`` or ``"hard"`` (the
    one-step-delayed reset of the snnTorch convention gives the same spikes as NIR's immediate reset
    to a value; the membrane leaks towards ``v_reset``, so ``v_leak = v_reset``); per-neuron and
    learnable beta/threshold are written as arrays.  nn.Linear (Affine / Linear), nn.Conv2d (Conv2d),
    nn.Flatten (Flatten), nn.AvgPool2d (AvgPool2d), and Identity/Dropout (dropped).
What is refused, with a ValueError/TypeError naming the layer and the option:
    ``convention="spikingjelly"`` (fires on ``v >= threshold``; NIR fires on ``v > threshold``),
    ``reset="subtract"`` and ``reset="none"`` (NIR resets to a value), the converted SNN's IF neurons
    (SpikingJelly convention, subtract reset, a start membrane and threshold-valued spikes), max-pooling
    (no NIR node), BatchNorm (fold it first), a LIF with ``beta == 1`` (use IF), and any other layer.
    ``extensions=True`` writes those neurons anyway as NIR IF/LIF nodes that carry snnkern's real
    semantics in ``metadata`` (keys ``snnkern_*``), for an exact snnkern -> snnkern round trip; other
    NIR readers ignore the metadata and would run the plain NIR meaning, so such a graph is for snnkern.
When loading, the refused NIR content is: a LIF whose ``v_leak`` differs from ``v_reset``, a
non-uniform ``v_reset``, an input gain other than 1 or ``1 - beta``, an IF with ``r != 1``, CubaLIF /
LI / CubaLI / I / Delay / Threshold nodes, sub-graphs and recurrent or branching graphs.

Peer notes (snnTorch 1.0): its importer maps NIR's IF to ``Leaky(beta=0.9)`` with subtract reset, so
for an exact snnTorch import of IF layers export with ``if_node="LIF"`` (an IF written as a LIF whose
float32 decay is exactly 1); its importer also reads every LIF as a reset to 0 (it ignores
``v_reset``) and flattens the batch dimension in Flatten (run it with batch 1).  Its exporter writes
``v_reset = 0`` whatever the Leaky's reset mechanism and delay, so only ``Leaky(reset_mechanism="zero")``
(delayed or not: the spikes are the same) exports faithfully; it needs per-neuron beta and threshold
tensors for its own type check, and it writes tau in float32, which brings beta back bitwise for
beta > 0.5.
"""
from __future__ import annotations

import math
import pathlib

import numpy as np
import torch
from torch import fx, nn

try:
    import nir
except ImportError as exc:  # pragma: no cover - exercised where nir is absent
    raise ImportError("snnkern.nir needs the NIR packages: pip install nir nirtorch "
                      "(or pip install 'snnkern[nir]')") from exc

from ..nn.multistep import Multistep, SpikingSequential
from ..nn.neurons import IF, LIF, PLIF, SpikingNeuron
from .ann2snn import ConvertedSNN, IFNeuron, SpikingMaxPool2d

__all__ = ["export", "load", "DEFAULT_DT", "IF_AS_LIF_TAU_STEPS"]

DEFAULT_DT = 1e-4
# an IF written as a LIF: tau = dt * 2**40, so 1 - dt/tau = 1 - 2**-40 is exactly 1.0 in float32
IF_AS_LIF_TAU_STEPS = 2.0 ** 40
_SKIPPED = (nn.Identity, nn.Dropout, nn.Dropout1d, nn.Dropout2d)
_META = "snnkern_"


# ---------------------------------------------------------------------------------------------------
# export
# ---------------------------------------------------------------------------------------------------
def export(model: nn.Module, sample: torch.Tensor, path=None, *, dt: float = DEFAULT_DT, if_node: str = "IF",
           extensions: bool = False) -> "nir.NIRGraph":
    """NIR graph of ``model``, a chain of layers; also written to ``path`` (``nir.write``) when given.

    ``sample``: one time step of input, ``[B, ...]`` (only its shape is used).  ``dt``: the Euler step
    that turns ``beta`` into NIR's ``tau``.  ``if_node``: ``"IF"`` writes IF layers as NIR IF nodes;
    ``"LIF"`` as LIF nodes with a float32 decay of exactly 1 (what snnTorch's importer reads exactly).
    ``extensions``: write layers NIR cannot express (see the module docstring) with snnkern metadata
    instead of refusing them.  Raises ValueError/TypeError naming the layer for what does not map."""
    if not isinstance(model, nn.Module):
        raise TypeError(f"model must be a torch.nn.Module, got {type(model).__name__}")
    if not isinstance(sample, torch.Tensor) or not sample.is_floating_point() or sample.dim() < 2:
        raise ValueError("sample must be one time step of input, a floating tensor [B, ...] with B >= 1 "
                         f"and at least one feature dim; got {_describe(sample)}")
    dt = _check_dt(dt)
    if if_node not in ("IF", "LIF"):
        raise ValueError(f"if_node must be 'IF' or 'LIF', got {if_node!r}")
    if not isinstance(extensions, bool):
        raise TypeError(f"extensions must be a bool, got {type(extensions).__name__}")

    layers = _chain(model)
    param = next(iter(model.parameters()), None)
    x = sample.detach().to(param.dtype if param is not None else sample.dtype)
    if param is not None:
        x = x.to(param.device)
    nodes: dict[str, nir.NIRNode] = {"input": nir.Input(input_type=np.array(x.shape[1:]))}
    order = ["input"]

    def add(name, node):
        key, i = name, 1
        while key in nodes:
            key, i = f"{name}_{i}", i + 1
        nodes[key] = node
        order.append(key)

    with torch.no_grad():
        for name, layer in layers:
            shape = tuple(x.shape[1:])
            node_name = name.replace(".", "_") or type(layer).__name__.lower()
            if isinstance(layer, _SKIPPED):
                continue
            if isinstance(layer, SpikingNeuron):
                add(node_name, _neuron_node(name, layer, shape, dt, if_node, extensions))
                continue
            if isinstance(layer, IFNeuron):
                node, scale = _converted_if_node(name, layer, shape, extensions)
                add(node_name, node)
                if scale is not None:
                    add(f"{node_name}_scale", nir.Scale(scale=scale))
                continue
            add(node_name, _stateless_node(name, layer, shape))
            x = layer(x)
    nodes["output"] = nir.Output(output_type=np.array(x.shape[1:]))
    order.append("output")
    graph = nir.NIRGraph(nodes=nodes, edges=list(zip(order[:-1], order[1:])),
                         metadata={"snnkern_dt": dt, "snnkern_extensions": extensions})
    if path is not None:
        nir.write(path, graph)
    return graph


def _describe(x) -> str:
    return f"shape {tuple(x.shape)} {x.dtype}" if isinstance(x, torch.Tensor) else type(x).__name__


def _check_dt(dt) -> float:
    if isinstance(dt, bool) or not isinstance(dt, (int, float)) or not (0 < dt < math.inf):
        raise ValueError(f"dt must be a positive finite float, got {dt!r}")
    return float(dt)


class _LeafTracer(fx.Tracer):
    def is_leaf_module(self, m, qualname):
        leaf = isinstance(m, (SpikingNeuron, IFNeuron, SpikingMaxPool2d, Multistep))
        return leaf or super().is_leaf_module(m, qualname)


def _chain(model: nn.Module) -> list[tuple[str, nn.Module]]:
    """The layers of ``model`` in order, as (qualified name, module); containers are opened."""
    if isinstance(model, ConvertedSNN):
        return _fx_chain(model.graph_module, model.graph_module.graph)
    if isinstance(model, nn.Sequential):
        out = []
        for name, child in model.named_children():
            out += [(f"{name}.{sub}" if sub else name, m) for sub, m in _chain(child)]
        return out
    if isinstance(model, Multistep):
        return _chain(model.module)
    if not list(model.children()) or isinstance(model, (SpikingNeuron, IFNeuron)):
        return [("", model)]
    try:
        graph = _LeafTracer().trace(model)
    except Exception as exc:  # fx raises many types; the user needs to know it is tracing that failed
        raise TypeError(f"cannot export {type(model).__name__}: it is not an nn.Sequential and torch.fx "
                        f"cannot trace it into a chain of layers ({exc})") from exc
    return _fx_chain(model, graph)


def _fx_chain(root: nn.Module, graph: fx.Graph) -> list[tuple[str, nn.Module]]:
    out, prev = [], None
    for node in graph.nodes:
        if node.op == "placeholder":
            if prev is not None:
                raise ValueError(f"cannot export a model with more than one input (at {node.name!r})")
            prev = node
            continue
        if node.op == "output":
            if node.args[0] is not prev:
                raise ValueError("cannot export: the model's output is not the end of one chain of layers")
            break
        if not node.args or node.args[0] is not prev or any(
                isinstance(a, fx.Node) for a in list(node.args[1:]) + list(node.kwargs.values())):
            raise ValueError(f"cannot export node {node.name!r}: NIR export takes one chain of layers "
                             "(no branches, skip connections or extra tensor arguments)")
        if node.op == "call_module":
            sub = root.get_submodule(node.target)
            out += [(f"{node.target}.{n}" if n else node.target, m) for n, m in _chain(sub)]
        elif (node.op == "call_function" and node.target is torch.flatten) or \
                (node.op == "call_method" and node.target == "flatten"):
            start = node.args[1] if len(node.args) > 1 else node.kwargs.get("start_dim", 0)
            end = node.args[2] if len(node.args) > 2 else node.kwargs.get("end_dim", -1)
            out.append((node.name, nn.Flatten(start, end)))
        else:
            what = getattr(node.target, "__name__", node.target)
            raise TypeError(f"cannot export operation {what!r} at node {node.name!r}: NIR export maps "
                            "Linear, Conv2d, Flatten, AvgPool2d and snnkern neurons")
        prev = node
    return out


def _np(t: torch.Tensor) -> np.ndarray:
    t = t.detach().cpu()
    if t.dtype in (torch.float16, torch.bfloat16):
        t = t.float()
    return t.numpy().copy()


def _pair(v) -> np.ndarray:
    return np.array(v if isinstance(v, (tuple, list)) else (v, v), dtype=np.int64)


def _stateless_node(name: str, layer: nn.Module, shape: tuple) -> "nir.NIRNode":
    kind = type(layer).__name__
    if isinstance(layer, nn.Linear):
        if len(shape) != 1:
            raise ValueError(f"layer {name!r} (Linear) sees input of shape {shape} per sample; NIR's Affine "
                             "takes a vector (flatten before it)")
        if layer.bias is None:
            return nir.Linear(weight=_np(layer.weight))
        return nir.Affine(weight=_np(layer.weight), bias=_np(layer.bias))
    if isinstance(layer, nn.Conv2d):
        if layer.padding_mode != "zeros":
            raise ValueError(f"layer {name!r} (Conv2d) has padding_mode={layer.padding_mode!r}; NIR's Conv2d "
                             "pads with zeros")
        if len(shape) != 3:
            raise ValueError(f"layer {name!r} (Conv2d) needs [C, H, W] per sample, got {shape}")
        bias = _np(layer.bias) if layer.bias is not None else np.zeros(layer.out_channels, _np(layer.weight).dtype)
        padding = layer.padding if isinstance(layer.padding, str) else _pair(layer.padding)
        return nir.Conv2d(input_shape=np.array(shape[1:]), weight=_np(layer.weight), stride=_pair(layer.stride),
                          padding=padding, dilation=_pair(layer.dilation), groups=layer.groups, bias=bias)
    if isinstance(layer, nn.Flatten):
        if layer.start_dim == 0 or layer.start_dim < -len(shape):
            raise ValueError(f"layer {name!r} (Flatten) flattens the batch dimension (start_dim="
                             f"{layer.start_dim}); NIR's Flatten works per sample")
        start = layer.start_dim - 1 if layer.start_dim > 0 else layer.start_dim
        end = layer.end_dim - 1 if layer.end_dim > 0 else layer.end_dim
        return nir.Flatten(input_type={"input": np.array(shape)}, start_dim=start, end_dim=end)
    if isinstance(layer, nn.AvgPool2d):
        pad = _pair(layer.padding)
        if layer.ceil_mode or layer.divisor_override is not None or (pad.any() and not layer.count_include_pad):
            raise ValueError(f"layer {name!r} (AvgPool2d) uses ceil_mode, divisor_override or "
                             "count_include_pad=False with padding; NIR's AvgPool2d has none of them")
        stride = layer.kernel_size if layer.stride is None else layer.stride
        return nir.AvgPool2d(kernel_size=_pair(layer.kernel_size), stride=_pair(stride), padding=pad)
    if isinstance(layer, (nn.MaxPool1d, nn.MaxPool2d, SpikingMaxPool2d)):
        raise TypeError(f"layer {name!r} ({kind}): NIR has no max-pooling node; use AvgPool2d")
    if isinstance(layer, (nn.BatchNorm1d, nn.BatchNorm2d)):
        raise TypeError(f"layer {name!r} ({kind}): fold BatchNorm into the layer before it first "
                        "(snnkern.convert.fold_batchnorm)")
    raise TypeError(f"layer {name!r} ({kind}) has no NIR mapping: NIR export maps Linear, Conv2d, Flatten, "
                    "AvgPool2d, Identity/Dropout and snnkern neurons (LIF, IF, PLIF)")


def _full(value, shape, name: str, what: str, dtype=np.float32) -> np.ndarray:
    """A neuron parameter (float or tensor broadcastable to [B, *shape]) as an array of the neuron shape."""
    if isinstance(value, torch.Tensor):
        arr = _np(value)
        if arr.ndim > len(shape):  # broadcast over the batch dim: leading dims must be 1
            lead = arr.shape[:arr.ndim - len(shape)]
            if any(d != 1 for d in lead):
                raise ValueError(f"layer {name!r}: {what} of shape {tuple(arr.shape)} varies over the batch; "
                                 f"NIR parameters are per neuron {shape}")
            arr = arr.reshape(arr.shape[arr.ndim - len(shape):])
    else:
        arr = np.asarray(value, dtype=dtype)
    try:
        return np.ascontiguousarray(np.broadcast_to(arr.astype(dtype), shape))
    except ValueError:
        raise ValueError(f"layer {name!r}: {what} of shape {tuple(arr.shape)} does not broadcast to the "
                         f"neuron shape {shape}") from None


def _refuse(name, layer, option, why):
    raise ValueError(f"layer {name!r} ({type(layer).__name__}) has {option}: {why}; NIR cannot express it "
                     "exactly (export(..., extensions=True) writes it with snnkern metadata, for snnkern only)")


def _neuron_node(name, layer, shape, dt, if_node, extensions):
    leaky = isinstance(layer, (LIF, PLIF))
    if not isinstance(layer, (LIF, IF, PLIF)):
        raise TypeError(f"layer {name!r} ({type(layer).__name__}) is a neuron without a NIR mapping")
    meta = {}
    if layer.convention != "snntorch":
        if not extensions:
            _refuse(name, layer, f"convention={layer.convention!r}",
                    "it fires on v >= threshold and NIR fires on v > threshold")
        meta[_META + "convention"] = layer.convention
    if layer.reset_mode not in ("zero", "hard"):
        if not extensions:
            _refuse(name, layer, f"reset={layer.reset_mode!r}", "NIR neurons reset to a value (v_reset)")
        meta[_META + "reset"] = layer.reset_mode
    if isinstance(layer, SpikingNeuron) and getattr(layer, "packed_output", False):
        raise ValueError(f"layer {name!r} emits bit-packed spikes (event_driven); export the model before "
                         "event_driven, or with packed_output=False")
    v_r = layer.v_reset if layer.reset_mode == "hard" else 0.0
    thr = _full(layer.threshold, shape, name, "threshold")
    v_reset = np.full(shape, v_r, np.float32)
    if not leaky:
        if if_node == "IF":
            return nir.IF(r=np.ones(shape, np.float32), v_threshold=thr, v_reset=v_reset, metadata=meta)
        tau = np.full(shape, dt * IF_AS_LIF_TAU_STEPS)
        return nir.LIF(tau=tau, r=tau / dt, v_leak=np.zeros(shape, np.float32), v_threshold=thr,
                       v_reset=v_reset, metadata=meta)
    beta_t = (1.0 - layer.w.detach().sigmoid()) if isinstance(layer, PLIF) else layer.beta
    beta = _full(beta_t, shape, name, "beta").astype(np.float64)
    if np.any(beta >= 1.0) or np.any(beta < 0.0):
        raise ValueError(f"layer {name!r} ({type(layer).__name__}) has beta outside [0, 1) (beta == 1 is no "
                         "leak: NIR's LIF needs a finite tau; build that layer as snnkern.nn.IF)")
    tau = dt / (1.0 - beta)
    if not np.array_equal((1.0 - dt / tau).astype(np.float32), beta.astype(np.float32)):
        raise ValueError(f"layer {name!r}: beta does not survive tau = dt/(1-beta) -> 1 - dt/tau in float32 at "
                         f"dt={dt}; choose another dt")
    decay_input = bool(layer.decay_input) if layer.decay_input is not None else layer.convention != "snntorch"
    r = np.ones(shape) if decay_input else tau / dt
    return nir.LIF(tau=tau, r=r, v_leak=v_reset.copy(), v_threshold=thr, v_reset=v_reset, metadata=meta)


def _converted_if_node(name, layer: IFNeuron, shape, extensions):
    """The converted SNN's IF neuron: SpingJelly convention, subtract reset, a start membrane and
    threshold-valued spikes.  Only with extensions: an IF node with metadata, then a Scale node."""
    if not extensions:
        _refuse(name, layer, "the converted-SNN semantics (convention='spikingjelly': v >= threshold, "
                "reset='subtract', a start membrane, threshold-valued spikes)", "none of these is in NIR")
    thr = _full(layer.threshold, shape, name, "threshold")
    meta = {_META + "convention": "spikingjelly", _META + "reset": "subtract"}
    if layer.init_membrane:
        v_init = (layer.threshold.detach() * layer.init_membrane).expand(1, *shape)
        meta[_META + "v_init"] = _np(v_init)[0]
    node = nir.IF(r=np.ones(shape, np.float32), v_threshold=thr, v_reset=np.zeros(shape, np.float32), metadata=meta)
    return node, (None if layer.binary_output else thr.copy())


# ---------------------------------------------------------------------------------------------------
# load
# ---------------------------------------------------------------------------------------------------
class _Scale(nn.Module):
    """NIR's Scale: elementwise product with a per-neuron array."""

    def __init__(self, scale: torch.Tensor):
        super().__init__()
        self.register_buffer("scale", scale)

    def forward(self, x):
        return x * self.scale


class _StartIF(IF):
    """An snnkern IF whose membrane starts every sequence at ``v_init`` (per neuron) instead of 0."""

    def __init__(self, v_init: torch.Tensor, **kwargs):
        super().__init__(**kwargs)
        self.register_buffer("v_init", v_init)

    def _run(self, x_seq, v0, return_membrane):
        if v0 is None:
            v0 = self.v_init.to(x_seq.device).expand(x_seq.shape[1:]).contiguous()
        return super()._run(x_seq, v0, return_membrane)


def load(graph, *, dt: float | None = None) -> SpikingSequential:
    """An snnkern model from a NIR graph (a ``nir.NIRGraph`` or a path to a NIR file).

    Returns a ``SpikingSequential``: input ``[T, B, ...]`` (time-major, ``...`` the graph's input shape),
    output ``[T, B, ...]``; neuron membranes persist between calls until ``snnkern.nn.reset_states``.
    ``dt``: the Euler step for NIR's continuous-time LIF (default: the one an snnkern export recorded,
    else 1e-4 as snnTorch assumes).  Raises ValueError/TypeError naming the node for what does not map."""
    if isinstance(graph, (str, pathlib.Path)):
        graph = nir.read(graph)
    if not isinstance(graph, nir.NIRGraph):
        raise TypeError(f"graph must be a nir.NIRGraph or a path to a NIR file, got {type(graph).__name__}")
    if dt is None:
        dt = float(_meta_value(graph.metadata or {}, "snnkern_dt", DEFAULT_DT))
    dt = _check_dt(dt)
    modules = []
    for key in _node_chain(graph):
        node = graph.nodes[key]
        if isinstance(node, (nir.Input, nir.Output)):
            continue
        module = _node_module(key, node, dt)
        if module is not None:
            modules.append((key.replace(".", "_"), module))
    model = SpikingSequential()
    for key, module in modules:
        model.add_module(key, module)
    return model


def _node_chain(graph) -> list[str]:
    succ, pred = {}, {}
    for a, b in graph.edges:
        succ.setdefault(a, []).append(b)
        pred.setdefault(b, []).append(a)
    inputs = [k for k, n in graph.nodes.items() if isinstance(n, nir.Input)]
    if len(inputs) != 1:
        raise ValueError(f"the graph must have exactly one Input node, found {len(inputs)}")
    order, key = [], inputs[0]
    while True:
        if key in order:
            raise ValueError(f"the graph is recurrent at node {key!r}; snnkern.nir.load takes feed-forward chains")
        order.append(key)
        nxt = succ.get(key, [])
        if not nxt:
            break
        if len(nxt) > 1 or len(pred.get(nxt[0], [])) > 1:
            where = key if len(nxt) > 1 else nxt[0]
            raise ValueError(f"the graph branches or merges at node {where!r}; snnkern.nir.load takes one "
                             "chain of layers")
        key = nxt[0]
    if not isinstance(graph.nodes[order[-1]], nir.Output):
        raise ValueError(f"the chain from the Input ends at {order[-1]!r}, not at an Output node")
    left = set(graph.nodes) - set(order)
    if left:
        raise ValueError(f"nodes {sorted(left)} are not on the chain from Input to Output")
    return order


def _meta_value(meta, key, default=None):
    v = meta.get(key, default) if meta else default
    if isinstance(v, bytes):
        return v.decode()
    if isinstance(v, np.ndarray) and v.dtype.kind in "SO" and v.ndim == 0:
        v = v.item()
        return v.decode() if isinstance(v, bytes) else v
    if isinstance(v, np.generic):
        return v.item()
    return v


def _ints(v):
    if isinstance(v, (bytes, np.bytes_)):
        return v.decode()
    if isinstance(v, str):
        return v
    arr = np.asarray(v).reshape(-1).astype(int)
    return tuple(int(a) for a in arr) if arr.size > 1 else int(arr[0])


def _t(a) -> torch.Tensor:
    return torch.as_tensor(np.asarray(a), dtype=torch.float32).clone()


def _value(arr32: np.ndarray):
    """A float when uniform (the kernels take it as an argument), else a float32 tensor per neuron."""
    flat = arr32.reshape(-1)
    if flat.size and np.all(flat == flat[0]):
        return float(flat[0])
    return _t(arr32)


def _uniform(arr, key, what) -> float:
    flat = np.asarray(arr, np.float32).reshape(-1)
    if flat.size and not np.all(flat == flat[0]):
        raise ValueError(f"node {key!r}: {what} varies across neurons; snnkern neurons take one {what} per layer")
    return float(flat[0]) if flat.size else 0.0


def _node_module(key, node, dt):
    kind = type(node).__name__
    if isinstance(node, nir.Affine):
        w = _t(node.weight)
        m = nn.Linear(w.shape[1], w.shape[0])
        m.weight.data, m.bias.data = w, _t(node.bias)
        return m
    if isinstance(node, nir.Linear):
        w = _t(node.weight)
        m = nn.Linear(w.shape[1], w.shape[0], bias=False)
        m.weight.data = w
        return m
    if isinstance(node, nir.Conv2d):
        w = _t(node.weight)
        m = nn.Conv2d(w.shape[1] * int(node.groups), w.shape[0], tuple(w.shape[2:]), stride=_ints(node.stride),
                      padding=_ints(node.padding), dilation=_ints(node.dilation), groups=int(node.groups))
        m.weight.data, m.bias.data = w, _t(node.bias)
        return m
    if isinstance(node, nir.Flatten):
        start, end = int(node.start_dim), int(node.end_dim)
        return nn.Flatten(start + 1 if start >= 0 else start, end + 1 if end >= 0 else end)
    if isinstance(node, nir.AvgPool2d):
        return nn.AvgPool2d(_ints(node.kernel_size), _ints(node.stride), _ints(node.padding))
    if isinstance(node, nir.SumPool2d):
        return nn.AvgPool2d(_ints(node.kernel_size), _ints(node.stride), _ints(node.padding), divisor_override=1)
    if isinstance(node, nir.Scale):
        return _Scale(_t(node.scale))
    if isinstance(node, (nir.LIF, nir.IF)):
        return _neuron_module(key, node, dt)
    if isinstance(node, nir.NIRGraph):
        raise TypeError(f"node {key!r} is a sub-graph (e.g. a recurrent layer); snnkern.nir.load takes "
                        "feed-forward chains of Affine/Linear/Conv2d/Flatten/pooling/Scale/LIF/IF nodes")
    raise TypeError(f"node {key!r} ({kind}) has no snnkern mapping: snnkern.nir.load maps Affine, Linear, "
                    "Conv2d, Flatten, AvgPool2d, SumPool2d, Scale, LIF and IF")


def _neuron_module(key, node, dt):
    meta = node.metadata or {}
    convention = _meta_value(meta, _META + "convention", "snntorch")
    reset_meta = _meta_value(meta, _META + "reset", None)
    v_init = meta.get(_META + "v_init") if meta else None
    thr = np.asarray(node.v_threshold, np.float32)
    v_reset = np.asarray(node.v_reset, np.float32)
    kind = type(node).__name__
    if isinstance(node, nir.IF):
        if not np.all(np.asarray(node.r) == 1):
            raise ValueError(f"node {key!r} (IF) has r != 1; snnkern's IF adds its input unscaled")
        beta32, gain, v_leak = None, "one", None
    else:
        tau, r = np.asarray(node.tau, np.float64), np.asarray(node.r, np.float64)
        beta32 = (1.0 - dt / tau).astype(np.float32)
        if np.any(beta32 < 0) or np.any(beta32 > 1):
            raise ValueError(f"node {key!r} (LIF) has tau < dt (beta = 1 - dt/tau outside [0, 1] at dt={dt})")
        k = r * dt / tau
        if np.allclose(k, 1.0, rtol=1e-6, atol=0):
            gain = "one"
        elif np.allclose(k, 1.0 - beta32.astype(np.float64), rtol=1e-6, atol=0):
            gain = "decay"
        else:
            raise ValueError(f"node {key!r} (LIF) has input gain r*dt/tau != 1 and != 1 - beta (dt={dt}); "
                             "snnkern's LIF scales its input by 1 (or 1 - beta with decay_input)")
        v_leak = np.asarray(node.v_leak, np.float32)
        if np.all(beta32 == 1):
            beta32 = None  # no leak in float32: an IF, v_leak has no effect
            if gain == "decay":
                raise ValueError(f"node {key!r} (LIF): decay 1 with input gain 1 - beta = 0 never charges")
    reset = reset_meta or ("zero" if np.all(v_reset == 0) else "hard")
    v_r = _uniform(v_reset, key, "v_reset") if reset == "hard" else 0.0
    if beta32 is not None and reset in ("zero", "hard") and not np.array_equal(
            np.broadcast_to(v_leak, v_reset.shape), v_reset):
        raise ValueError(f"node {key!r} ({kind}) has v_leak != v_reset; snnkern's LIF leaks towards v_reset "
                         "(0 for a zero reset)")
    opts = dict(threshold=_value(thr), reset=reset, v_reset=v_r, convention=convention)
    if beta32 is None:
        if v_init is not None:
            return _StartIF(_t(v_init), **opts)
        return IF(**opts)
    if v_init is not None:
        raise ValueError(f"node {key!r} ({kind}): a start membrane (snnkern_v_init) is supported on IF only")
    return LIF(_value(beta32), decay_input=(gain == "decay"), **opts)
