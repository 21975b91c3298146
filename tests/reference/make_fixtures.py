#!/usr/bin/python3
"""Generates the PyTorch reference fixtures under tests/reference/fixtures/.

Run with Debian's PyTorch:  /usr/bin/python3 tests/reference/make_fixtures.py
(the test suite never runs this; the output is committed).

For each fixture below it writes model.nn (descent language), init.safetensors
(nn.Sequential state_dict, F32), data.csv (exactly one batch) and
expected.json (loss, grads, weights after one step, a 20-step loss trajectory,
the model's output). The model is built by parsing the written model.nn text
(nnspec.py), so the file and the reference cannot disagree.
"""
import json
import os
import shutil
import sys

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import nnspec  # noqa: E402

SEED = 20240607
STEPS = 20
OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "fixtures")

# name, features (an int, or a tuple for an N-D input: the shape per sample),
# target ("class", C) or ("f32", N), batch, layers, loss, optimizer,
# mode: "train" (full fixture), "eval" (Dropout active in training: output/loss only)
FIXTURES = [
    ("nll_mean_sgd", 13, ("class", 5), 5,
     "Linear(13, 7), ReLU(),\n    Linear(7, 5), LogSoftmax(dim=1),",
     'NLLLoss(reduction="mean")', "SGD(lr=0.1)", "train"),
    ("nll_sum_sgd_momentum", 9, ("class", 3), 8,
     "Linear(9, 6, bias=False), Tanh(),\n    Linear(6, 3), LogSoftmax(dim=1),",
     'NLLLoss(reduction="sum")', "SGD(lr=0.05, momentum=0.9)", "train"),
    ("ce_mean_adam", 11, ("class", 4), 8,
     "Linear(11, 7), LeakyReLU(negative_slope=0.2),\n    Linear(7, 4),",
     'CrossEntropyLoss(reduction="mean")', "Adam(lr=0.01)", "train"),
    ("ce_sum_sgd_nesterov", 6, ("class", 3), 5,
     "Linear(6, 5), Sigmoid(),\n    Linear(5, 3, bias=False),",
     'CrossEntropyLoss(reduction="sum")', "SGD(lr=0.02, momentum=0.8, nesterov=True)", "train"),
    ("mse_mean_sgd_dampening", 7, ("f32", 1), 5,
     "Linear(7, 5), Tanh(),\n    Linear(5, 1),\n    Linear(1, 1),",
     'MSELoss(reduction="mean")', "SGD(lr=0.05, momentum=0.9, dampening=0.3)", "train"),
    ("mse_sum_softmax_sgd_wd", 10, ("f32", 4), 8,
     "Linear(10, 6), ReLU(),\n    Linear(6, 4), Softmax(dim=1),",
     'MSELoss(reduction="sum")', "SGD(lr=0.1, weight_decay=0.01)", "train"),
    ("bce_mean_adam_wd_betas", 5, ("f32", 3), 8,
     "Linear(5, 7), LeakyReLU(negative_slope=0.2),\n    Linear(7, 3), Sigmoid(),",
     'BCELoss(reduction="mean")',
     "Adam(lr=0.005, betas=(0.8, 0.99), eps=1e-6, weight_decay=0.01)", "train"),
    ("bce_sum_sgd", 4, ("f32", 1), 5,
     "Linear(4, 3, bias=False), Sigmoid(),\n    Linear(3, 1), Sigmoid(),",
     'BCELoss(reduction="sum")', "SGD(lr=0.1)", "train"),
    ("bcelogits_mean_sgd_momentum", 8, ("f32", 2), 5,
     "Linear(8, 5), Tanh(),\n    Linear(5, 2),",
     'BCEWithLogitsLoss(reduction="mean")', "SGD(lr=0.1, momentum=0.5)", "train"),
    ("bcelogits_sum_adam_default", 3, ("f32", 1), 8,
     "Linear(3, 9), ReLU(),\n    Linear(9, 9), Sigmoid(),\n    Linear(9, 1),",
     'BCEWithLogitsLoss(reduction="sum")', "Adam()", "train"),
    ("linear_mse_sgd_nesterov_wd", 3, ("f32", 2), 5,
     "Linear(3, 2),",
     'MSELoss(reduction="mean")',
     "SGD(lr=0.03, momentum=0.9, weight_decay=0.001, nesterov=True)", "train"),
    ("mnist_like_nll_sgd", 28, ("class", 10), 8,
     "Linear(28, 16), ReLU(),\n    Linear(16, 12), ReLU(),\n    Linear(12, 10), LogSoftmax(dim=1),",
     'NLLLoss(reduction="mean")', "SGD(lr=0.05)", "train"),
    ("dropout_p0_nll_adam", 6, ("class", 4), 5,
     "Linear(6, 8), ReLU(),\n    Dropout(p=0.0),\n    Linear(8, 4), LogSoftmax(dim=1),",
     'NLLLoss(reduction="sum")', "Adam(lr=0.01)", "train"),
    ("dropout_eval_ce", 13, ("class", 3), 5,
     "Linear(13, 7), ReLU(),\n    Dropout(p=0.5),\n    Linear(7, 3),",
     'CrossEntropyLoss(reduction="mean")', "SGD(lr=0.1)", "eval"),
    # The activations defined in op_math.h. Inputs scaled by `x_scale` drive the
    # pre-activations into the tails where the formulas switch: GELU's tanh
    # form for large |x|, Softplus above its threshold, ELU's negative side.
    ("gelu_none_nll_sgd", 9, ("class", 4), 8,
     "Linear(9, 12), GELU(),\n    Linear(12, 4), LogSoftmax(dim=1),",
     'NLLLoss(reduction="mean")', "SGD(lr=0.05, momentum=0.5)", "train", 4.0),
    ("gelu_tanh_ce_adam", 7, ("class", 3), 8,
     "Linear(7, 10), GELU(approximate=\"tanh\"),\n    Linear(10, 3),",
     'CrossEntropyLoss(reduction="mean")', "Adam(lr=0.01)", "train", 6.0),
    ("silu_mse_sgd", 6, ("f32", 2), 8,
     "Linear(6, 10), SiLU(),\n    Linear(10, 2),",
     'MSELoss(reduction="mean")', "SGD(lr=0.02)", "train", 5.0),
    ("elu_bcelogits_sgd", 5, ("f32", 2), 8,
     "Linear(5, 9), ELU(alpha=0.7),\n    Linear(9, 2),",
     'BCEWithLogitsLoss(reduction="mean")', "SGD(lr=0.1, momentum=0.5)", "train", 3.0),
    ("softplus_nll_adam", 8, ("class", 5), 8,
     "Linear(8, 11), Softplus(beta=2.0, threshold=3.0),\n    Linear(11, 5), LogSoftmax(dim=1),",
     'NLLLoss(reduction="sum")', "Adam(lr=0.005)", "train", 3.0),
    ("softplus_default_mse_sgd", 4, ("f32", 1), 8,
     "Linear(4, 6), Softplus(),\n    Linear(6, 1),",
     'MSELoss(reduction="mean")', "SGD(lr=0.002)", "train", 16.0),
    # The regression losses defined in op_math.h, with inputs scaled so the
    # residuals fall on both sides of beta/delta.
    ("l1_mean_sgd", 6, ("f32", 2), 8,
     "Linear(6, 8), Tanh(),\n    Linear(8, 2),",
     'L1Loss(reduction="mean")', "SGD(lr=0.05, momentum=0.5)", "train", 2.0),
    ("smoothl1_sum_adam", 5, ("f32", 3), 8,
     "Linear(5, 7), ReLU(),\n    Linear(7, 3),",
     'SmoothL1Loss(reduction="sum", beta=0.5)', "Adam(lr=0.01)", "train", 2.0),
    ("ce_smoothing_mean_sgd", 8, ("class", 5), 8,
     "Linear(8, 9), ReLU(),\n    Linear(9, 5),",
     'CrossEntropyLoss(reduction="mean", label_smoothing=0.1)', "SGD(lr=0.1, momentum=0.5)", "train"),
    ("ce_smoothing_sum_adam", 6, ("class", 3), 5,
     "Linear(6, 4), Tanh(),\n    Linear(4, 3), LogSoftmax(dim=1),",
     'CrossEntropyLoss(reduction="sum", label_smoothing=0.3)', "Adam(lr=0.01)", "train"),
    ("huber_mean_sgd", 7, ("f32", 1), 8,
     "Linear(7, 6), ReLU(),\n    Linear(6, 1),",
     'HuberLoss(reduction="mean", delta=0.4)', "SGD(lr=0.05)", "train", 3.0),
    # The optimizers of issue #14: AdamW's decoupled weight decay (its default
    # 0.01, and a large one that dominates the update).
    ("ce_mean_adamw_default", 9, ("class", 4), 8,
     "Linear(9, 8), ReLU(),\n    Linear(8, 4),",
     'CrossEntropyLoss(reduction="mean")', "AdamW()", "train"),
    ("mse_sum_adamw_wd_betas", 6, ("f32", 2), 8,
     "Linear(6, 7), Tanh(),\n    Linear(7, 2),",
     'MSELoss(reduction="sum")',
     "AdamW(lr=0.01, betas=(0.8, 0.95), eps=1e-6, weight_decay=0.5)", "train"),
    # maximize=True negates the gradient before everything else (weight decay,
    # momentum); a negative lr on -loss is not the same arithmetic with decay.
    ("mse_mean_sgd_maximize_momentum_wd", 5, ("f32", 2), 8,
     "Linear(5, 6), Tanh(),\n    Linear(6, 2),",
     'MSELoss(reduction="mean")',
     "SGD(lr=0.01, momentum=0.9, weight_decay=0.01, maximize=True)", "train"),
    ("nll_sum_adam_maximize_wd", 7, ("class", 3), 8,
     "Linear(7, 6), ReLU(),\n    Linear(6, 3), LogSoftmax(dim=1),",
     'NLLLoss(reduction="sum")', "Adam(lr=0.002, weight_decay=0.1, maximize=True)", "train"),
    ("ce_mean_adamw_maximize", 6, ("class", 3), 8,
     "Linear(6, 5), Sigmoid(),\n    Linear(5, 3),",
     'CrossEntropyLoss(reduction="mean")', "AdamW(lr=0.003, maximize=True)", "train"),
    # Gradient clipping (torch.nn.utils, issue #14): the last element holds
    # the extra statements. clip_grad_value with most of the first step's
    # gradient elements past the bound; clip_grad_norm with a max_norm small
    # enough that every step clips (SGD with momentum, Adam), and one so large
    # that no step does (the scale is exactly 1: the unclipped arithmetic).
    ("clip_value_nll_sgd_momentum", 8, ("class", 4), 8,
     "Linear(8, 10), ReLU(),\n    Linear(10, 4), LogSoftmax(dim=1),",
     'NLLLoss(reduction="mean")', "SGD(lr=0.1, momentum=0.9, weight_decay=0.01)", "train", 2.0,
     "clip_grad_value = 0.05"),
    ("clip_value_mse_adam", 6, ("f32", 2), 8,
     "Linear(6, 7), Tanh(),\n    Linear(7, 2),",
     'MSELoss(reduction="sum")', "Adam(lr=0.01)", "train", 1.0,
     "clip_grad_value = 0.3"),
    ("clip_norm_ce_sgd_momentum", 9, ("class", 4), 8,
     "Linear(9, 12), ReLU(),\n    Linear(12, 4),",
     'CrossEntropyLoss(reduction="sum")', "SGD(lr=0.05, momentum=0.9)", "train", 2.0,
     "clip_grad_norm = 0.5"),
    ("clip_norm_mse_adam", 5, ("f32", 3), 8,
     "Linear(5, 8), Tanh(),\n    Linear(8, 3, bias=False),",
     'MSELoss(reduction="mean")', "Adam(lr=0.01, weight_decay=0.01)", "train", 1.0,
     "clip_grad_norm = 0.1"),
    ("clip_norm_never_nll_sgd", 7, ("class", 3), 8,
     "Linear(7, 6), Tanh(),\n    Linear(6, 3), LogSoftmax(dim=1),",
     'NLLLoss(reduction="mean")', "SGD(lr=0.1)", "train", 1.0,
     "clip_grad_norm = 1000.0"),
    # Learning-rate schedules (issue #14): one batch per epoch, so the
    # per-epoch schedules and OneCycleLR's per-batch one step alike; 20 epochs
    # see every phase (StepLR's drops, MultiStepLR's repeated milestone,
    # CosineAnnealingLR past T_max, LinearLR's end, OneCycleLR's momentum cycle
    # on SGD and Adam, ReduceLROnPlateau's patience and cooldown). The last
    # element holds the extra statements, as for clipping below.
    ("sched_steplr_sgd", 6, ("class", 3), 8,
     "Linear(6, 5), ReLU(),\n    Linear(5, 3),",
     'CrossEntropyLoss(reduction="mean")', "SGD(lr=0.1, momentum=0.9)", "train", 1.0,
     "scheduler = StepLR(optimizer, step_size=3, gamma=0.5)"),
    ("sched_multistep_adam", 6, ("f32", 2), 8,
     "Linear(6, 5), Tanh(),\n    Linear(5, 2),",
     'MSELoss(reduction="mean")', "Adam(lr=0.01)", "train", 1.0,
     "scheduler = MultiStepLR(milestones=[2, 5, 5, 11], gamma=0.3)"),
    ("sched_exponential_sgd", 5, ("class", 3), 8,
     "Linear(5, 4), ReLU(),\n    Linear(4, 3), LogSoftmax(dim=1),",
     'NLLLoss(reduction="mean")', "SGD(lr=0.2)", "train", 1.0, "scheduler = ExponentialLR(gamma=0.9)"),
    ("sched_cosine_adamw", 6, ("class", 3), 8,
     "Linear(6, 5), ReLU(),\n    Linear(5, 3),",
     'CrossEntropyLoss(reduction="mean")', "AdamW(lr=0.02)", "train", 1.0,
     "scheduler = CosineAnnealingLR(T_max=7, eta_min=0.001)"),
    ("sched_linear_sgd", 5, ("f32", 1), 8,
     "Linear(5, 4), Tanh(),\n    Linear(4, 1),",
     'MSELoss(reduction="mean")', "SGD(lr=0.05, momentum=0.5, nesterov=True)", "train", 1.0,
     "scheduler = LinearLR(start_factor=0.25, end_factor=0.9, total_iters=6)"),
    ("sched_onecycle_sgd", 6, ("class", 3), 8,
     "Linear(6, 5), ReLU(),\n    Linear(5, 3),",
     'CrossEntropyLoss(reduction="mean")', "SGD(lr=0.1)", "train", 1.0, "scheduler = OneCycleLR(max_lr=0.3, epochs=20)"),
    ("sched_onecycle_adam_linear3", 6, ("class", 3), 8,
     "Linear(6, 5), ReLU(),\n    Linear(5, 3),",
     'CrossEntropyLoss(reduction="mean")', "Adam(lr=0.01)", "train", 1.0,
     'scheduler = OneCycleLR(max_lr=0.05, total_steps=24, pct_start=0.25, anneal_strategy="linear", '
     'three_phase=True)'),
    ("sched_plateau_sgd", 5, ("f32", 1), 8,
     "Linear(5, 4), ReLU(),\n    Linear(4, 1),",
     'MSELoss(reduction="mean")', "SGD(lr=0.3)", "train", 1.0,
     'scheduler = ReduceLROnPlateau(factor=0.5, patience=1, threshold=0.2, cooldown=2)'),
    # Issue 11: an N-D input (f32[2, 3, 4], PyTorch's C, H, W without the
    # batch), an elementwise layer on it, then Flatten() into Linear.
    ("nd_relu_flatten_ce_sgd", (2, 3, 4), ("class", 10), 8,
     "ReLU(), Flatten(),\n    Linear(24, 10),",
     'CrossEntropyLoss(reduction="mean")', "SGD(lr=0.1, momentum=0.5)", "train"),
    # Class weights and ignore_index (torch 1.13's nll_loss: "mean" divides by
    # the weights of the samples kept). A loss text naming ignore_index gets
    # that label in rows 2 and batch-1 (make_batch).
    ("ce_weight_ignore_mean_sgd", 7, ("class", 5), 8,
     "Linear(7, 9), ReLU(),\n    Linear(9, 5),",
     'CrossEntropyLoss(reduction="mean", weight=[0.5, 2.0, 1.0, 3.0, 0.25], ignore_index=-100)',
     "SGD(lr=0.1, momentum=0.5)", "train"),
    ("nll_weight_mean_sgd", 6, ("class", 4), 8,
     "Linear(6, 7), Tanh(),\n    Linear(7, 4), LogSoftmax(dim=1),",
     'NLLLoss(reduction="mean", weight=[1.5, 0.5, 2.0, 1.0])', "SGD(lr=0.1)", "train"),
    ("nll_weight_ignore_class_sum_adam", 5, ("class", 3), 8,
     "Linear(5, 6), ReLU(),\n    Linear(6, 3), LogSoftmax(dim=1),",
     'NLLLoss(reduction="sum", weight=[2.0, 1.0, 0.5], ignore_index=1)', "Adam(lr=0.01)", "train"),
    ("ce_weight_smoothing_ignore_mean_sgd", 8, ("class", 6), 8,
     "Linear(8, 7), ReLU(),\n    Linear(7, 6),",
     'CrossEntropyLoss(reduction="mean", weight=[1.0, 0.3, 2.5, 1.2, 0.7, 1.9], '
     'ignore_index=-1, label_smoothing=0.2)', "SGD(lr=0.1, momentum=0.5)", "train"),
    ("ce_weight_smoothing_sum_adam", 6, ("class", 3), 5,
     "Linear(6, 4), Tanh(),\n    Linear(4, 3), LogSoftmax(dim=1),",
     'CrossEntropyLoss(reduction="sum", weight=[0.2, 1.0, 3.0], label_smoothing=0.3)',
     "Adam(lr=0.01)", "train"),
    ("ce_ignore_smoothing_mean_sgd", 5, ("class", 4), 8,
     "Linear(5, 6), ReLU(),\n    Linear(6, 4),",
     'CrossEntropyLoss(reduction="mean", ignore_index=-100, label_smoothing=0.1)',
     "SGD(lr=0.1)", "train"),
    # pos_weight: one per output, or one for all (broadcast); logits scaled
    # to both signs and large |z|.
    ("bcelogits_posweight_mean_sgd", 6, ("f32", 3), 8,
     "Linear(6, 8), Tanh(),\n    Linear(8, 3),",
     'BCEWithLogitsLoss(reduction="mean", pos_weight=[0.5, 2.0, 4.0])', "SGD(lr=0.1, momentum=0.5)",
     "train", 3.0),
    ("bcelogits_posweight_one_sum_adam", 5, ("f32", 2), 8,
     "Linear(5, 6), ReLU(),\n    Linear(6, 2),",
     'BCEWithLogitsLoss(reduction="sum", pos_weight=[3.0])', "Adam(lr=0.01)", "train", 2.0),
    # KLDivLoss on log-probabilities: probability targets with zeros
    # (xlogy(0, 0) = 0), or log-probability targets (log_target=True).
    ("kldiv_batchmean_sgd", 6, ("f32", 4), 8,
     "Linear(6, 7), ReLU(),\n    Linear(7, 4), LogSoftmax(dim=1),",
     'KLDivLoss(reduction="batchmean")', "SGD(lr=0.1, momentum=0.5)", "train"),
    ("kldiv_mean_log_target_adam", 5, ("f32", 3), 8,
     "Linear(5, 7), Tanh(),\n    Linear(7, 3), LogSoftmax(dim=1),",
     'KLDivLoss(reduction="mean", log_target=True)', "Adam(lr=0.01)", "train"),
    ("kldiv_sum_sgd", 4, ("f32", 5), 6,
     "Linear(4, 5), LogSoftmax(dim=1),",
     'KLDivLoss(reduction="sum")', "SGD(lr=0.05)", "train"),
    # Convolution and pooling (issue #12): each argument that changes the
    # arithmetic, on tiny images (every fixture runs through both engines
    # and under ASan in CI).
    ("conv_stride_pad_ce_sgd", (2, 7, 9), ("class", 4), 4,
     "Conv2d(2, 3, kernel_size=3, stride=2, padding=1), ReLU(), Flatten(),\n    Linear(60, 4),",
     'CrossEntropyLoss(reduction="mean")', "SGD(lr=0.1, momentum=0.5)", "train"),
    ("conv_same_dilation_mse_adam", (1, 8, 8), ("f32", 2), 4,
     "Conv2d(1, 2, kernel_size=(4, 3), padding=\"same\", dilation=(1, 2)), Tanh(),\n"
     "    Conv2d(2, 2, kernel_size=(1, 3), stride=(3, 1), padding=(0, 2), bias=False), Flatten(),\n"
     "    Linear(60, 2),",
     'MSELoss(reduction="mean")', "Adam(lr=0.01)", "train"),
    ("conv_groups_depthwise_nll_sgd", (4, 6, 6), ("class", 5), 4,
     "Conv2d(4, 4, kernel_size=3, groups=4), ReLU(),\n"
     "    Conv2d(4, 6, kernel_size=(1, 2), groups=2, bias=False), Flatten(),\n"
     "    Linear(72, 5), LogSoftmax(dim=1),",
     'NLLLoss(reduction="mean")', "SGD(lr=0.1)", "train"),
    ("maxpool_ceil_pad_ce_sgd", (2, 7, 7), ("class", 3), 4,
     "Conv2d(2, 3, kernel_size=2), ReLU(),\n"
     "    MaxPool2d(kernel_size=3, stride=2, padding=1, ceil_mode=True), Flatten(),\n"
     "    Linear(48, 3),",
     'CrossEntropyLoss(reduction="mean")', "SGD(lr=0.1, momentum=0.5)", "train"),
    ("maxpool_dilation_mse_sgd", (1, 9, 9), ("f32", 2), 4,
     "Conv2d(1, 2, kernel_size=1),\n"
     "    MaxPool2d(kernel_size=(2, 3), stride=(2, 1), dilation=2), Flatten(),\n"
     "    Linear(40, 2),",
     'MSELoss(reduction="mean")', "SGD(lr=0.05)", "train"),
    ("avgpool_ceil_nopad_ce_adam", (2, 7, 9), ("class", 3), 4,
     "Conv2d(2, 3, kernel_size=2), Tanh(),\n"
     "    AvgPool2d(kernel_size=3, stride=2, padding=1, ceil_mode=True, count_include_pad=False),\n"
     "    Flatten(), Linear(60, 3),",
     'CrossEntropyLoss(reduction="mean")', "Adam(lr=0.01)", "train"),
    ("avgpool_pad_adaptive_mse_sgd", (1, 7, 8), ("f32", 2), 4,
     "Conv2d(1, 2, kernel_size=3, padding=1), ReLU(),\n"
     "    AvgPool2d(kernel_size=2, padding=1), AdaptiveAvgPool2d((2, 3)), Flatten(),\n"
     "    Linear(12, 2),",
     'MSELoss(reduction="mean")', "SGD(lr=0.1)", "train"),
    ("lenet_tiny_ce_sgd", (1, 12, 12), ("class", 3), 8,
     "Conv2d(1, 4, kernel_size=5, padding=2), ReLU(), MaxPool2d(2),\n"
     "    Conv2d(4, 6, kernel_size=3), ReLU(), MaxPool2d(2), Flatten(),\n"
     "    Linear(24, 10), ReLU(),\n    Linear(10, 3),",
     'CrossEntropyLoss(reduction="mean")', "SGD(lr=0.05, momentum=0.9)", "train"),
]


def f32(v):
    """A float32 value as the Python float (double) holding it exactly."""
    return float(torch.tensor(v, dtype=torch.float32).item())


def flat(t):
    return [float(v) for v in t.detach().reshape(-1).tolist()]


def shape_of(features):
    """The input's shape per sample: (F,) for an int."""
    return tuple(features) if isinstance(features, tuple) else (features,)


def numel(features):
    n = 1
    for d in shape_of(features):
        n *= d
    return n


def model_text(name, features, target, batch, layers, loss, opt, extra=""):
    kind, size = target
    tdecl = f"class[{size}]" if kind == "class" else f"f32[{size}]"
    return (f"# Reference fixture '{name}' (generated by tests/reference/make_fixtures.py).\n"
            f"input  x: f32[{', '.join(str(d) for d in shape_of(features))}]\n"
            f"target y: {tdecl}\n\n"
            f"model = Sequential(\n    {layers}\n)\n\n"
            f"loss      = {loss}\n"
            f"optimizer = {opt}\n"
            + (f"{extra}\n" if extra else "") +
            f"batch     = {batch}\n"
            f"epochs    = {STEPS}\n")


def make_batch(features, target, batch, loss, x_scale=1.0, loss_text=""):
    x = torch.randn(batch, *shape_of(features), dtype=torch.float32) * x_scale
    kind, size = target
    if kind == "class":
        y = torch.randint(0, size, (batch,), dtype=torch.int64)
        # Make sure more than one class appears so the gradients are not degenerate.
        y[0], y[1] = 0, size - 1
        if getattr(loss, "ignore_index", -100) != -100 or "ignore_index" in loss_text:
            y[2], y[batch - 1] = loss.ignore_index, loss.ignore_index
    elif isinstance(loss, torch.nn.BCELoss):
        y = torch.bernoulli(torch.full((batch, size), 0.5))
    elif isinstance(loss, torch.nn.KLDivLoss):
        y = torch.softmax(torch.randn(batch, size) * 2, dim=1)
        y[0, 0] = y[2, size - 1] = 0.0  # xlogy(0, 0) = 0
        if loss.log_target:
            y = torch.log_softmax(torch.randn(batch, size), dim=1)
    elif isinstance(loss, torch.nn.BCEWithLogitsLoss):
        y = torch.rand(batch, size)  # soft targets are valid too
    else:
        y = torch.randn(batch, size)
    return x, y


def write_csv(path, features, target, x, y):
    kind, size = target
    names = [f"x{i}" for i in range(numel(features))]
    names += ["y"] if kind == "class" else [f"y{i}" for i in range(size)]
    lines = [",".join(names)]
    for r in range(x.shape[0]):
        vals = [format(f32(v), ".9g") for v in x[r].reshape(-1).tolist()]  # row-major
        if kind == "class":
            vals.append(str(int(y[r])))
        else:
            vals += [format(f32(v), ".9g") for v in y[r].tolist()]
        lines.append(",".join(vals))
    with open(path, "w") as f:
        f.write("\n".join(lines) + "\n")


def train(model, criterion, opt_spec, x, y, clip=None, sched_spec=None):
    """STEPS optimizer steps on one batch; the loss is recorded before each step.
    `clip`: the model file's clip_grad_value / clip_grad_norm statements,
    applied between backward() and step() as in the usual loop. `grads` are
    the gradients before clipping (what backward computes). With a scheduler,
    the usual loop with one batch per epoch: scheduler.step() after each
    optimizer step (ReduceLROnPlateau: with the epoch's loss), and the
    learning rate and momentum of each step recorded."""
    model.train()
    opt = nnspec.make_optimizer(opt_spec, model.parameters())
    sched = nnspec.make_scheduler(sched_spec, opt, STEPS) if sched_spec else None
    res, trajectory, lrs, momenta = {}, [], [], []
    clip = clip or {}
    for step in range(STEPS):
        opt.zero_grad()
        out = model(x)
        loss = criterion(out, y)
        loss.backward()
        trajectory.append(float(loss))
        if step == 0:
            res["output"] = flat(out)
            res["loss"] = float(loss)
            res["grads"] = {k: flat(p.grad) for k, p in model.named_parameters()}
        if "clip_grad_value" in clip:
            torch.nn.utils.clip_grad_value_(model.parameters(), clip["clip_grad_value"])
        if "clip_grad_norm" in clip:
            norm = torch.nn.utils.clip_grad_norm_(model.parameters(), clip["clip_grad_norm"])
            res.setdefault("total_norms", []).append(float(norm))
        group = opt.param_groups[0]
        lrs.append(group["lr"])
        momenta.append(group["betas"][0] if "betas" in group else group["momentum"])
        opt.step()
        if sched is not None:
            if isinstance(sched, torch.optim.lr_scheduler.ReduceLROnPlateau):
                sched.step(float(loss))
            else:
                sched.step()
        if step == 0:
            res["after_one_step"] = {k: flat(v) for k, v in model.state_dict().items()}
    res["trajectory"] = trajectory
    if sched is not None:
        res["lrs"], res["momenta"] = lrs, momenta
    res["final"] = {k: flat(v) for k, v in model.state_dict().items()}
    return res


def deviation(a, b):
    """Per quantity, max |a-b| / max(|b|) (relative to the quantity's scale)."""
    def rel(xs, ys):
        scale = max(max(abs(v) for v in ys), 1e-30)
        return max(abs(p - q) for p, q in zip(xs, ys)) / scale

    def cat(d):
        return [v for k in sorted(d) for v in d[k]]

    return {
        "output": rel(a["output"], b["output"]),
        "loss": rel([a["loss"]], [b["loss"]]),
        "grads": max(rel(a["grads"][k], b["grads"][k]) for k in a["grads"]),
        "after_one_step": rel(cat(a["after_one_step"]), cat(b["after_one_step"])),
        "trajectory": max(abs(p - q) / max(abs(q), 1e-30)
                          for p, q in zip(a["trajectory"], b["trajectory"])),
        "final": rel(cat(a["final"]), cat(b["final"])),
    }


def generate(entry):
    name, features, target, batch, layers, loss_text, opt_text, mode = entry[:8]
    x_scale = entry[8] if len(entry) > 8 else 1.0
    extra = entry[9] if len(entry) > 9 else ""
    d = os.path.join(OUT, name)
    os.makedirs(d, exist_ok=True)
    text = model_text(name, features, target, batch, layers, loss_text, opt_text, extra)
    with open(os.path.join(d, "model.nn"), "w") as f:
        f.write(text)

    torch.manual_seed(SEED)
    spec = nnspec.parse_model(text)  # builds (and initializes) the model from the text
    model, criterion = spec["model"], spec["loss"]
    assert spec["input"][3] == shape_of(features) and spec["batch"] == batch and spec["epochs"] == STEPS
    init = {k: v.detach().clone() for k, v in model.state_dict().items()}
    nnspec.write_safetensors(os.path.join(d, "init.safetensors"), init,
                             {"format": "pt", "fixture": name})

    x, y = make_batch(features, target, batch, criterion, x_scale, loss_text)
    write_csv(os.path.join(d, "data.csv"), features, target, x, y)

    kind, size = target
    opt_kind, opt_kw = spec["optimizer"]
    expected = {
        "name": name,
        "torch_version": torch.__version__,
        "seed": SEED,
        "batch": batch,
        "features": numel(features),  # the CSV's x columns (samples flattened row-major)
        **({"input_shape": list(features)} if isinstance(features, tuple) else {}),
        "target_kind": kind,
        "target_size": size,
        "loss_name": type(criterion).__name__,
        "reduction": criterion.reduction,
        # SmoothL1Loss's beta, HuberLoss's delta, CrossEntropyLoss's
        # label_smoothing when not 0 (absent for the others).
        **{k: getattr(criterion, k) for k in ("beta", "delta", "label_smoothing")
           if getattr(criterion, k, 0)},
        # weight / pos_weight when given, ignore_index when written.
        **{k: flat(getattr(criterion, k)) for k in ("weight", "pos_weight")
           if getattr(criterion, k, None) is not None},
        **({"ignore_index": criterion.ignore_index} if "ignore_index" in loss_text else {}),
        **({"log_target": True} if getattr(criterion, "log_target", False) else {}),
        "optimizer": {"kind": opt_kind, **{k: (list(v) if isinstance(v, tuple) else v)
                                           for k, v in opt_kw.items()}},
        "param_shapes": {k: list(v.shape) for k, v in init.items()},
        "train_mode": mode == "train",
        # clip_grad_value / clip_grad_norm, when the model file sets them.
        **{k: spec[k] for k in ("clip_grad_value", "clip_grad_norm") if k in spec},
    }
    clip = {k: spec[k] for k in ("clip_grad_value", "clip_grad_norm") if k in spec}

    if mode == "eval":
        # Dropout with p > 0 draws a mask that descent cannot reproduce: only
        # the deterministic eval-mode forward pass is a reference.
        model.eval()
        with torch.no_grad():
            out = model(x)
            expected["output"] = flat(out)
            expected["loss"] = float(criterion(out, y))
    else:
        expected.update(train(model, criterion, spec["optimizer"], x, y, clip, spec["scheduler"]))
        # The same run in float64 from the same float32 start: how far float32
        # rounding alone moves each quantity. Consumers scale their tolerance
        # by it (see README.md); it is not itself a reference value.
        spec64 = nnspec.parse_model(text)
        model64 = spec64["model"].double()
        model64.load_state_dict({k: v.double() for k, v in init.items()})
        # .double(): a loss's weight buffers too.
        ref64 = train(model64, spec64["loss"].double(), spec["optimizer"], x.double(),
                      y.double() if y.is_floating_point() else y, clip, spec["scheduler"])
        expected["float64_deviation"] = deviation(expected, ref64)

    # One top-level key per line, values compact: small and still diffable.
    with open(os.path.join(d, "expected.json"), "w") as f:
        items = [f" {json.dumps(k)}: {json.dumps(v, separators=(',', ':'))}"
                 for k, v in expected.items()]
        f.write("{\n" + ",\n".join(items) + "\n}\n")


def main():
    """With fixture names as arguments, rewrites only those (float32 results
    can differ in the last bit between machines: leave the others alone)."""
    torch.set_num_threads(1)
    torch.set_default_dtype(torch.float32)
    only = set(sys.argv[1:])
    unknown = only - {e[0] for e in FIXTURES}
    if unknown:
        sys.exit(f"make_fixtures.py: no fixture named {', '.join(sorted(unknown))}")
    if not only and os.path.isdir(OUT):
        shutil.rmtree(OUT)
    for entry in FIXTURES:
        if only and entry[0] not in only:
            continue
        d = os.path.join(OUT, entry[0])
        if os.path.isdir(d):
            shutil.rmtree(d)
        generate(entry)
        print("wrote", entry[0])


if __name__ == "__main__":
    main()
