#!/usr/bin/python3
"""The PyTorch Python baseline of bench/run.sh: what a user would write instead of Selene.

Run with Debian's /usr/bin/python3 and python3-torch (the same LibTorch 1.13.1 Selene links).
Each subcommand prints one JSON object on stdout:

  params      parameter counts of the two default networks
  flops       forward FLOPs per image (hooks), cross-checked by the autograd profiler
  matmul      the machine's matmul rate (torch.mm) at --threads, float32 (sgemm) or bfloat16
              (--dtype): the peak the FLOPs of fp32 and of bf16 runs are held to
  train       training steps on synthetic tensors (the twin of selene-bench --mode train)
  infer       eager forward of one image (model.eval() under torch.inference_mode())
  check       loads a Selene checkpoint by name and compares logits with Selene's on one input
  profile     per-operator self CPU time of training steps (torch.autograd.profiler)
  activations bytes of the tensors one training step saves for backward (saved_tensors_hooks),
              with the parameter, gradient and AdamW state sizes: where training memory goes
  epoch-classify   one epoch on Tiny ImageNet files: Dataset + DataLoader(num_workers) +
                   torchvision transforms (resize, random resized crop, flip, rotation, jitter)
  epoch-segment    one epoch on MOON-layout PNG files: the same recipe for segmentation

train, profile, activations, epoch-classify and epoch-segment take --bf16 and --channels-last,
as Selene's training.precision = "bf16" and training.channels_last = true do it: the model's 4-d
weights and every batch channels-last (NHWC), the forward pass under
torch.autocast("cpu", dtype=torch.bfloat16) with weights, gradients and AdamW state float32, and
the loss (and metrics) computed on the logits cast to float32 outside autocast.
"""

import contextlib

import argparse
import json
import os
import random
import sys
import time

import torch
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import selene_models  # noqa: E402


def emit(obj):
    print(json.dumps(obj), flush=True)


# ---------------------------------------------------------------- losses, as server/train/loss.cc

def bce_dice_loss(logits, targets, pos_weight=1.0, bce_weight=0.5, dice_weight=0.5, smooth=1.0):
    t = targets.to(logits.dtype)
    if t.dim() == logits.dim() - 1:
        t = t.unsqueeze(1)
    bce = F.binary_cross_entropy_with_logits(
        logits, t, pos_weight=torch.full((1,), pos_weight, dtype=logits.dtype))
    p = torch.sigmoid(logits)
    dice = (2 * (p * t).sum() + smooth) / (p.sum() + t.sum() + smooth)
    return bce_weight * bce + dice_weight * (1 - dice)


def loss_for(model_name, logits, targets, label_smoothing=0.0, pos_weight=1.0):
    if model_name == "classifier":
        return F.cross_entropy(logits, targets, label_smoothing=label_smoothing)
    return bce_dice_loss(logits, targets, pos_weight=pos_weight)


# ---------------------------------------------------------------- precision and layout, as Selene

def memory_format(args):
    return torch.channels_last if args.channels_last else torch.contiguous_format


def device_of(args):
    return torch.device(getattr(args, "device", "cpu"))


def synchronize(args):
    if device_of(args).type == "cuda":
        torch.cuda.synchronize()


def place_model(model, args):
    """server/train/trainer.cc PlaceNetwork: on the run's device, channels-last 4-d weights when
    asked."""
    return model.to(device_of(args)).to(memory_format=memory_format(args))


def forward_logits(model, images, args):
    """server/train/trainer.cc ForwardLogits: the batch in the run's layout, the forward pass
    under autocast to bfloat16 for bf16 (nothing for fp32), the logits float32 whatever the
    precision; the caller computes the loss on them outside autocast."""
    scope = (torch.autocast(device_of(args).type, dtype=torch.bfloat16) if args.bf16
             else contextlib.nullcontext())
    with scope:
        logits = model(images.contiguous(memory_format=memory_format(args)))
    return logits.float()


def precision_fields(args):
    return {"precision": "bf16" if args.bf16 else "fp32", "channels_last": args.channels_last}


# ---------------------------------------------------------------- subcommands

def cmd_params(args):
    emit({name: selene_models.count_parameters(selene_models.build(name, args.classes))
          for name in ("unet", "classifier")})


def cmd_flops(args):
    out = {}
    for name in ("unet", "classifier"):
        model = selene_models.build(name, args.classes)
        total, per_kind = selene_models.forward_flops(model, args.size)
        profiled = selene_models.profiler_flops(model, args.size)
        hooked_same_ops = per_kind["conv2d"] + per_kind["linear"]
        out[name] = {
            "forward_flops": total,
            "by_kind": per_kind,
            "profiler_conv2d_linear_flops": profiled,
            "cross_check_ok": profiled == hooked_same_ops,
            "train_flops": 3 * total,
        }
    out["size"] = args.size
    emit(out)


def cmd_matmul(args):
    torch.set_num_threads(args.threads)
    n = args.n
    dtype = {"float32": torch.float32, "bfloat16": torch.bfloat16}[args.dtype]
    a = torch.randn(n, n).to(dtype)
    b = torch.randn(n, n).to(dtype)
    c = torch.empty(n, n, dtype=dtype)
    for _ in range(3):
        torch.mm(a, b, out=c)
    best = float("inf")
    for _ in range(args.repeats):
        start = time.perf_counter()
        torch.mm(a, b, out=c)
        best = min(best, time.perf_counter() - start)
    emit({"threads": torch.get_num_threads(), "n": n, "dtype": args.dtype,
          "gflops": 2 * n ** 3 / best / 1e9, "best_seconds": best})


def synthetic_batch(model_name, batch, size, classes):
    images = torch.randn(batch, 3, size, size)
    if model_name == "classifier":
        targets = torch.randint(0, classes, (batch,))
    else:
        targets = (torch.rand(batch, size, size) > 0.9).float()
    return images, targets


def cmd_train(args):
    torch.set_num_threads(args.threads)
    torch.manual_seed(1)
    model = place_model(selene_models.build(args.model, args.classes), args)
    # Selene's default OptimizerOptions: AdamW, lr 1e-3, weight decay 0.
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3, weight_decay=0.0)
    images, targets = synthetic_batch(args.model, args.batch, args.size, args.classes)
    # As selene-bench: the synthetic batch is made in the run's layout once, before the steps.
    images = images.to(device_of(args)).contiguous(memory_format=memory_format(args))
    targets = targets.to(device_of(args))
    model.train()

    def step():
        optimizer.zero_grad()
        loss = loss_for(args.model, forward_logits(model, images, args), targets)
        loss.backward()
        optimizer.step()
        synchronize(args)

    for _ in range(args.warmup):
        step()
    start = time.perf_counter()
    for _ in range(args.steps):
        step()
    seconds = time.perf_counter() - start
    emit({"model": args.model, "mode": "train", "threads": torch.get_num_threads(),
          "device": str(device_of(args)), "batch": args.batch, "size": args.size, **precision_fields(args), "steps": args.steps,
          "parameters": selene_models.count_parameters(model),
          "ms_per_step": 1000 * seconds / args.steps,
          "images_per_second": args.batch * args.steps / seconds})


def median(values):
    values = sorted(values)
    return values[len(values) // 2]


def percentile(values, q):
    values = sorted(values)
    return values[min(len(values) - 1, int(q * len(values)))]


def cmd_infer(args):
    torch.set_num_threads(args.threads)
    torch.manual_seed(1)
    model = selene_models.build(args.model, args.classes).eval()
    if args.checkpoint:
        selene_models.load_selene_checkpoint(model, args.checkpoint)
    model = place_model(model, args)
    x = torch.randn(args.batch, 3, args.size, args.size, device=device_of(args))

    def forward():
        forward_logits(model, x, args)
        synchronize(args)

    times = []
    with torch.inference_mode():
        for _ in range(args.warmup):
            forward()
        deadline = time.perf_counter() + args.seconds
        while len(times) < args.min_iterations or time.perf_counter() < deadline:
            start = time.perf_counter()
            forward()
            times.append(time.perf_counter() - start)
    emit({"model": args.model, "mode": "infer", "threads": torch.get_num_threads(),
          "device": str(device_of(args)), **precision_fields(args),
          "batch": args.batch, "size": args.size, "iterations": len(times),
          "median_ms": 1000 * median(times), "p90_ms": 1000 * percentile(times, 0.9),
          "min_ms": 1000 * min(times)})


def cmd_check(args):
    """Selene's serving bench wrote its input image (raw uint8 HWC RGB), normalisation and
    logits; the same checkpoint loaded by name into the Python U-Net must give the same logits."""
    with open(args.selene_json) as f:
        selene = json.load(f)
    dump = selene["dump"]
    side = dump["size"]
    raw = open(dump["input"], "rb").read()
    image = torch.frombuffer(bytearray(raw), dtype=torch.uint8).view(side, side, 3)
    mean = torch.tensor(dump["mean"] * (3 if len(dump["mean"]) == 1 else 1)).view(1, 3, 1, 1)
    std = torch.tensor(dump["std"] * (3 if len(dump["std"]) == 1 else 1)).view(1, 3, 1, 1)
    x = (image.permute(2, 0, 1).unsqueeze(0).float() / 255.0 - mean) / std
    selene_logits = torch.frombuffer(bytearray(open(dump["logits"], "rb").read()),
                                     dtype=torch.float32)
    model = selene_models.build("unet").eval()
    tensors = selene_models.load_selene_checkpoint(model, args.checkpoint)
    with torch.inference_mode():
        logits = model(x).flatten()
    diff = (logits - selene_logits).abs().max().item()
    emit({"tensors_loaded": tensors, "parameters": selene_models.count_parameters(model),
          "max_abs_logit_diff": diff, "logit_scale": logits.abs().max().item(),
          "same_outputs": diff <= 1e-3 * max(1.0, logits.abs().max().item())})


def cmd_profile(args):
    from torch.autograd import profiler

    torch.set_num_threads(args.threads)
    model = place_model(selene_models.build(args.model, args.classes), args)
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3, weight_decay=0.0)
    images, targets = synthetic_batch(args.model, args.batch, args.size, args.classes)
    if args.mode == "infer":
        model.eval()
        images = images[:1]
    images = images.contiguous(memory_format=memory_format(args))

    def step():
        if args.mode == "infer":
            with torch.inference_mode():
                forward_logits(model, images, args)
            return
        optimizer.zero_grad()
        loss_for(args.model, forward_logits(model, images, args), targets).backward()
        optimizer.step()

    for _ in range(2):
        step()
    with profiler.profile() as prof:
        for _ in range(args.steps):
            step()
    total = sum(e.self_cpu_time_total for e in prof.key_averages())
    rows = []
    for e in sorted(prof.key_averages(), key=lambda e: -e.self_cpu_time_total)[: args.top]:
        rows.append({"op": e.key, "self_ms_per_step": e.self_cpu_time_total / 1000 / args.steps,
                     "share": e.self_cpu_time_total / total, "calls_per_step": e.count / args.steps})
    emit({"model": args.model, "mode": args.mode, "threads": torch.get_num_threads(),
          "batch": args.batch if args.mode == "train" else 1, "size": args.size,
          **precision_fields(args), "total_ms_per_step": total / 1000 / args.steps, "top": rows})


def cmd_activations(args):
    """What one training step holds beyond the model: every tensor autograd saves for backward
    during the forward pass and the loss (saved_tensors_hooks), counted once per storage (a view
    keeps its whole storage alive; several saves of one tensor share it), split into the model's
    parameters (resident anyway), the input batch, autocast's bfloat16 copies of the weights
    (bf16 only), and the rest: the activations. Also the sizes of the parameters, their
    gradients and the AdamW state (exp_avg, exp_avg_sq), computed from the parameter count."""
    torch.set_num_threads(args.threads)
    torch.manual_seed(1)
    model = place_model(selene_models.build(args.model, args.classes), args).train()
    images, targets = synthetic_batch(args.model, args.batch, args.size, args.classes)
    images = images.contiguous(memory_format=memory_format(args))
    parameter_ptrs = {p.storage().data_ptr() for p in model.parameters()}
    input_ptr = images.storage().data_ptr()
    storages = {}  # data_ptr -> (bytes, kind)
    saves = [0]

    def weight_copy(t):  # autocast's cast of a parameter: _to_copy straight from its leaf
        fn = t.grad_fn
        if fn is None or type(fn).__name__ != "ToCopyBackward0" or not fn.next_functions:
            return False
        leaf = fn.next_functions[0][0]
        variable = getattr(leaf, "variable", None)
        return variable is not None and variable.storage().data_ptr() in parameter_ptrs

    def pack(t):
        saves[0] += 1
        storage = t.storage()
        ptr = storage.data_ptr()
        if ptr not in storages:
            kind = ("parameters" if ptr in parameter_ptrs else
                    "input" if ptr == input_ptr else
                    "weight_copies" if weight_copy(t) else "activations")
            storages[ptr] = (storage.nbytes(), kind)
        return t

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        loss = loss_for(args.model, forward_logits(model, images, args), targets)
    loss.backward()
    mib = 1024 * 1024
    by_kind = {"parameters": 0, "input": 0, "weight_copies": 0, "activations": 0}
    for nbytes, kind in storages.values():
        by_kind[kind] += nbytes
    parameter_bytes = sum(p.numel() * p.element_size() for p in model.parameters())
    buffer_bytes = sum(b.numel() * b.element_size() for b in model.buffers())
    emit({"model": args.model, "batch": args.batch, "size": args.size, "classes": args.classes,
          **precision_fields(args), "saved_tensors": saves[0], "saved_storages": len(storages),
          "saved_mib": sum(by_kind.values()) / mib,
          "saved_activations_mib": by_kind["activations"] / mib,
          "saved_bf16_weight_copies_mib": by_kind["weight_copies"] / mib,
          "saved_input_mib": by_kind["input"] / mib,
          "saved_parameters_mib": by_kind["parameters"] / mib,
          "parameters_mib": parameter_bytes / mib, "buffers_mib": buffer_bytes / mib,
          "gradients_mib": parameter_bytes / mib, "adamw_state_mib": 2 * parameter_bytes / mib,
          "input_batch_mib": images.numel() * images.element_size() / mib})


# ---------------------------------------------------------------- the DataLoader recipes

class TinyImageNet(torch.utils.data.Dataset):
    """train/<wnid>/images/*.JPEG of the first `classes` wnids; val/images + val_annotations."""

    def __init__(self, root, classes, split, transform):
        from PIL import Image  # noqa: F401  (fail early when Pillow is missing)

        wnids = [line.strip() for line in open(os.path.join(root, "wnids.txt")) if line.strip()]
        wnids = wnids[:classes]
        index = {w: i for i, w in enumerate(wnids)}
        self.items = []
        if split == "train":
            for w in wnids:
                folder = os.path.join(root, "train", w, "images")
                for name in sorted(os.listdir(folder)):
                    if name.endswith(".JPEG"):
                        self.items.append((os.path.join(folder, name), index[w]))
        else:
            for line in open(os.path.join(root, "val", "val_annotations.txt")):
                parts = line.split("\t")
                if len(parts) >= 2 and parts[1] in index:
                    self.items.append((os.path.join(root, "val", "images", parts[0]),
                                       index[parts[1]]))
        self.transform = transform

    def __len__(self):
        return len(self.items)

    def __getitem__(self, i):
        from PIL import Image

        path, label = self.items[i]
        with Image.open(path) as image:
            return self.transform(image.convert("RGB")), label


class MoonPngs(torch.utils.data.Dataset):
    """images/render/renderNNNN.png with images/ground/groundNNNN.png (colour-coded: a rock is a
    pixel whose strongest channel is green or blue and above 127), resized to size x size."""

    def __init__(self, items, size, augment):
        self.items = items
        self.size = size
        self.augment = augment

    def __len__(self):
        return len(self.items)

    def __getitem__(self, i):
        import numpy as np
        import torchvision.transforms.functional as TF
        from PIL import Image

        render_path, ground_path = self.items[i]
        with Image.open(render_path) as r:
            image = r.convert("RGB").resize((self.size, self.size), Image.BILINEAR)
        with Image.open(ground_path) as g:
            ground = np.asarray(g.convert("RGB").resize((self.size, self.size), Image.NEAREST))
        strongest = ground.argmax(axis=2)
        rock = (ground.max(axis=2) > 127) & (strongest >= 1)
        mask = torch.from_numpy(rock.astype("float32"))
        if self.augment:
            if random.random() < 0.5:
                image = TF.hflip(image)
                mask = mask.flip(-1)
            image = TF.adjust_brightness(image, random.uniform(0.9, 1.1))
            image = TF.adjust_contrast(image, random.uniform(0.9, 1.1))
        x = TF.normalize(TF.to_tensor(image), [0.5] * 3, [0.25] * 3)
        return x, mask


def moon_items(root):
    renders = sorted(os.listdir(os.path.join(root, "images", "render")))
    items = []
    for name in renders:
        frame = name[len("render"):]
        ground = os.path.join(root, "images", "ground", "ground" + frame)
        if os.path.exists(ground):
            items.append((os.path.join(root, "images", "render", name), ground))
    return items


def run_epoch(model, optimizer, train_loader, val_loader, loss_fn, metric_fn, grad_clip, args):
    """One epoch as Selene's Trainer runs it: training steps, then a validation pass, both in the
    run's precision and layout (forward_logits)."""
    model.train()
    start = time.perf_counter()
    images = 0
    wait = 0.0
    loss_sum = 0.0
    batch_start = time.perf_counter()
    for x, y in train_loader:
        wait += time.perf_counter() - batch_start
        optimizer.zero_grad()
        logits = forward_logits(model, x, args)
        loss = loss_fn(logits, y)
        loss.backward()
        if grad_clip > 0:
            torch.nn.utils.clip_grad_norm_(model.parameters(), grad_clip)
        optimizer.step()
        loss_sum += loss.item() * x.size(0)
        metric_fn(logits.detach(), y)
        images += x.size(0)
        batch_start = time.perf_counter()
    train_seconds = time.perf_counter() - start
    model.eval()
    val_loss = 0.0
    val_count = 0
    with torch.no_grad():
        for x, y in val_loader:
            logits = forward_logits(model, x, args)
            val_loss += loss_fn(logits, y).item() * x.size(0)
            metric_fn(logits, y)
            val_count += x.size(0)
    return {"epoch_seconds": time.perf_counter() - start, "train_seconds": train_seconds,
            "images_per_second": images / train_seconds, "data_wait_fraction": wait / train_seconds,
            "train_images": images, "val_images": val_count,
            "train_loss": loss_sum / max(1, images), "val_loss": val_loss / max(1, val_count)}


def cmd_epoch_classify(args):
    import torchvision.transforms as T

    torch.set_num_threads(args.threads)
    torch.manual_seed(1)
    random.seed(1)
    mean, std = [0.485, 0.456, 0.406], [0.229, 0.224, 0.225]
    # The seed homework's recipe, with classifier_tiny_imagenet.json's parameters.
    train_tf = T.Compose([
        T.Resize(args.size),
        T.RandomResizedCrop(args.size, scale=(0.35, 1.0)),
        T.RandomHorizontalFlip(),
        T.RandomRotation(10),
        T.ColorJitter(brightness=0.2, contrast=0.2, saturation=0.2),
        T.ToTensor(),
        T.Normalize(mean, std),
    ])
    val_tf = T.Compose([T.Resize(args.size), T.ToTensor(), T.Normalize(mean, std)])
    start = time.perf_counter()
    train = TinyImageNet(args.data, args.classes, "train", train_tf)
    val = TinyImageNet(args.data, args.classes, "val", val_tf)
    train_loader = torch.utils.data.DataLoader(train, batch_size=args.batch, shuffle=True,
                                               drop_last=True, num_workers=args.workers)
    val_loader = torch.utils.data.DataLoader(val, batch_size=args.batch, shuffle=False,
                                             num_workers=args.workers)
    model = place_model(selene_models.Classifier(num_classes=args.classes), args)
    optimizer = torch.optim.AdamW(model.parameters(), lr=0.002, weight_decay=0.05)
    correct = [0]

    def metric(logits, y):
        correct[0] += (logits.argmax(1) == y).sum().item()

    result = run_epoch(model, optimizer, train_loader, val_loader,
                       lambda logits, y: F.cross_entropy(logits, y, label_smoothing=0.1),
                       metric, grad_clip=5.0, args=args)
    result.update({"recipe": "Dataset + DataLoader + torchvision transforms",
                   **precision_fields(args), "workers": args.workers,
                   "threads": torch.get_num_threads(),
                   "batch": args.batch, "size": args.size, "classes": args.classes,
                   "total_seconds": time.perf_counter() - start})
    emit(result)


def cmd_epoch_segment(args):
    torch.set_num_threads(args.threads)
    torch.manual_seed(1)
    random.seed(1)
    start = time.perf_counter()
    items = moon_items(args.data)
    rng = random.Random(args.split_seed)
    order = list(range(len(items)))
    rng.shuffle(order)
    n_val = max(1, int(round(args.val_fraction * len(items))))
    val_items = [items[i] for i in order[:n_val]]
    train_items = [items[i] for i in order[n_val:]]
    train_loader = torch.utils.data.DataLoader(MoonPngs(train_items, args.size, True),
                                               batch_size=args.batch, shuffle=True,
                                               drop_last=True, num_workers=args.workers)
    val_loader = torch.utils.data.DataLoader(MoonPngs(val_items, args.size, False),
                                             batch_size=args.batch, shuffle=False,
                                             num_workers=args.workers)
    model = place_model(selene_models.UNet(), args)
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3, weight_decay=1e-4)
    inter = [0.0, 0.0]

    def metric(logits, y):  # Dice counts, as Selene's validation keeps them
        p = (logits[:, 0] > 0).float()
        inter[0] += (p * y).sum().item()
        inter[1] += (p.sum() + y.sum()).item()

    result = run_epoch(model, optimizer, train_loader, val_loader,
                       lambda logits, y: bce_dice_loss(logits, y, pos_weight=3.0),
                       metric, grad_clip=0.0, args=args)
    result.update({"recipe": "Dataset + DataLoader + torchvision.transforms.functional",
                   **precision_fields(args), "workers": args.workers,
                   "threads": torch.get_num_threads(),
                   "batch": args.batch, "size": args.size, "files": 2 * len(items),
                   "total_seconds": time.perf_counter() - start})
    emit(result)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)

    def fast(p):  # Selene's training.precision and training.channels_last
        p.add_argument("--bf16", action="store_true",
                       help="forward under torch.autocast('cpu', dtype=torch.bfloat16)")
        p.add_argument("--channels-last", "--channels_last", dest="channels_last",
                       action="store_true", help="model weights and batches channels-last")

    def common(p, model=True):
        p.add_argument("--threads", type=int, default=os.cpu_count())
        p.add_argument("--size", type=int, default=128)
        p.add_argument("--classes", type=int, default=200)
        if model:
            p.add_argument("--model", choices=["unet", "classifier"], default="unet")

    p = sub.add_parser("params"); common(p, model=False)
    p = sub.add_parser("flops"); common(p, model=False)
    p = sub.add_parser("matmul"); common(p, model=False)
    p.add_argument("--n", type=int, default=2048)
    p.add_argument("--dtype", choices=["float32", "bfloat16"], default="float32")
    p.add_argument("--repeats", type=int, default=10)
    p = sub.add_parser("train"); common(p)
    p.add_argument("--batch", type=int, default=16)
    p.add_argument("--steps", type=int, default=10)
    p.add_argument("--warmup", type=int, default=2)
    p.add_argument("--device", default="cpu", help="cpu or cuda[:i] (the GPU comparison)")
    fast(p)
    p = sub.add_parser("infer"); common(p)
    p.add_argument("--batch", type=int, default=1)
    p.add_argument("--seconds", type=float, default=5.0)
    p.add_argument("--min_iterations", type=int, default=10)
    p.add_argument("--warmup", type=int, default=3)
    p.add_argument("--checkpoint", default="")
    p.add_argument("--device", default="cpu", help="cpu or cuda[:i] (the GPU comparison)")
    fast(p)
    p = sub.add_parser("check")
    p.add_argument("--checkpoint", required=True)
    p.add_argument("--selene_json", required=True)
    p = sub.add_parser("profile"); common(p)
    p.add_argument("--mode", choices=["train", "infer"], default="train")
    p.add_argument("--batch", type=int, default=16)
    p.add_argument("--steps", type=int, default=3)
    p.add_argument("--top", type=int, default=12)
    fast(p)
    p = sub.add_parser("activations"); common(p)
    p.add_argument("--batch", type=int, default=64)
    fast(p)
    p = sub.add_parser("epoch-classify"); common(p, model=False)
    p.add_argument("--data", required=True)
    p.add_argument("--batch", type=int, default=64)
    p.add_argument("--workers", type=int, default=2)
    fast(p)
    p = sub.add_parser("epoch-segment"); common(p, model=False)
    p.add_argument("--data", required=True)
    p.add_argument("--batch", type=int, default=8)
    p.add_argument("--workers", type=int, default=2)
    p.add_argument("--val_fraction", type=float, default=0.15)
    p.add_argument("--split_seed", type=int, default=1)
    fast(p)
    args = parser.parse_args()
    {
        "params": cmd_params, "flops": cmd_flops, "matmul": cmd_matmul, "train": cmd_train,
        "infer": cmd_infer, "check": cmd_check, "profile": cmd_profile,
        "activations": cmd_activations,
        "epoch-classify": cmd_epoch_classify, "epoch-segment": cmd_epoch_segment,
    }[args.command](args)


if __name__ == "__main__":
    main()
