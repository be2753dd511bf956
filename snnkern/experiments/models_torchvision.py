"""The ImageNet networks of Cassetta et al. 2023 (Flowers102): torchvision's VGG19 and MobileNetV2 with
the paper's classifier, ready to fine-tune and convert.

As the paper describes: the ImageNet-pretrained backbone is kept, its classifier replaced by an MLP
(512 - 256 units, ReLU, dropout 0.5) for the dataset's classes, and the backbone frozen up to its last
section (VGG19: block 5, ``features[28:]``; MobileNetV2: the stride-32 stage and the last 1x1 conv,
``features[14:]``), which trains with the classifier.

The input normalisation of the ImageNet weights is the network's first layer, a fixed 1x1 convolution
(``(x - mean) / std``; a one-channel image feeds its value to all three channels), so the data stays in
[0, 1] like every other preset's and the converter sees an ordinary Conv2d.

ImageNet weights are used when torchvision has them cached (``~/.cache/torch/hub/checkpoints``) or when
``download=True``; otherwise the network starts from random init, trains end to end (nothing frozen),
and ``weights_source`` says so. On images smaller than ImageNet's (the offline stand-ins) VGG19's
max-pools stop once the map is one pixel wide, as the other presets' pools do.
"""
from __future__ import annotations

import os
import warnings

import torch
from torch import nn

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
ARCHS = {"vgg19": ("vgg19", "VGG19_Weights", 28, 25088), "vgg19_bn": ("vgg19_bn", "VGG19_BN_Weights", 40, 25088),
         "mobilenetv2": ("mobilenet_v2", "MobileNet_V2_Weights", 14, 1280)}  # ctor, weights enum, frozen-below, head in


def imagenet_normalization(in_channels: int) -> nn.Conv2d:
    """``(x - mean) / std`` per ImageNet channel as a fixed 1x1 conv from ``in_channels`` (1 or 3) to 3."""
    if in_channels not in (1, 3):
        raise ValueError(f"ImageNet networks take 1- or 3-channel images; got {in_channels} channels")
    conv = nn.Conv2d(in_channels, 3, 1)
    inv_std = 1.0 / torch.tensor(IMAGENET_STD)
    weight = torch.diag(inv_std) if in_channels == 3 else inv_std.reshape(3, 1)
    with torch.no_grad():
        conv.weight.copy_(weight.reshape(3, in_channels, 1, 1))
        conv.bias.copy_(-torch.tensor(IMAGENET_MEAN) * inv_std)
    conv.requires_grad_(False)
    return conv


def classifier_head(in_features: int, classes: int, hidden=(512, 256), dropout: float = 0.5) -> nn.Sequential:
    layers, width = [], in_features
    for n in hidden:
        layers += [nn.Linear(width, n), nn.ReLU(inplace=True), nn.Dropout(dropout)]
        width = n
    layers.append(nn.Linear(width, classes))
    return nn.Sequential(*layers)


def _cached(weights) -> bool:
    return os.path.exists(os.path.join(torch.hub.get_dir(), "checkpoints", os.path.basename(weights.url)))


def _shrink_pools(features: nn.Sequential, size: int) -> None:
    """Replace the max-pools that would take a one-pixel map below one pixel by Identity."""
    for i, layer in enumerate(features):
        if isinstance(layer, nn.MaxPool2d):
            if size < 2:
                features[i] = nn.Identity()
            else:
                size //= 2


def build_imagenet_classifier(arch: str, input_shape: tuple, classes: int, *, weights: str | None = "IMAGENET1K_V1",
                              head=(512, 256), dropout: float = 0.5, download: bool = False) -> nn.Sequential:
    """``nn.Sequential(normalization, torchvision network with the paper's head)``; its ``weights_source``
    attribute tells which weights it holds."""
    import torchvision

    if arch not in ARCHS:
        raise ValueError(f"unknown ImageNet architecture {arch!r}; one of {sorted(ARCHS)}")
    ctor_name, enum_name, frozen_below, head_in = ARCHS[arch]
    ctor = getattr(torchvision.models, ctor_name)
    source = "random init (no pretrained weights asked for)"
    net = None
    if weights:
        w = getattr(torchvision.models, enum_name)[weights]
        if download or _cached(w):
            try:
                net = ctor(weights=w)
                source = f"torchvision {enum_name}.{weights} (ImageNet)"
            except Exception as exc:  # network or file errors: say why, train from scratch
                source = f"random init ({enum_name}.{weights} could not be loaded: {type(exc).__name__}: {exc})"
        else:
            source = (f"random init ({enum_name}.{weights} not cached in {torch.hub.get_dir()}/checkpoints; fetch it "
                      f"with python -c \"import torchvision; torchvision.models.{ctor_name}(weights='{weights}')\")")
    if net is None:
        if weights:
            warnings.warn(f"{arch}: {source}", stacklevel=2)
        net = ctor()
    if arch.startswith("vgg"):
        _shrink_pools(net.features, input_shape[-1])
    net.classifier = classifier_head(head_in, classes, head, dropout)
    pretrained = source.startswith("torchvision")
    if pretrained:  # freeze the backbone below its last section; the last section and the head train
        for layer in list(net.features)[:frozen_below]:
            layer.requires_grad_(False)
    model = nn.Sequential(imagenet_normalization(input_shape[0]), net)
    model.weights_source = source + ("; backbone frozen below features[%d]" % frozen_below if pretrained else
                                     "; every layer trains")
    return model
