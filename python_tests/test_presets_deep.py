"""The Cassetta 2023 Flowers102 presets (torchvision VGG19 / MobileNetV2 with the paper's head) and the
Daniels & Becher ViT / ViT-SNN presets: the models they build, and the paper figures they carry."""
import copy

import pytest
import torch
from torch import nn

from snnkern.experiments import PRESETS
from snnkern.experiments.models_torchvision import imagenet_normalization
from snnkern.experiments.paper import compare_with_paper
from snnkern.experiments.presets import build_model
from snnkern.nn import LIF, event_driven, reset_states

pytest.importorskip("torchvision")


@pytest.mark.filterwarnings("ignore:.*not cached")
@pytest.mark.parametrize("name, backbone", [("cassetta2023-vgg19-flowers", "VGG"),
                                            ("cassetta2023-mobilenetv2-flowers", "MobileNetV2")])
def test_flowers_presets_build_the_torchvision_network_with_the_papers_head(name, backbone):
    p = PRESETS[name]
    model = build_model(p, (3, 32, 32), 102, spiking=False)
    net = model[1]
    assert type(net).__name__ == backbone
    linears = [m for m in net.classifier if isinstance(m, nn.Linear)]
    assert [m.out_features for m in linears] == [512, 256, 102]
    assert sum(isinstance(m, nn.Dropout) and m.p == 0.5 for m in net.classifier) == 2
    # offline: random init, every layer trains; with cached ImageNet weights the backbone's early part is frozen
    frozen = [q for q in net.features.parameters() if not q.requires_grad]
    assert ("random init" in model.weights_source) == (not frozen)
    assert model(torch.rand(2, 3, 32, 32)).shape == (2, 102)
    with pytest.raises(ValueError, match="converted, not trained"):
        build_model(p, (3, 32, 32), 102, spiking=True)


@pytest.mark.filterwarnings("ignore:.*not cached")
def test_gray_images_feed_all_three_imagenet_channels_and_small_maps_keep_a_pixel():
    """A 1-channel image is normalised as if repeated into RGB; on 8x8 images VGG19's later pools go."""
    p = PRESETS["cassetta2023-vgg19-flowers"]
    torch.manual_seed(0)
    gray = build_model(p, (1, 8, 8), 10, spiking=False).eval()
    rgb = copy.deepcopy(gray)
    rgb[0] = imagenet_normalization(3)
    x = torch.rand(2, 1, 8, 8)
    torch.testing.assert_close(gray(x), rgb(x.expand(-1, 3, -1, -1)))
    assert sum(isinstance(m, nn.MaxPool2d) for m in gray[1].features) == 3  # 8 -> 4 -> 2 -> 1


def test_vit_snn_replaces_every_mlp_gelu_by_lif_and_goes_event_driven():
    p = PRESETS["daniels-vit-snn"]
    ann = build_model(p, (1, 28, 28), 10, spiking=False)
    snn = build_model(p, (1, 28, 28), 10, spiking=True)
    assert sum(isinstance(m, nn.GELU) for m in ann.modules()) == 4
    assert sum(isinstance(m, nn.GELU) for m in snn.modules()) == 0
    assert sum(isinstance(m, LIF) for m in snn.modules()) == 4
    assert sum(q.numel() for q in ann.parameters()) == sum(q.numel() for q in snn.parameters())
    assert ann(torch.rand(3, 1, 28, 28)).shape == (3, 10)
    x = torch.rand(4, 3, 1, 28, 28)  # [T, B, C, H, W]
    snn.eval()
    with torch.no_grad():
        reset_states(snn)
        out = snn(x)
        assert out.shape == (4, 3, 10)
        event = copy.deepcopy(snn)
        assert event_driven(event) == [f"blocks.{i}.mlp.2" for i in range(4)]  # the Linear after each LIF
        reset_states(event)
        torch.testing.assert_close(event(x), out, rtol=1e-4, atol=1e-4)
    with pytest.raises(ValueError, match=r"\[T, B, C, H, W\]"):
        snn(torch.rand(3, 1, 28, 28))


def test_vit_runs_on_the_offline_digits():
    p = PRESETS["daniels-vit"]
    assert build_model(p, (1, 8, 8), 10, spiking=False)(torch.rand(2, 1, 8, 8)).shape == (2, 10)


def _result(dataset, preset_dataset, **models):
    return {"dataset": dataset, "settings": {"dataset": preset_dataset}, **models}


def test_paper_figures_follow_the_dataset_of_the_run():
    figures = PRESETS["daniels-vit"].paper
    ann = {"name": "ANN", "accuracy": 0.98, "model_size_mb": 0.5, "training": {"epoch_seconds": [1.0, 2.0]}}
    rows = compare_with_paper(_result("fashion-mnist", "mnist", ann=ann), figures, "")["rows"]
    assert {r["dataset"] for r in rows} == {"fashion-mnist"} and len(rows) == 3
    by_metric = {r["metric"]: r for r in rows}
    assert by_metric["accuracy"]["value"] == 0.9001 and by_metric["train_seconds"]["run"] == 3.0
    # on an offline stand-in: the figures of the dataset the preset names
    rows = compare_with_paper(_result("mnist-5k", "mnist", ann=ann), figures, "")["rows"]
    assert {r["dataset"] for r in rows} == {"mnist"}


def test_converted_accuracy_at_T_is_compared():
    figures = PRESETS["cassetta2023-mobilenetv2-flowers"].paper
    converted = {"name": "converted", "accuracy_vs_T": {20: 0.5, "40": 0.6, 100: 0.7}, "macs_per_sample": 1e6}
    rows = compare_with_paper(_result("digits", "flowers102", converted=converted), figures, "")["rows"]
    runs = {r["metric"]: r["run"] for r in rows if r["model"] == "converted"}
    assert runs["accuracy_T20"] == 0.5 and runs["accuracy_T40"] == 0.6 and runs["accuracy_T100"] == 0.7
    assert runs["macs_per_sample"] == 1e6


def test_imagenet_weights_freeze_the_backbone_below_its_last_section(monkeypatch):
    """With ImageNet weights (here: a stand-in state dict, offline) only the last section and the head train."""
    import torchvision
    from snnkern.experiments import models_torchvision as mt

    monkeypatch.setattr(mt, "_cached", lambda weights: True)
    monkeypatch.setattr(torchvision.models._api.WeightsEnum, "get_state_dict",
                        lambda self, *args, **kwargs: torchvision.models.mobilenet_v2().state_dict())
    model = mt.build_imagenet_classifier("mobilenetv2", (3, 32, 32), 5)
    assert model.weights_source.startswith("torchvision MobileNet_V2_Weights.IMAGENET1K_V1")
    features = model[1].features
    assert not any(q.requires_grad for q in features[:14].parameters())
    assert all(q.requires_grad for q in features[14:].parameters())
    assert all(q.requires_grad for q in model[1].classifier.parameters())
    assert not any(q.requires_grad for q in model[0].parameters())  # the fixed normalisation
