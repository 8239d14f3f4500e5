"""Selene's default networks written in PyTorch Python, layer for layer.

The baseline a user would write instead of Selene: the same U-Net (models/unet.cc) and the same
ResNet-style classifier (models/classifier.cc), with the same module names, so a Selene
checkpoint's tensors load into them by name and the parameter counts can be compared exactly.
Also a forward-FLOP counter (hooks on every Conv2d, ConvTranspose2d and Linear) and a cross-check
of it through the autograd profiler's own FLOP estimates.
"""

import torch
import torch.nn as nn
import torch.nn.functional as F


def _kaiming(conv):
    # models/unet.cc and classifier.cc: Kaiming normal, fan_out, ReLU, as torchvision's ResNet.
    nn.init.kaiming_normal_(conv.weight, mode="fan_out", nonlinearity="relu")


class DoubleConv(nn.Module):
    """Two (3x3 conv + BN + ReLU); the first conv carries the stride."""

    def __init__(self, in_channels, out_channels, stride=1):
        super().__init__()
        self.conv1 = nn.Conv2d(in_channels, out_channels, 3, stride=stride, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(out_channels)
        self.conv2 = nn.Conv2d(out_channels, out_channels, 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(out_channels)
        _kaiming(self.conv1)
        _kaiming(self.conv2)

    def forward(self, x):
        x = F.relu(self.bn1(self.conv1(x)))
        return F.relu(self.bn2(self.conv2(x)))


class UpBlock(nn.Module):
    """Transposed conv (kernel 2, stride 2) up to the skip's size, concat [x, skip], DoubleConv."""

    def __init__(self, in_channels, skip_channels, out_channels):
        super().__init__()
        self.up = nn.ConvTranspose2d(in_channels, out_channels, 2, stride=2)
        self.conv = DoubleConv(out_channels + skip_channels, out_channels)

    def forward(self, x, skip):
        x = self.up(x)
        if x.shape[2:] != skip.shape[2:]:
            x = F.interpolate(x, size=skip.shape[2:], mode="bilinear", align_corners=False)
        return self.conv(torch.cat([x, skip], dim=1))


class UNet(nn.Module):
    """Selene's default UNetOptions: 3 -> 1 channels, base width 16 (16, 32, 64, 128, 256),
    max-pool downsampling, transposed-conv upsampling, no dropout."""

    def __init__(self, in_channels=3, out_channels=1, base_width=16):
        super().__init__()
        widths = [base_width << level for level in range(5)]
        self.widths = widths
        for level in range(5):
            name = "bottleneck" if level == 4 else f"down{level}"
            cin = in_channels if level == 0 else widths[level - 1]
            self.add_module(name, DoubleConv(cin, widths[level]))
        for level in range(3, -1, -1):
            self.add_module(f"up{level}", UpBlock(widths[level + 1], widths[level], widths[level]))
        self.head = nn.Conv2d(widths[0], out_channels, 1)

    def forward(self, images):
        skips = []
        x = images
        for level in range(5):
            if level > 0:
                x = F.max_pool2d(x, 2)
            x = getattr(self, "bottleneck" if level == 4 else f"down{level}")(x)
            if level < 4:
                skips.append(x)
        for level in range(3, -1, -1):
            x = getattr(self, f"up{level}")(x, skips[level])
        return self.head(x)


def _conv_bn(cin, cout, kernel, stride):
    # The projection shortcut: conv (no bias: BN cancels it) + BN, named as in Selene.
    return _named_sequential(
        ("conv", nn.Conv2d(cin, cout, kernel, stride=stride, padding=kernel // 2, bias=False)),
        ("bn", nn.BatchNorm2d(cout)),
    )


def _named_sequential(*named):
    from collections import OrderedDict

    return nn.Sequential(OrderedDict(named))


class BasicBlock(nn.Module):
    def __init__(self, cin, cout, stride):
        super().__init__()
        self.conv1 = nn.Conv2d(cin, cout, 3, stride=stride, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(cout)
        self.conv2 = nn.Conv2d(cout, cout, 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(cout)
        self.shortcut = _conv_bn(cin, cout, 1, stride) if (cin != cout or stride != 1) else None
        nn.init.zeros_(self.bn2.weight)  # each block starts as the identity (Goyal et al.)

    def forward(self, x):
        identity = x if self.shortcut is None else self.shortcut(x)
        x = F.relu(self.bn1(self.conv1(x)))
        x = self.bn2(self.conv2(x))
        return F.relu(x + identity)


class Classifier(nn.Module):
    """Selene's default ClassifierOptions: stem 3x3/2 to 32, BasicBlock stages of widths
    32, 64, 128, 256 (2 blocks each, strides 1, 2, 2, 2), global average pool, linear head."""

    def __init__(self, num_classes=200, in_channels=3, stem_width=32,
                 stage_widths=(32, 64, 128, 256), stage_blocks=(2, 2, 2, 2),
                 stage_strides=(1, 2, 2, 2)):
        super().__init__()
        self.stem = _named_sequential(
            ("conv", nn.Conv2d(in_channels, stem_width, 3, stride=2, padding=1, bias=False)),
            ("bn", nn.BatchNorm2d(stem_width)),
            ("relu", nn.ReLU()),
        )
        cin = stem_width
        for s, (width, blocks, stride) in enumerate(zip(stage_widths, stage_blocks, stage_strides)):
            layers = []
            for b in range(blocks):
                layers.append(BasicBlock(cin, width, stride if b == 0 else 1))
                cin = width
            self.add_module(f"stage{s + 1}", nn.Sequential(*layers))
        self.num_stages = len(stage_widths)
        self.head = nn.Linear(cin, num_classes)
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                _kaiming(m)

    def forward(self, images):
        x = self.stem(images)
        for s in range(self.num_stages):
            x = getattr(self, f"stage{s + 1}")(x)
        x = F.adaptive_avg_pool2d(x, 1).flatten(1)
        return self.head(x)


def build(name, num_classes=200):
    if name == "unet":
        return UNet()
    if name == "classifier":
        return Classifier(num_classes=num_classes)
    raise ValueError(f"unknown model {name}")


def count_parameters(model):
    return sum(p.numel() for p in model.parameters())


def forward_flops(model, size, batch=1):
    """Forward FLOPs per image: 2 x the multiply-accumulates of every Conv2d, ConvTranspose2d and
    Linear, counted from the real shapes seen by forward hooks. BatchNorm, ReLU, pooling and the
    additions are left out (under 1% here). Returns (total, {layer kind: flops})."""
    per_kind = {"conv2d": 0, "conv_transpose2d": 0, "linear": 0}
    hooks = []

    def conv_hook(module, inputs, output):
        kh, kw = module.kernel_size
        macs = output.numel() * (module.in_channels // module.groups) * kh * kw
        per_kind["conv2d"] += 2 * macs

    def transposed_hook(module, inputs, output):
        # Each input pixel scatters in_channels x (out_channels x kh x kw) products.
        kh, kw = module.kernel_size
        x = inputs[0]
        macs = x.numel() * (module.out_channels // module.groups) * kh * kw
        per_kind["conv_transpose2d"] += 2 * macs

    def linear_hook(module, inputs, output):
        per_kind["linear"] += 2 * output.numel() * module.in_features

    for m in model.modules():
        if isinstance(m, nn.Conv2d):
            hooks.append(m.register_forward_hook(conv_hook))
        elif isinstance(m, nn.ConvTranspose2d):
            hooks.append(m.register_forward_hook(transposed_hook))
        elif isinstance(m, nn.Linear):
            hooks.append(m.register_forward_hook(linear_hook))
    was_training = model.training
    model.eval()
    with torch.no_grad():
        model(torch.zeros(batch, 3, size, size))
    model.train(was_training)
    for h in hooks:
        h.remove()
    per_image = {k: v // batch for k, v in per_kind.items()}
    return sum(per_image.values()), per_image


def profiler_flops(model, size):
    """The autograd profiler's own FLOP estimate (aten::conv2d and aten::addmm/mm only: it has no
    formula for conv_transpose2d), as an independent check of forward_flops."""
    from torch.autograd import profiler

    model.eval()
    with torch.no_grad(), profiler.profile(with_flops=True) as prof:
        model(torch.zeros(1, 3, size, size))
    total = 0
    for event in prof.function_events:
        if event.name in ("aten::conv2d", "aten::addmm", "aten::mm") and event.flops:
            # Nested events (conv2d -> convolution -> ...) carry no flops of their own.
            total += event.flops
    return total


def load_selene_checkpoint(model, path):
    """Copies the tensors of a Selene checkpoint (best.pt, a torch::serialize archive whose
    "model" holds the network's parameters and buffers by name) into `model`. Returns the
    number of tensors copied; raises when a name or shape differs."""
    archive = torch.jit.load(path, map_location="cpu")
    source = archive.model
    tensors = {}
    for name, value in source.state_dict().items():
        tensors[name] = value
    own = model.state_dict()
    missing = sorted(set(own) - set(tensors))
    extra = sorted(set(tensors) - set(own))
    if missing or extra:
        raise ValueError(f"checkpoint names differ: missing {missing[:5]}, extra {extra[:5]}")
    for name, value in tensors.items():
        if own[name].shape != value.shape:
            raise ValueError(f"{name}: checkpoint {tuple(value.shape)} vs {tuple(own[name].shape)}")
    model.load_state_dict(tensors)
    return len(tensors)
