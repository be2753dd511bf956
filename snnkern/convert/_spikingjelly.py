"""snnkern's subclasses of SpikingJelly neurons (imported only when SpikingJelly is)."""
from spikingjelly.activation_based import neuron

from .compat import SnnkernIFNode, SnnkernLIFNode, SnnkernParametricLIFNode


class LIFNode(SnnkernLIFNode, neuron.LIFNode):
    """``LIFNode`` whose single- and multi-step forward run snnkern's fused LIF kernel."""


class IFNode(SnnkernIFNode, neuron.IFNode):
    """``IFNode`` whose single- and multi-step forward run snnkern's fused IF kernel."""


class ParametricLIFNode(SnnkernParametricLIFNode, neuron.ParametricLIFNode):
    """``ParametricLIFNode`` whose forward runs snnkern's fused LIF kernel (gradient reaches ``w``)."""


FAST = {neuron.LIFNode: LIFNode, neuron.IFNode: IFNode, neuron.ParametricLIFNode: ParametricLIFNode}
