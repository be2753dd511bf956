"""Conversion of what deep nets contain: torchvision's VGG19 / VGG19-BN / MobileNetV2 as they come
(random init, small inputs), depthwise and grouped convolutions, ReLU6, residual adds, adaptive
average pooling, classifier dropout; checked against the ANN layer by layer."""
import pytest
import torch
from torch import nn

from snnkern.convert import IFNeuron, convert, fold_batchnorm
from snnkern.convert.ann2snn import layer_agreement
from snnkern.nn import event_driven

torchvision = pytest.importorskip("torchvision")


def _random_bn(model: nn.Module) -> nn.Module:
    """Every BatchNorm a random affine map near the identity (scale 0.7-1.4, shifts +-0.1), so folding
    it is not the identity it is at init while the network keeps its init regime."""
    gen = torch.Generator().manual_seed(1)
    for m in model.modules():
        if isinstance(m, nn.BatchNorm2d):
            c = m.num_features
            m.weight.data = torch.empty(c).uniform_(0.8, 1.2, generator=gen)
            m.bias.data = 0.1 * torch.randn(c, generator=gen)
            m.running_mean = 0.1 * torch.randn(c, generator=gen)
            m.running_var = torch.empty(c).uniform_(0.5, 2.0, generator=gen)
    return model.eval()


def _check_tracks(rows, floor_layers: float, floor_output: float):
    for r in rows:
        floor = floor_output if r["layer"] == "output" else floor_layers
        assert r["corr"] >= floor, f"{r['layer']}: correlation {r['corr']:.4f} < {floor}"
        if r["layer"] != "output":
            assert r["rate"] is not None and 0 < r["rate"] <= 1, r


@pytest.mark.parametrize("name", ["vgg19", "mobilenet_v2"])
def test_torchvision_model_at_T256_tracks_the_ann(name):
    """The full torchvision network (random init, 10 classes, 32x32 inputs): the converted SNN's logits
    at T=256 correlate >= 0.95 with the ANN's, and every IF layer's decoded rate tracks its ANN
    activation (measured: VGG19 0.997 logits, every layer >= 0.993; MobileNetV2 0.996, >= 0.997)."""
    torch.manual_seed(0)
    ann = getattr(torchvision.models, name)(num_classes=10).eval()
    snn = convert(ann, torch.rand(8, 3, 32, 32), mode="max")
    assert len(snn.neurons) == (18 if name == "vgg19" else 35)
    rows = layer_agreement(ann, snn, torch.rand(1, 3, 32, 32), T=256)  # one image: ~30 s for VGG19 on 2 cores
    _check_tracks(rows, 0.95, 0.95)


def test_vgg19_bn_folds_and_converts():
    """VGG19-BN with random BatchNorm parameters: folded exactly, converted, tracking at a short T."""
    torch.manual_seed(0)
    ann = _random_bn(torchvision.models.vgg19_bn(num_classes=10))
    x = torch.rand(2, 3, 32, 32)
    with torch.no_grad():
        torch.testing.assert_close(fold_batchnorm(ann)(x), ann(x), rtol=1e-4, atol=1e-4 * float(ann(x).abs().max()))
    snn = convert(ann, torch.rand(16, 3, 32, 32), mode="max")
    assert not any(isinstance(m, nn.BatchNorm2d) for m in snn.modules())
    rows = layer_agreement(ann, snn, x, T=64)
    _check_tracks(rows, 0.9, 0.9)


def test_mobilenet_v2_random_bn_per_channel_and_event_driven():
    """MobileNetV2 with random BatchNorm parameters, per-channel thresholds;
    event-driven: the thresholds fold into the depthwise/1x1 convolutions reading the spikes, and the
    logits stay those of the converted SNN."""
    torch.manual_seed(0)
    ann = _random_bn(torchvision.models.mobilenet_v2(num_classes=10))
    snn = convert(ann, torch.rand(16, 3, 32, 32), mode="99.9%", per_channel=True)
    for n in snn.neurons:
        assert float(n.threshold.max()) <= 6.0
    x = torch.rand(2, 3, 32, 32)
    rows = layer_agreement(ann, snn, x, T=64)
    _check_tracks(rows, 0.9, 0.9)
    with torch.no_grad():
        before = snn(x, 16)
        swapped = event_driven(snn)
        after = snn(x, 16)
    depthwise = [t for t in swapped if snn.graph_module.get_submodule(t).groups > 1]
    assert len(depthwise) == 17 and len(swapped) >= 34  # every depthwise conv and every 1x1 projection
    torch.testing.assert_close(after, before, rtol=1e-4, atol=1e-4 * float(before.abs().max()))


class _Block(nn.Module):
    """Grouped 1x1 expand, ReLU6, depthwise 3x3, ReLU6, projection, residual add (MobileNetV2-style)."""

    def __init__(self, c):
        super().__init__()
        self.expand = nn.Sequential(nn.Conv2d(c, 4 * c, 1, groups=2, bias=False), nn.BatchNorm2d(4 * c), nn.ReLU6())
        self.dw = nn.Sequential(nn.Conv2d(4 * c, 4 * c, 3, padding=1, groups=4 * c, bias=False),
                                nn.BatchNorm2d(4 * c), nn.ReLU6(inplace=True))
        self.project = nn.Sequential(nn.Conv2d(4 * c, c, 1, bias=False), nn.BatchNorm2d(c))

    def forward(self, x):
        return x + self.project(self.dw(self.expand(x)))


def _small_net(relu_after_add=False):
    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.stem = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.BatchNorm2d(8), nn.ReLU6())
            self.b1, self.b2 = _Block(8), _Block(8)
            self.pool = nn.MaxPool2d(2)
            self.head = nn.Sequential(nn.Dropout(0.2), nn.Linear(8, 5))

        def forward(self, x):
            x = self.b1(self.stem(x))
            if relu_after_add:
                x = torch.relu(x)
            x = self.b2(self.pool(x) if relu_after_add else x)
            x = nn.functional.adaptive_avg_pool2d(x, 1)
            return self.head(torch.flatten(x, 1))
    return Net()


@pytest.mark.parametrize("relu_after_add", [False, True])
def test_residual_grouped_depthwise_relu6(relu_after_add):
    torch.manual_seed(0)
    ann = _small_net(relu_after_add)
    for m in ann.modules():  # BN scales and shifts large enough that many ReLU6 units reach their cap
        if isinstance(m, nn.BatchNorm2d):
            m.weight.data.uniform_(1, 4)
            m.bias.data.uniform_(0, 4)
            m.running_var.uniform_(0.5, 1.5)
    ann.eval()
    calib = torch.rand(64, 3, 8, 8)
    snn = convert(ann, calib, mode="max")
    relu6 = [m.threshold.item() for name, m in snn.graph_module.named_modules()
             if isinstance(m, IFNeuron) and not name.startswith("snnkern_relu")]
    assert len(relu6) == 5 and max(relu6) == pytest.approx(6.0)  # saturated ReLU6 layers: exactly their cap
    rows = layer_agreement(ann, snn, calib[:8], T=256)
    _check_tracks(rows, 0.97, 0.97)


def test_relu6_never_exceeds_its_cap_and_hardtanh():
    ann = nn.Sequential(nn.Linear(4, 16), nn.Hardtanh(0.0, 2.0), nn.Linear(16, 3)).eval()
    with torch.no_grad():
        ann[0].bias.fill_(3.0)  # every unit above the cap
    snn = convert(ann, torch.rand(32, 4), mode="99.9%")
    assert snn.neurons[0].threshold.item() == pytest.approx(2.0)
    x = torch.rand(4, 4)
    torch.testing.assert_close(snn(x, 32), ann(x), rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("layer, message", [
    (nn.GELU(), "GELU"), (nn.Hardtanh(-1.0, 1.0), "Hardtanh(0, cap)"), (nn.LayerNorm(8), "LayerNorm")])
def test_unsupported_layers_are_named(layer, message):
    ann = nn.Sequential(nn.Linear(4, 8), layer, nn.Linear(8, 2))
    with pytest.raises(ValueError, match=r"'1'.*" if not isinstance(layer, nn.Hardtanh) else "layer '1'") as info:
        convert(ann, torch.rand(4, 4))
    assert message in str(info.value)


def test_torchvision_classifier_dropout_and_pools_are_handled():
    """What the torchvision constructors put in: AdaptiveAvgPool, flatten, classifier Dropout, inplace ReLU."""
    ann = torchvision.models.mobilenet_v2(num_classes=4).eval()
    snn = convert(ann, torch.rand(4, 3, 16, 16))
    kinds = {type(m) for m in snn.graph_module.modules()}
    assert nn.Dropout not in kinds and nn.ReLU6 not in kinds and IFNeuron in kinds
    assert snn(torch.rand(2, 3, 16, 16), 4).shape == (2, 4)
