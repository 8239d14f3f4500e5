#!/usr/bin/python3
"""Turns the raw outputs of bench/run.sh (one JSON object per file in its work folder) into
bench/results/<date>.json and the generated section of docs/benchmarks.md.

  report.py WORK_DIR RESULTS_JSON DOCS_MD      (DOCS_MD "-": print the section only)

Every ratio is Selene over PyTorch in the direction where > 1 means Selene is better (faster,
more images per second). The two sides run back to back in rounds; the headline ratio is the
median over rounds of each round's ratio (a round's two runs share the machine's load at that
moment), and each side's figure is its best round (a slow round is another process's doing on
this shared machine, never the code's).

Training and epochs run in two configurations on both sides: fp32 (files NAME_N.json, the names
of earlier runs: the same kernels on both sides) and fast = bf16 autocast + channels-last
(NAME_fast_N.json). The report holds fp32 against fp32, fast against fast, and Selene fast
against PyTorch fp32 (Selene's options switched on against the script a user would write); fp32
runs against the float32 matmul peak (matmul_N.json), bf16 runs against the bfloat16 one
(matmul_bf16_N.json). A work folder without the fast files reports the fp32 rows alone.
"""

import glob
import json
import os
import re
import statistics
import sys

BEGIN = "<!-- bench/run.sh: begin generated section -->"
END = "<!-- bench/run.sh: end generated section -->"


def load(work, name, default=None):
    path = os.path.join(work, name)
    if not os.path.exists(path):
        return default
    with open(path) as f:
        text = f.read().strip()
    if not text:
        return default
    # A file may hold several JSON lines (e.g. memory samples): the last object wins unless the
    # caller asks for all with load_lines.
    return json.loads(text.splitlines()[-1])


def load_all(work, pattern):
    out = []
    for path in sorted(glob.glob(os.path.join(work, pattern))):
        with open(path) as f:
            text = f.read().strip()
        if text:
            out.append(json.loads(text.splitlines()[-1]))
    return out


def load_rounds(work, prefix):
    """{round: object} of the files PREFIX<round>.json, exactly: train_unet_selene_ matches
    train_unet_selene_2.json and never train_unet_selene_fast_2.json."""
    out = {}
    for path in glob.glob(os.path.join(work, f"{prefix}[0-9]*.json")):
        match = re.fullmatch(re.escape(prefix) + r"(\d+)\.json", os.path.basename(path))
        obj = load(work, os.path.basename(path)) if match else None
        if obj is not None:
            out[int(match.group(1))] = obj
    return dict(sorted(out.items()))


def fmt(value, digits=1):
    if value is None:
        return "n/a"
    if isinstance(value, str):
        return value
    return f"{value:,.{digits}f}"


def ratio_text(value):
    return "n/a" if value is None else f"**{value:.2f}x**"


def times(value):
    return "n/a" if value is None else f"{value:.2f}x"


def percent_text(fraction, peak_name):
    return "n/a" if fraction is None else f"{100 * fraction:.0f}% of {peak_name}"


# ---------------------------------------------------------------- goals
# A goal is met when the number shown in its "measured" column meets the target: the value is
# rounded exactly as it is printed, and that printed number is what the comparison sees (so a
# row never reads "1.88x ... missed" against ">= 1.5x", nor "60% ... missed" against ">= 60%").
OPS = {">=": lambda a, b: a >= b, ">": lambda a, b: a > b,
       "<=": lambda a, b: a <= b, "<": lambda a, b: a < b}


def goal(name, scope, target_op, target, value, style, extra=""):
    """One row of the goals table. style "x": a ratio (2 decimals), "%": a fraction shown as a
    percentage (no decimals; target given as a fraction), "MB": megabytes (no decimals)."""
    if value is None:
        shown, number = "n/a", None
    elif style == "x":
        number = round(value, 2)
        shown = f"{number:.2f}x"
    elif style == "%":
        number = round(100 * value)
        shown = f"{number:.0f}%"
    elif style == "MB":
        number = round(value)
        shown = f"{number:.0f} MB"
    else:
        raise ValueError(style)
    limit = 100 * target if style == "%" else target
    target_text = {"x": f"{target_op} {target:.1f}x", "%": f"{target_op} {limit:.0f}%",
                   "MB": f"{target_op} {target:.0f} MB"}[style]
    met = None if number is None else OPS[target_op](number, limit)
    return {"goal": name, "scope": scope, "target": target_text,
            "measured": shown + (f" ({extra})" if extra else ""), "value": number, "met": met}


def goal_row(g):
    met = g["met"]
    mark = g.get("status") or ("n/a" if met is None else ("met" if met else "**missed**"))
    return f"| {g['goal']} | {g['scope']} | {g['target']} | {g['measured']} | {mark} |"


# ---------------------------------------------------------------- 1. training comparisons

CONFIGS = {"fp32": "fp32 (NCHW)", "fast": "bf16 autocast + channels-last",
           "default": "fp32 + channels-last (Selene's default)"}


def side_figures(runs, fwd, peaks):
    """Best images/s of one side's rounds, with its GFLOP/s against the peak of its precision."""
    if not runs:
        return None
    first = next(iter(runs.values()))
    precision = first.get("precision", "fp32")
    best = max(x["images_per_second"] for x in runs.values())
    out = {"precision": precision, "channels_last": bool(first.get("channels_last", False)),
           "images_per_second": [x["images_per_second"] for x in runs.values()], "best": best}
    peak = peaks.get(precision)
    if fwd:
        out["gflops"] = best * 3 * fwd / 1e9
        if peak:
            out["peak_gflops"] = peak
            out["fraction_of_peak"] = out["gflops"] / peak
    return out


def compare(selene, pytorch, selene_config, pytorch_config, fwd, peaks):
    """Selene's rounds against PyTorch's, paired by round number (the two runs of a round share
    the machine's load at that moment)."""
    rounds = [k for k in selene if k in pytorch]
    if not rounds:
        return None
    s = side_figures(selene, fwd, peaks)
    p = side_figures(pytorch, fwd, peaks)
    round_ratios = [selene[k]["images_per_second"] / pytorch[k]["images_per_second"]
                    for k in rounds]
    return {"selene_config": selene_config, "pytorch_config": pytorch_config,
            "selene": s, "pytorch": p, "rounds": rounds, "round_ratios": round_ratios,
            "ratio": statistics.median(round_ratios), "ratio_of_bests": s["best"] / p["best"]}


def epoch_compare(s_runs, p_runs, data):
    """Selene's first epoch from files (decode + epoch) against the DataLoader's epoch: the best
    of each side's runs (a slow run is the shared machine's doing)."""
    if not s_runs or not p_runs:
        return None
    s = min(s_runs, key=lambda x: x["epoch_with_decoding_seconds"])
    p = min(p_runs, key=lambda x: x["epoch_seconds"])
    return {
        "data": data, "selene": s, "pytorch": p,
        "selene_seconds": s["epoch_with_decoding_seconds"], "pytorch_seconds": p["epoch_seconds"],
        "ratio": p["epoch_seconds"] / s["epoch_with_decoding_seconds"],
        # Later epochs: Selene's files are decoded already; the DataLoader decodes again.
        "ratio_later_epochs": p["epoch_seconds"] / s["epoch_seconds"],
        "train_images_per_second_ratio": s["images_per_second"] / p["images_per_second"],
    }


BEFORE_JOB = {"four_models_mib": "four models loaded", "idle_mib": "idle"}

# Tiny ImageNet-200 is 100,000 train + 10,000 val JPEGs of 64x64; Selene's cache keeps them
# decoded, 64 x 64 x 3 bytes each.
TINY_IMAGENET_IMAGES = 100_000 + 10_000
DECODED_IMAGE_BYTES = 64 * 64 * 3


def build(work):
    meta = load(work, "meta.json", {})
    r = {"date": meta.get("date"), "machine": meta.get("machine", {}),
         "commands": meta.get("commands", []), "threads": meta.get("threads")}
    loads = []
    if os.path.exists(os.path.join(work, "loadavg")):
        loads = [float(x) for x in open(os.path.join(work, "loadavg")).read().split()]
    r["load_average_during_run"] = {"min": min(loads), "max": max(loads)} if loads else None

    # ---------------------------------------------------------------- 1. training throughput
    params = load(work, "params.json", {})
    flops = load(work, "flops.json", {})
    # matmul_N.json: float32 (sgemm); matmul_bf16_N.json: bfloat16. Kept apart: each precision's
    # runs are held to their own peak.
    peaks_fp32 = [m["gflops"] for m in load_rounds(work, "matmul_").values()]
    peaks_bf16 = [m["gflops"] for m in load_rounds(work, "matmul_bf16_").values()]
    peak = max(peaks_fp32) if peaks_fp32 else None
    peak_bf16 = max(peaks_bf16) if peaks_bf16 else None
    peaks = {"fp32": peak, "bf16": peak_bf16}
    training = {"matmul_peak_gflops": peak, "matmul_runs_gflops": peaks_fp32,
                "matmul_bf16_peak_gflops": peak_bf16, "matmul_bf16_runs_gflops": peaks_bf16,
                "models": {}}
    for model in ("unet", "classifier"):
        selene = load_rounds(work, f"train_{model}_selene_")
        pytorch = load_rounds(work, f"train_{model}_pytorch_")
        selene_fast = load_rounds(work, f"train_{model}_selene_fast_")
        selene_default = load_rounds(work, f"train_{model}_selene_default_")
        pytorch_fast = load_rounds(work, f"train_{model}_pytorch_fast_")
        if not selene or not pytorch:
            continue
        first_s, first_p = next(iter(selene.values())), next(iter(pytorch.values()))
        fwd = flops.get(model, {}).get("forward_flops")
        same = compare(selene, pytorch, CONFIGS["fp32"], CONFIGS["fp32"], fwd, peaks)
        s_best, p_best = same["selene"]["best"], same["pytorch"]["best"]
        entry = {
            "batch": first_s["batch"], "size": first_s["size"], "threads": first_s["threads"],
            "parameters_selene": first_s["parameters"],
            "parameters_pytorch": first_p["parameters"],
            "parameters_equal": first_s["parameters"] == first_p["parameters"]
            == params.get(model),
            # fp32 against fp32: the same kernels on both sides (the like-for-like row).
            "selene_images_per_second": same["selene"]["images_per_second"],
            "pytorch_images_per_second": same["pytorch"]["images_per_second"],
            "selene_best": s_best, "pytorch_best": p_best,
            "round_ratios": same["round_ratios"], "ratio": same["ratio"],
            "ratio_of_bests": same["ratio_of_bests"],
            "forward_gflops_per_image": fwd / 1e9 if fwd else None,
            "flops_cross_check_ok": flops.get(model, {}).get("cross_check_ok"),
            "comparisons": {"fp32_vs_fp32": same},
        }
        if fwd and peak:
            entry["selene_gflops"] = s_best * 3 * fwd / 1e9
            entry["pytorch_gflops"] = p_best * 3 * fwd / 1e9
            entry["selene_fraction_of_peak"] = entry["selene_gflops"] / peak
            entry["pytorch_fraction_of_peak"] = entry["pytorch_gflops"] / peak
        fast = compare(selene_fast, pytorch_fast, CONFIGS["fast"], CONFIGS["fast"], fwd, peaks)
        if fast:
            entry["comparisons"]["fast_vs_fast"] = fast
        # What a user gets switching Selene's options on, against the script they would write.
        cross = compare(selene_fast, pytorch, CONFIGS["fast"], "fp32 (NCHW), eager default",
                        fwd, peaks)
        if cross:
            entry["comparisons"]["selene_fast_vs_pytorch_fp32"] = cross
        # Selene as it trains when a spec says nothing, against the script a user would write.
        default = compare(selene_default, pytorch, CONFIGS["default"],
                          "fp32 (NCHW), eager default", fwd, peaks)
        if default:
            entry["comparisons"]["selene_default_vs_pytorch_fp32"] = default
        if selene_fast:
            entry["selene_fast_over_selene_fp32"] = (
                max(x["images_per_second"] for x in selene_fast.values()) / s_best)
        for suffix in ("", "_fast"):
            profile = load(work, f"profile_{model}{suffix}.json")
            if profile:
                entry[f"profile{suffix}"] = profile
        training["models"][model] = entry
    r["training"] = training

    # ---------------------------------------------------------------- 2. epoch from files
    # Files: epoch_{cls,seg}_{selene,pytorch}_N.json (fp32) and ..._fast_N.json (bf16 autocast +
    # channels-last on both sides).
    epochs = {}
    for task, short in (("classification", "cls"), ("segmentation", "seg")):
        runs = {(side, config): list(load_rounds(
                    work, f"epoch_{short}_{side}_{'fast_' if config == 'fast' else ''}").values())
                for side in ("selene", "pytorch") for config in ("fp32", "fast")}
        s0 = (runs[("selene", "fp32")] or runs[("selene", "fast")] or [None])[0]
        p0 = (runs[("pytorch", "fp32")] or runs[("pytorch", "fast")] or [None])[0]
        if s0 is None or p0 is None:
            continue
        if task == "classification":
            data = (f"Tiny ImageNet sample, {p0['classes']} classes ({s0['files']} JPEGs of "
                    "64x64), upsampled to 128x128, default classifier, batch 64")
        else:
            data = (f"{s0['files']} MOON-layout pairs of 720x480 PNGs (render + colour-coded "
                    "ground), resized to 128x128, default U-Net, batch 8")
        entry = {}
        pairs = {"fp32_vs_fp32": ("fp32", "fp32"), "fast_vs_fast": ("fast", "fast"),
                 "selene_fast_vs_pytorch_fp32": ("fast", "fp32")}
        for key, (s_config, p_config) in pairs.items():
            c = epoch_compare(runs[("selene", s_config)], runs[("pytorch", p_config)], data)
            if c:
                c["selene_config"], c["pytorch_config"] = CONFIGS[s_config], CONFIGS[p_config]
                entry[key] = c
        if not entry:
            continue
        # The fp32 comparison's figures stay at the top level (the keys of earlier reports).
        entry = {**entry.get("fp32_vs_fp32", {}), "data": data, "comparisons": entry}
        epochs[task] = entry
    r["epoch"] = epochs

    # ---------------------------------------------------------------- 3. inference
    inference = {}
    for threads in sorted({x["threads"] for x in load_all(work, "serving_t*.json")}):
        selene = load_all(work, f"serving_t{threads}_*.json")
        pytorch = load_all(work, f"pytorch_infer_t{threads}_*.json")
        if not selene or not pytorch:
            continue
        variants = {}
        for run in selene:
            for name, t in run["forward"].items():
                variants.setdefault(name, []).append(t["median_ms"])
        best = {name: min(v) for name, v in variants.items()}
        p_best = min(x["median_ms"] for x in pytorch)
        round_ratios = [b["median_ms"] / a["forward"]["served"]["median_ms"]
                        for a, b in zip(selene, pytorch)]
        entry = {"selene_median_ms": best, "pytorch_median_ms": p_best,
                 "pytorch_runs_ms": [x["median_ms"] for x in pytorch],
                 "round_ratios": round_ratios, "ratio": statistics.median(round_ratios),
                 "ratio_of_bests": p_best / best["served"]}
        if "plain" in best:
            entry["ratio_plain"] = p_best / best["plain"]
            entry["optimisation_speedup"] = best["plain"] / best["served"]
        batch8 = [run["forward_batch8_per_image_ms"] for run in selene
                  if "forward_batch8_per_image_ms" in run]
        if batch8:
            entry["selene_batch8_per_image_ms"] = min(batch8)
        engine = [e for run in selene for e in run.get("engine_segment", [])]
        if engine:
            entry["engine_segment"] = engine
        # bf16: Selene's served forward with --inference_precision bf16 against PyTorch eager
        # under autocast with channels-last, and against PyTorch's fp32 eager.
        pytorch_bf16 = load_all(work, f"pytorch_infer_bf16_t{threads}_*.json")
        if "served_bf16" in best and pytorch_bf16:
            p_bf16 = min(x["median_ms"] for x in pytorch_bf16)
            entry["bf16"] = {
                "selene_median_ms": best["served_bf16"], "pytorch_median_ms": p_bf16,
                "ratio": p_bf16 / best["served_bf16"],
                "ratio_vs_pytorch_fp32": p_best / best["served_bf16"],
                "agreement": next((run["bf16_vs_fp32"] for run in selene
                                   if run.get("bf16_vs_fp32")), None)}
        inference[f"threads_{threads}"] = entry
    check = load(work, "check.json")
    if check:
        inference["same_model_check"] = check
    grpc = {}
    for mode, batch in (("batching_off", 1), ("batching_on", 8)):
        runs = load_all(work, f"grpc_b{batch}_c*.json")
        runs.sort(key=lambda x: x["concurrency"])
        if runs:
            grpc[mode] = {"max_batch_size": batch, "runs": runs}
            ref = load(work, f"grpc_b{batch}_reference.json")
            if ref:
                fwd = ref["forward_median_ms"]
                c1 = next((x for x in runs if x["concurrency"] == 1), None)
                grpc[mode]["in_process_forward_ms"] = fwd
                if c1:
                    grpc[mode]["overhead_c1"] = c1["p50_ms"] / fwd - 1
    inference["grpc"] = grpc
    r["inference"] = inference

    # ---------------------------------------------------------------- 4. memory
    r["memory"] = load(work, "memory.json", {})
    for suffix, key in (("", "bench_unet_training"), ("fast_", "bench_unet_fast_training")):
        unet_runs = list(load_rounds(work, f"train_unet_selene_{suffix}").values())
        if unet_runs and "rss_after_mib" in unet_runs[-1]:
            r["memory"][f"{key}_peak_mib"] = unet_runs[-1].get("peak_rss_mib")
            r["memory"][f"{key}_after_mib"] = unet_runs[-1]["rss_after_mib"]
            r["memory"][f"{key}_after_trim_mib"] = unet_runs[-1]["rss_after_malloc_trim_mib"]
    # What the memory goal means. The classifier job of section 4 starts on a server that holds
    # four U-Net models already (four_models_mib): its growth is the peak over that.
    mem = r["memory"]
    breakdown = {}
    if mem.get("tiny_imagenet_peak_mib"):
        before_key = "four_models_mib" if mem.get("four_models_mib") else "idle_mib"
        before = mem.get(before_key, 0) or 0
        breakdown.update({
            "resident_before_job_mib": before, "resident_before_job_is": before_key,
            "job_growth_mib": mem["tiny_imagenet_peak_mib"] - before,
            "growth_since_idle_mib": mem["tiny_imagenet_peak_mib"] - mem.get("idle_mib", 0),
        })
    if mem.get("tiny_imagenet_cache_mib") is not None:
        breakdown["sample_cache_measured_mib"] = mem["tiny_imagenet_cache_mib"]
    cls_files = [x["files"] for x in load_rounds(work, "epoch_cls_selene_").values()]
    if cls_files:
        breakdown["sample_cache_computed_mib"] = cls_files[0] * DECODED_IMAGE_BYTES / 2 ** 20
        breakdown["sample_files"] = cls_files[0]
    for suffix, key in (("", "activations_fp32"), ("_fast", "activations_fast")):
        act = load(work, f"activations_classifier{suffix}.json")
        if act:
            breakdown[key] = act
    if mem or "activations_fp32" in breakdown or "activations_fast" in breakdown:
        breakdown["full_tiny_imagenet_200_cache_mib"] = (
            TINY_IMAGENET_IMAGES * DECODED_IMAGE_BYTES / 2 ** 20)
        breakdown["full_tiny_imagenet_200_cache_computed_as"] = (
            "computed, not measured: (100,000 train + 10,000 val images) x 64 x 64 x 3 bytes = "
            f"{TINY_IMAGENET_IMAGES * DECODED_IMAGE_BYTES:,} bytes")
        mem["breakdown"] = breakdown

    # ---------------------------------------------------------------- goals
    # One row per goal, configuration and model: its "measured" is one number, the one compared.
    goals = []
    models = training["models"]
    train_goals = (
        ("fp32_vs_fp32", "Training throughput vs PyTorch eager, same fp32 kernels "
         "(Selene fp32 vs PyTorch fp32)"),
        ("fast_vs_fast", "Training throughput vs PyTorch eager, both bf16 autocast + "
         "channels-last"),
        ("selene_default_vs_pytorch_fp32", "Training throughput: Selene's default (fp32 + "
         "channels-last) vs PyTorch eager fp32 (the default script)"),
        ("selene_fast_vs_pytorch_fp32", "Training throughput: Selene bf16 + channels-last vs "
         "PyTorch eager fp32 (the default script)"),
    )
    for key, name in train_goals:
        for model, e in models.items():
            c = e["comparisons"].get(key)
            if c:
                goals.append(goal(name, model, ">=", 1.0, c["ratio"], "x", "median of rounds"))
    for key, name, peak_name, peak_value in (
            ("fp32_vs_fp32", "Training: Selene fp32 share of the fp32 matmul peak", "fp32",
             peak),
            ("fast_vs_fast", "Training: Selene bf16 + channels-last share of the bf16 matmul "
             "peak", "bf16", peak_bf16)):
        for model, e in models.items():
            c = e["comparisons"].get(key)
            if c and peak_value:
                goals.append(goal(name, model, ">=", 0.6, c["selene"].get("fraction_of_peak"),
                                  "%", f"{fmt(c['selene'].get('gflops'))} of "
                                  f"{fmt(peak_value)} GFLOP/s"))
    epoch_goals = (
        ("fp32_vs_fp32", "Epoch with the input pipeline vs DataLoader, both fp32"),
        ("selene_fast_vs_pytorch_fp32", "Epoch with the input pipeline: Selene bf16 + "
         "channels-last vs DataLoader fp32"),
        ("fast_vs_fast", "Epoch with the input pipeline vs DataLoader, both bf16 autocast + "
         "channels-last"),
    )
    for key, name in epoch_goals:
        for task, e in epochs.items():
            c = e["comparisons"].get(key)
            if c:
                goals.append(goal(name, task, ">=", 1.5, c["ratio"], "x",
                                  f"{c['ratio_later_epochs']:.2f}x from the 2nd epoch"))
    t1 = inference.get("threads_1")
    if t1:
        goals.append(goal("Inference in process vs PyTorch eager (fp32, 1 thread)", "unet",
                          ">=", 1.2, t1["ratio"], "x", "median of rounds"))
    for mode, label in (("batching_off", "batching off"),
                        ("batching_on", "batching on, 5 ms delay")):
        g = grpc.get(mode, {})
        if "overhead_c1" in g:
            goals.append(goal(f"gRPC overhead at concurrency 1 ({label})", "unet", "<=", 0.15,
                              g["overhead_c1"], "%"))
    if mem.get("idle_mib"):
        goals.append(goal("Server resident memory idle", "selene-server", "<", 400,
                          mem["idle_mib"] * 1.048576, "MB", f"{mem['idle_mib']:.0f} MiB"))
    if mem.get("tiny_imagenet_peak_mib") and mem.get("tiny_imagenet_cache_mib") is not None:
        grow = breakdown["job_growth_mib"]
        goals.append(goal(
            "Training memory dominated by the data cache: the cache's share of the job's "
            "growth (measured)", f"classifier, Tiny ImageNet sample{sample_text(breakdown)}",
            ">", 0.5, mem["tiny_imagenet_cache_mib"] / grow if grow > 0 else None, "%",
            f"cache {mem['tiny_imagenet_cache_mib']:.0f} MiB of {grow:.0f} MiB growth over "
            f"the {breakdown['resident_before_job_mib']:.0f} MiB resident before the job"))
        act = breakdown.get("activations_fp32")
        full = breakdown["full_tiny_imagenet_200_cache_mib"]
        if act:
            goals.append({
                "goal": "Training memory dominated by the data cache: the full data set",
                "scope": "classifier, all of Tiny ImageNet-200 (computed, not measured)",
                "target": "cache > activations",
                "measured": f"cache {full:,.0f} MiB (computed) vs "
                            f"{act['saved_mib']:.0f} MiB saved for backward at batch "
                            f"{act['batch']} (fp32, measured)",
                "value": None, "met": None, "status": "n/a (computed)"})
    r["goals"] = goals
    return r


def sample_text(breakdown):
    files = breakdown.get("sample_files")
    return f" ({files:,} images)" if files else ""


def markdown(r):
    lines = [BEGIN, ""]
    m = r.get("machine", {})
    lines += [
        f"## Selene against PyTorch (`bench/run.sh`, {r.get('date', '?')})", "",
        f"Machine: {m.get('cpu', '?')}, {m.get('cores', '?')} cores, {m.get('memory', '?')}, "
        f"{m.get('os', '?')}; {m.get('torch', '?')}. "
        + (f"One-minute load average during the run: {r['load_average_during_run']['min']:.1f} "
           f"to {r['load_average_during_run']['max']:.1f} (the machine is shared). "
           if r.get("load_average_during_run") else "")
        + f"Both sides use {r.get('threads')} threads "
        "unless a row says otherwise; each figure is the best of the interleaved rounds. "
        f"Raw results: `bench/results/{r.get('date', 'DATE')}.json`.", "",
        "Commands (from the repository root):", "", "```sh",
    ]
    lines += r.get("commands", [])
    lines += ["```", ""]

    lines += ["### Goals", "",
              "Each row is one goal in one configuration, for one model or task; its status "
              "compares the number shown with the target. fp32 = float32 NCHW, both sides' "
              "default; bf16 + channels-last = Selene's `training.precision = \"bf16\"` and "
              "`training.channels_last = true` against the same in PyTorch "
              "(`torch.autocast(\"cpu\", dtype=torch.bfloat16)`, channels-last model and batches, "
              "loss on float32 logits).", "",
              "| goal | model / task | target | measured | |", "|---|---|---|---|---|"]
    for g in r.get("goals", []):
        lines.append(goal_row(g))
    lines.append("")

    t = r.get("training", {})
    models = t.get("models", {})
    peak_text = (f"float32 `torch.mm` 2048x2048: **{fmt(t.get('matmul_peak_gflops'))} GFLOP/s**")
    if t.get("matmul_bf16_peak_gflops"):
        peak_text += (f"; bfloat16 `torch.mm` 2048x2048: "
                      f"**{fmt(t.get('matmul_bf16_peak_gflops'))} GFLOP/s**")
    lines += ["### 1. Training throughput (synthetic tensors, same architecture)", "",
              f"Matmul peaks at {r.get('threads')} threads, best of the runs: {peak_text}. "
              "FLOPs per image are counted by forward hooks on every conv, transposed conv and "
              "linear layer (cross-checked against the autograd profiler's own count for conv2d "
              "and linear); a training step is taken as 3x the forward. fp32 runs are held to "
              "the float32 peak, bf16 runs to the bfloat16 peak.", "",
              "| model | batch | parameters (Selene = PyTorch) | GFLOP/image (fwd) | Selene bf16 "
              "+ channels-last over Selene fp32 |", "|---|---|---|---|---|"]
    for name, e in models.items():
        same = "yes" if e["parameters_equal"] else "**NO**"
        lines.append(f"| {name} | {e['batch']} | {e['parameters_selene']:,} ({same}) | "
                     f"{fmt(e.get('forward_gflops_per_image'), 2)} | "
                     f"{times(e.get('selene_fast_over_selene_fp32'))} |")
    lines += ["", "Selene (`selene-bench`) against PyTorch eager (`bench.py train`), run back to "
              "back in each round: the same fp32 kernels on both sides (like for like); Selene's "
              "default (fp32 with channels-last, what a spec that says nothing gets) against the "
              "fp32 script a user would write; both in bf16 autocast + channels-last; and Selene "
              "with both options on against that fp32 script. img/s: each side's best round; ratio: the median of "
              "the rounds' ratios.", "",
              "| model | Selene | PyTorch | Selene img/s | PyTorch img/s | ratio | ratios per "
              "round | Selene GFLOP/s, share of peak | PyTorch GFLOP/s, share of peak |",
              "|---|---|---|---|---|---|---|---|---|"]
    for key in ("fp32_vs_fp32", "selene_default_vs_pytorch_fp32", "fast_vs_fast",
                "selene_fast_vs_pytorch_fp32"):
        for name, e in models.items():
            c = e["comparisons"].get(key)
            if not c:
                continue
            cells = []
            for side in (c["selene"], c["pytorch"]):
                cells.append(f"{fmt(side.get('gflops'))}, "
                             f"{percent_text(side.get('fraction_of_peak'), side['precision'])}")
            lines.append(
                f"| {name} | {c['selene_config']} | {c['pytorch_config']} | "
                f"{fmt(c['selene']['best'])} | {fmt(c['pytorch']['best'])} | "
                f"{ratio_text(c['ratio'])} | {', '.join(f'{x:.2f}' for x in c['round_ratios'])} "
                f"| {cells[0]} | {cells[1]} |")
    lines.append("")
    for name, e in models.items():
        for suffix, label in (("", "fp32"), ("_fast", "bf16 autocast + channels-last")):
            p = e.get(f"profile{suffix}")
            if not p:
                continue
            lines += [f"Profile of a {name} training step, {label} (PyTorch side, "
                      f"`torch.autograd.profiler`, self CPU time; the same ATen kernels run under "
                      f"Selene): {fmt(p['total_ms_per_step'])} ms per step.", "",
                      "| operator | ms/step | share |", "|---|---|---|"]
            for row in p["top"][:8]:
                lines.append(f"| `{row['op']}` | {fmt(row['self_ms_per_step'])} | "
                             f"{fmt(100 * row['share'], 1)}% |")
            lines.append("")

    ep = r.get("epoch", {})
    if ep:
        lines += ["### 2. One epoch from files: input pipeline + training + validation", "",
                  "Selene: `selene-data-bench` (decode every file once into the in-memory cache, "
                  "then the epoch with batched augmentation on the loader's thread). PyTorch: "
                  "`Dataset` + `DataLoader(num_workers=2)` + torchvision transforms (resize, "
                  "random resized crop, flip, rotation, colour jitter; segmentation: resize, "
                  "joint flip, brightness, contrast), decoding in the workers. The fast "
                  "configuration is bf16 autocast + channels-last (Selene: `--set "
                  "training.precision=bf16,training.channels_last=true`; PyTorch: `--bf16 "
                  "--channels-last`). Ratio: PyTorch's epoch seconds over Selene's decode + "
                  "epoch; from the 2nd epoch Selene's files are decoded already.", ""]
        for name, e in ep.items():
            lines.append(f"- {name}: {e['data']}")
        lines += ["",
                  "| task | Selene | PyTorch | Selene s (decode + epoch) | PyTorch s | ratio | "
                  "ratio from the 2nd epoch | train img/s Selene / PyTorch | waiting for data "
                  "Selene / PyTorch | Selene pipeline alone, ms/batch on 1 thread |",
                  "|---|---|---|---|---|---|---|---|---|---|"]
        for key in ("fp32_vs_fp32", "fast_vs_fast", "selene_fast_vs_pytorch_fp32"):
            for name, e in ep.items():
                c = e["comparisons"].get(key)
                if not c:
                    continue
                s, p = c["selene"], c["pytorch"]
                lines.append(
                    f"| {name} | {c['selene_config']} | {c['pytorch_config']} | "
                    f"{fmt(s['decode_all_seconds'])} + {fmt(s['epoch_seconds'])} = "
                    f"{fmt(c['selene_seconds'])} | {fmt(c['pytorch_seconds'])} | "
                    f"{ratio_text(c['ratio'])} | {fmt(c['ratio_later_epochs'], 2)}x | "
                    f"{fmt(s['images_per_second'])} / {fmt(p['images_per_second'])} | "
                    f"{fmt(100 * s['data_wait_fraction'], 1)}% / "
                    f"{fmt(100 * p['data_wait_fraction'], 1)}% | "
                    f"{fmt(s.get('pipeline_ms_per_batch'))} |")
        lines.append("")

    inf = r.get("inference", {})
    lines += ["### 3. Inference: the default U-Net on one 128x128 image", ""]
    rows = [k for k in inf if k.startswith("threads_")]
    if rows:
        lines += ["In process: Selene's serving forward (`ServableModel::RunBatch`: normalise, "
                  "forward under `InferenceMode`, copy out) against PyTorch eager (`model.eval()`, "
                  "`torch.inference_mode()`, forward only). Median per call.", "",
                  "| threads | PyTorch eager ms | Selene plain ms | + BN folded | + channels-last "
                  "| both (served) ms | ratio (served) | ratio (plain) | served, batch of 8: ms "
                  "per image |",
                  "|---|---|---|---|---|---|---|---|---|"]
        for k in rows:
            e = inf[k]
            s = e["selene_median_ms"]
            lines.append(
                f"| {k.split('_')[1]} | {fmt(e['pytorch_median_ms'], 2)} | "
                f"{fmt(s.get('plain'), 2)} | {fmt(s.get('folded'), 2)} | "
                f"{fmt(s.get('channels_last'), 2)} | {fmt(s['served'], 2)} | "
                f"{ratio_text(e['ratio'])} | {fmt(e.get('ratio_plain'), 2)}x | "
                f"{fmt(e.get('selene_batch8_per_image_ms'), 2)} |")
        lines.append("")
        bf16_rows = [(k, inf[k]["bf16"]) for k in rows if inf[k].get("bf16")]
        if bf16_rows:
            lines += ["The same in bfloat16: Selene's served forward with `--inference_precision "
                      "bf16` (autocast, BN folded, channels-last) against PyTorch eager under "
                      "`torch.autocast(\"cpu\", dtype=torch.bfloat16)` with a channels-last "
                      "model and input, and against PyTorch's fp32 eager above.", "",
                      "| threads | PyTorch eager bf16 ms | Selene served bf16 ms | ratio (both "
                      "bf16) | ratio (Selene bf16 vs PyTorch fp32) | bf16 vs fp32: largest logit "
                      "difference | same mask pixels |",
                      "|---|---|---|---|---|---|---|"]
            for k, b in bf16_rows:
                a = b.get("agreement") or {}
                lines.append(
                    f"| {k.split('_')[1]} | {fmt(b['pytorch_median_ms'], 2)} | "
                    f"{fmt(b['selene_median_ms'], 2)} | {ratio_text(b['ratio'])} | "
                    f"{fmt(b['ratio_vs_pytorch_fp32'], 2)}x | "
                    f"{fmt(a.get('max_abs_logit_diff'), 3)} (of {fmt(a.get('logit_scale'), 2)}) | "
                    f"{fmt(100 * a['mask_agreement'], 2) + '%' if 'mask_agreement' in a else 'n/a'}"
                    f" |")
            lines.append("")
    check = inf.get("same_model_check")
    if check:
        lines += [f"Same model, proven: the served job's `best.pt` loads by name into the PyTorch "
                  f"U-Net ({check['tensors_loaded']} tensors, {check['parameters']:,} parameters) "
                  f"and its logits match Selene's served (folded, channels-last) forward to "
                  f"{check['max_abs_logit_diff']:.1e} (largest logit "
                  f"{check['logit_scale']:.2f}).", ""]
    t1 = inf.get("threads_1", {})
    if t1.get("engine_segment"):
        lines += ["Whole `Segment` calls in process (no gRPC: PNG decode, resize, batcher, "
                  "forward, mask resize, PNG encode), 1 inference thread:", "",
                  "| max batch | clients | p50 ms | p95 ms | calls/s |", "|---|---|---|---|---|"]
        for e in t1["engine_segment"]:
            lines.append(f"| {e['max_batch_size']} | {e['clients']} | {fmt(e['median_ms'], 2)} | "
                         f"{fmt(e['p95_ms'], 2)} | {fmt(e['throughput_rps'])} |")
        lines.append("")
    grpc = inf.get("grpc", {})
    if grpc:
        lines += ["`Segment` over gRPC on loopback (`selene-load`: one channel per client, the "
                  "same 128x128 PNG, 1 inference thread, the server otherwise idle):", "",
                  "| batching | concurrency | requests | errors | p50 ms | p95 ms | p99 ms | "
                  "req/s | overhead vs in-process forward |",
                  "|---|---|---|---|---|---|---|---|---|"]
        for mode, g in grpc.items():
            label = "off (max 1)" if g["max_batch_size"] == 1 else \
                f"on (max {g['max_batch_size']}, 5 ms)"
            for run in g["runs"]:
                over = ""
                if run["concurrency"] == 1 and "overhead_c1" in g:
                    over = (f"{100 * g['overhead_c1']:+.0f}% (forward "
                            f"{fmt(g['in_process_forward_ms'], 2)} ms)")
                lines.append(
                    f"| {label} | {run['concurrency']} | {run['requests']} | {run['errors']} | "
                    f"{fmt(run['p50_ms'], 2)} | {fmt(run['p95_ms'], 2)} | "
                    f"{fmt(run['p99_ms'], 2)} | {fmt(run['throughput_rps'])} | {over} |")
        lines.append("")

    mem = r.get("memory", {})
    if mem:
        lines += ["### 4. Server resident memory (VmRSS of `selene-server`)", ""]
        labels = [
            ("idle_mib", "idle: started, no model loaded, no job"),
            ("training_small_peak_mib", "peak while training four small U-Net jobs "
             "(synthetic, 64 images at 128x128)"),
            ("after_training_mib", "after those jobs finished"),
            ("one_model_mib", "after the gRPC runs (one model loaded)"),
            ("four_models_mib", "four models loaded"),
            ("tiny_imagenet_peak_mib", "peak while training the classifier on the Tiny "
             "ImageNet sample (fp32, batch 64; first steps, then cancelled)"),
            ("tiny_imagenet_cache_mib", "  of which the decoded data cache (its size on disk)"),
            ("bench_unet_training_peak_mib", "`selene-bench` U-Net training steps (batch 16, "
             "fp32): peak"),
            ("bench_unet_training_after_mib", "  resident after the steps"),
            ("bench_unet_training_after_trim_mib", "  the same after `malloc_trim(0)`"),
            ("bench_unet_fast_training_peak_mib", "`selene-bench` U-Net training steps "
             "(batch 16, bf16 + channels-last): peak"),
            ("bench_unet_fast_training_after_mib", "  resident after the steps"),
            ("bench_unet_fast_training_after_trim_mib", "  the same after `malloc_trim(0)`"),
        ]
        rows = [f"| {label} | {fmt(mem[key], 0)} |" for key, label in labels
                if mem.get(key) is not None]
        if rows:
            lines += ["| state | MiB |", "|---|---|", *rows, ""]
        b = mem.get("breakdown", {})
        if b:
            lines += ["Where the training memory goes. The data cache grows with the data set, "
                      "the rest with the batch and the model: measured on the sample, computed "
                      "for the full data set.", "",
                      "| | MiB | how |", "|---|---|---|"]
            if "job_growth_mib" in b:
                lines.append(f"| the classifier job's growth: its peak over the "
                             f"{fmt(b['resident_before_job_mib'], 0)} MiB resident before it "
                             f"({BEFORE_JOB.get(b['resident_before_job_is'], '?')}) | "
                             f"{fmt(b['job_growth_mib'], 0)} | measured (VmRSS) |")
            if "sample_cache_measured_mib" in b:
                lines.append(f"| decoded cache of the sample | "
                             f"{fmt(b['sample_cache_measured_mib'], 0)} | measured (size on "
                             "disk) |")
            if "sample_cache_computed_mib" in b:
                lines.append(f"| decoded cache of the sample: {b['sample_files']:,} images x "
                             f"64 x 64 x 3 bytes | {fmt(b['sample_cache_computed_mib'], 0)} | "
                             "computed |")
            if "full_tiny_imagenet_200_cache_mib" in b:
                lines.append(f"| decoded cache of the full Tiny ImageNet-200: (100,000 train + "
                             f"10,000 val images) x 64 x 64 x 3 bytes | "
                             f"{fmt(b['full_tiny_imagenet_200_cache_mib'], 0)} | computed, not "
                             "measured |")
            for key, label in (("activations_fp32", "fp32"),
                               ("activations_fast", "bf16 + channels-last")):
                a = b.get(key)
                if not a:
                    continue
                # Parts under half a MiB are left out (e.g. under autocast the bf16 copy of
                # the batch is saved, not the float32 batch: it counts as an activation).
                parts = [f"{label} {fmt(a.get(k, 0), 0)}" for k, label in (
                    ("saved_activations_mib", "activations"), ("saved_input_mib", "input batch"),
                    ("saved_bf16_weight_copies_mib", "bf16 weight copies"),
                    ("saved_parameters_mib", "parameters")) if a.get(k, 0) >= 0.5]
                lines.append(f"| tensors one classifier training step saves for backward, "
                             f"batch {a['batch']}, {label} ({', '.join(parts)}) | "
                             f"{fmt(a['saved_mib'], 0)} | measured (`bench.py activations`: "
                             f"`saved_tensors_hooks`, one count per storage) |")
            a = b.get("activations_fp32") or b.get("activations_fast")
            if a:
                model_state = a["parameters_mib"] + a["gradients_mib"] + a["adamw_state_mib"]
                lines.append(f"| parameters + gradients + AdamW state (exp_avg, exp_avg_sq), "
                             f"float32 | {fmt(model_state, 0)} | computed from the parameter "
                             "count |")
            lines.append("")
    lines.append(END)
    return "\n".join(lines)


def main():
    work, results_path, docs_path = sys.argv[1:4]
    r = build(work)
    os.makedirs(os.path.dirname(results_path), exist_ok=True)
    with open(results_path, "w") as f:
        json.dump(r, f, indent=1)
        f.write("\n")
    section = markdown(r)
    if docs_path == "-":  # a partial run: print only
        print(section)
        return 0
    with open(docs_path) as f:
        doc = f.read()
    if BEGIN in doc and END in doc:
        head, rest = doc.split(BEGIN, 1)
        _, tail = rest.split(END, 1)
        doc = head + section + tail
    else:
        doc = doc.rstrip("\n") + "\n\n" + section + "\n"
    with open(docs_path, "w") as f:
        f.write(doc)
    print(section)
    bad = [m for m in r["training"]["models"].values() if not m["parameters_equal"]]
    if bad:
        print("report: parameter counts differ between Selene and PyTorch", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
