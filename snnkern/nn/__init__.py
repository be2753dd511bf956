"""Spiking layers, sequence containers, encoders and losses."""
from .encoding import direct, latency, predict, rate, spike_count
from .event_driven import event_driven
from .losses import ce_rate_loss, mse_count_loss
from .multistep import Multistep, SpikingSequential
from .neurons import IF, LIF, PLIF, SpikingNeuron, detach_states, reset_states
from .spike_layers import SpikeConv2d, SpikeLinear

__all__ = ["LIF", "IF", "PLIF", "SpikeLinear", "SpikeConv2d", "event_driven", "SpikingNeuron", "reset_states", "detach_states", "Multistep", "SpikingSequential",
           "direct", "rate", "latency", "spike_count", "predict", "mse_count_loss", "ce_rate_loss"]
