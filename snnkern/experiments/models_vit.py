"""A small Vision Transformer and its spiking hybrid (Daniels & Becher 2025).

``ViT``: patch embedding (a conv with stride = patch), a class token and learned position embeddings,
``depth`` pre-norm blocks (LayerNorm -> multi-head self-attention -> residual; LayerNorm -> MLP with
GELU -> residual), LayerNorm and a linear head on the class token.

``ViT(spiking=True)``, the ViT-SNN hybrid, read from the paper: "standard activation functions such as
ReLU and GELU were replaced with spiking neurons using the LIF model" in a ViT whose only activation is
the MLP's GELU. So each MLP's GELU becomes a multi-step LIF neuron (``snnkern.nn.LIF``, soft reset,
beta and surrogate from the preset) and its second Linear reads binary spikes; everything else stays
as in the ANN — softmax attention, LayerNorm, residual stream and head — and runs on every time step
of the image repeated T times (the paper's static input "repeated" into a sequence: direct coding).
Spikes reach attention only through the residual stream (the MLP's spike-driven output added to it);
the paper names no spiking attention (no spiking Q/K/V as in Spikformer), so none is invented. Input
``[T, B, C, H, W]``, output the head's logits at every step ``[T, B, classes]``, decoded by their sum.

The paper fine-tuned ImageNet-pretrained ViT-B/16 and ViT-Tiny; offline there are no such weights, so
these models are small and trained from scratch (stated in the presets).
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from ..nn import LIF, SpikingSequential


def patch_size_for(size: int) -> int:
    """4 for MNIST/CIFAR-sized images (7x7 / 8x8 patches), 2 for the 8x8 offline digits."""
    for p in (4, 2):
        if size % p == 0 and size // p >= 2:
            return p
    return 1


class Attention(nn.Module):
    def __init__(self, dim: int, heads: int):
        super().__init__()
        if dim % heads:
            raise ValueError(f"dim ({dim}) must be a multiple of heads ({heads})")
        self.heads = heads
        self.qkv = nn.Linear(dim, 3 * dim)
        self.proj = nn.Linear(dim, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        B, N, D = x.shape
        q, k, v = self.qkv(x).reshape(B, N, 3, self.heads, D // self.heads).permute(2, 0, 3, 1, 4)
        out = F.scaled_dot_product_attention(q, k, v)  # softmax(q k^T / sqrt(d)) v
        return self.proj(out.transpose(1, 2).reshape(B, N, D))


class Block(nn.Module):
    def __init__(self, dim: int, heads: int, hidden: int, spiking: bool, beta: float, surrogate: str):
        super().__init__()
        self.norm1, self.attn = nn.LayerNorm(dim), Attention(dim, heads)
        self.norm2 = nn.LayerNorm(dim)
        act = LIF(beta=beta, surrogate=surrogate) if spiking else nn.GELU()
        mlp = (nn.Linear(dim, hidden), act, nn.Linear(hidden, dim))
        # spiking: over [T, B, N, D], the Linears on all T*B merged, the LIF over the sequence
        self.mlp = SpikingSequential(*mlp) if spiking else nn.Sequential(*mlp)
        self.spiking = spiking

    def forward(self, x: torch.Tensor, T: int) -> torch.Tensor:
        x = x + self.attn(self.norm1(x))
        h = self.norm2(x)
        if self.spiking:
            return x + self.mlp(h.unflatten(0, (T, -1))).flatten(0, 1)
        return x + self.mlp(h)


class ViT(nn.Module):
    """``spiking=False``: ``[B, C, H, W] -> [B, classes]``. ``spiking=True``: ``[T, B, C, H, W] -> [T, B, classes]``."""

    def __init__(self, in_channels: int, size: int, classes: int, *, dim: int = 64, depth: int = 4, heads: int = 4,
                 mlp_ratio: int = 2, patch: int | None = None, spiking: bool = False, beta: float = 0.9,
                 surrogate: str = "atan"):
        super().__init__()
        patch = patch or patch_size_for(size)
        n = (size // patch) ** 2
        self.spiking = spiking
        self.embed = nn.Conv2d(in_channels, dim, patch, stride=patch)
        self.cls = nn.Parameter(torch.zeros(1, 1, dim))
        self.pos = nn.Parameter(0.02 * torch.randn(1, n + 1, dim))
        self.blocks = nn.ModuleList(Block(dim, heads, mlp_ratio * dim, spiking, beta, surrogate) for _ in range(depth))
        self.norm = nn.LayerNorm(dim)
        self.head = nn.Linear(dim, classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.spiking:
            if x.dim() != 5:
                raise ValueError(f"the spiking ViT takes [T, B, C, H, W]; got shape {tuple(x.shape)}")
            T, B = x.shape[:2]
            x = x.flatten(0, 1)
        else:
            T = 1
        tokens = self.embed(x).flatten(2).transpose(1, 2)  # [T*B, N, dim]
        tokens = torch.cat([self.cls.expand(tokens.shape[0], -1, -1), tokens], dim=1) + self.pos
        for block in self.blocks:
            tokens = block(tokens, T)
        logits = self.head(self.norm(tokens[:, 0]))
        return logits.unflatten(0, (T, B)) if self.spiking else logits
