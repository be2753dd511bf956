"""Turn the layers of an SNN that receive spikes into event-driven ones, in place.

``event_driven(model)`` walks every ``nn.Sequential`` (``SpikingSequential`` included) in order and
swaps each ``nn.Linear`` / ``nn.Conv2d`` whose input is the output of a snnkern spiking neuron for a
``SpikeLinear`` / ``SpikeConv2d`` sharing its parameters, so ``state_dict`` keys, optimizers and
results are unchanged (within fp32 accumulation). What lies between the neuron and the layer decides:

- ``Flatten``, ``Identity``, ``Unflatten`` and max-pooling keep spikes binary: the layer takes them as
  spikes with no per-call check (``assume_binary=True``);
- ``Dropout`` keeps them binary only in eval mode (in training it scales by 1/(1-p)): such layers
  check their input every call (a device sync) and run dense when it is not binary;
- anything else (BatchNorm, average pooling, activations, another layer, nested containers) ends the
  spike path: the layer stays as it is.

A converted SNN (``snnkern.convert``) is handled in its graph: each IF layer's threshold is folded
into the layers that read its spikes, which then see binary spikes (``snnkern/convert/event_driven.py``).
"""
from __future__ import annotations

from torch import nn

from .neurons import SpikingNeuron
from .spike_layers import SpikeConv2d, SpikeLinear

KEEP_BINARY = (nn.Flatten, nn.Unflatten, nn.Identity, nn.MaxPool1d, nn.MaxPool2d, nn.MaxPool3d,
               nn.AdaptiveMaxPool1d, nn.AdaptiveMaxPool2d)
BINARY_IN_EVAL = (nn.Dropout, nn.Dropout1d, nn.Dropout2d, nn.AlphaDropout)


def event_driven(model: nn.Module, *, algorithm: str = "auto", backend: str = "auto", packed: bool = True) -> list[str]:
    """Swap, in ``model``, the Linear/Conv2d layers fed by spiking neurons for SpikeLinear/SpikeConv2d
    (``algorithm`` and ``backend`` as theirs). Returns the qualified names of the swapped layers.

    ``packed=True``: a neuron whose very next layer became a SpikeLinear emits its spikes bit-packed
    (``packed_output``) while autograd is off — the kernel writes 1 bit a spike instead of 4 bytes,
    and the SpikeLinear reads the words as they are. Under autograd it emits float spikes as before."""
    if not isinstance(model, nn.Module):
        raise TypeError(f"model must be an nn.Module, got {type(model).__name__}")
    from ..convert.ann2snn import ConvertedSNN  # late: convert builds on nn
    from ..convert.event_driven import event_driven_converted
    if isinstance(model, ConvertedSNN):
        return event_driven_converted(model, algorithm=algorithm, backend=backend, packed=packed)
    swapped = []
    for prefix, container in list(model.named_modules()):
        if not isinstance(container, nn.Sequential):
            continue
        state = None  # None: not spikes; "binary": spikes; "checked": spikes in eval mode only
        previous = None
        for name, layer in list(container.named_children()):
            if isinstance(layer, SpikingNeuron):
                state = "binary"
            elif isinstance(layer, KEEP_BINARY):
                pass
            elif isinstance(layer, BINARY_IN_EVAL):
                state = state and "checked"
            elif state and type(layer) in (nn.Linear, nn.Conv2d):
                kwargs = dict(algorithm=algorithm, backend=backend, assume_binary=state == "binary")
                new = (SpikeLinear.from_linear(layer, **kwargs) if isinstance(layer, nn.Linear)
                       else SpikeConv2d.from_conv(layer, **kwargs))
                new.train(layer.training)
                setattr(container, name, new)
                swapped.append(f"{prefix}.{name}" if prefix else name)
                if packed and isinstance(previous, SpikingNeuron) and isinstance(new, SpikeLinear):
                    previous.packed_output = True  # its only reader takes packed words
                state = None
            else:
                state = None
            previous = layer
    return swapped


__all__ = ["event_driven"]
