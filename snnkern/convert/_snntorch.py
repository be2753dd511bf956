"""snnkern's subclasses of snnTorch neurons (imported only when snnTorch is)."""
import snntorch

from .compat import SnnkernLeaky


class Leaky(SnnkernLeaky, snntorch.Leaky):
    """``snntorch.Leaky`` whose forward runs snnkern's fused single-step LIF kernel."""


FAST = {snntorch.Leaky: Leaky}
