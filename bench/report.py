#!/usr/bin/python3
"""Turns the raw outputs of bench/run.sh (one JSON object per file in its work folder) into
bench/results/<date>.json and the generated section of docs/benchmarks.md.

  report.py WORK_DIR RESULTS_JSON DOCS_MD      (DOCS_MD "-": print the section only)

Every ratio is Selene over PyTorch in the direction where > 1 means Selene is better (faster,
more images per second). The two sides run back to back in rounds; the headline ratio is the
median over rounds of each round's ratio (a round's two runs share the machine's load at that
moment), and each side's figure is its best round (a slow round is another process's doing on
this shared machine, never the code's).
"""

import glob
import json
import os
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


def fmt(value, digits=1):
    if value is None:
        return "n/a"
    if isinstance(value, str):
        return value
    return f"{value:,.{digits}f}"


def ratio_text(value):
    return "n/a" if value is None else f"**{value:.2f}x**"


def goal_row(goal, target, measured, met):
    mark = "n/a" if met is None else ("met" if met else "**missed**")
    return f"| {goal} | {target} | {measured} | {mark} |"


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
    peaks = [m["gflops"] for m in load_all(work, "matmul_*.json")]
    peak = max(peaks) if peaks else None
    training = {"matmul_peak_gflops": peak, "matmul_runs_gflops": peaks, "models": {}}
    for model in ("unet", "classifier"):
        selene = load_all(work, f"train_{model}_selene_*.json")
        pytorch = load_all(work, f"train_{model}_pytorch_*.json")
        if not selene or not pytorch:
            continue
        s_best = max(x["images_per_second"] for x in selene)
        p_best = max(x["images_per_second"] for x in pytorch)
        round_ratios = [a["images_per_second"] / b["images_per_second"]
                        for a, b in zip(selene, pytorch)]
        fwd = flops.get(model, {}).get("forward_flops")
        entry = {
            "batch": selene[0]["batch"], "size": selene[0]["size"], "threads": selene[0]["threads"],
            "parameters_selene": selene[0]["parameters"],
            "parameters_pytorch": pytorch[0]["parameters"],
            "parameters_equal": selene[0]["parameters"] == pytorch[0]["parameters"]
            == params.get(model),
            "selene_images_per_second": [x["images_per_second"] for x in selene],
            "pytorch_images_per_second": [x["images_per_second"] for x in pytorch],
            "selene_best": s_best, "pytorch_best": p_best,
            "round_ratios": round_ratios, "ratio": statistics.median(round_ratios),
            "ratio_of_bests": s_best / p_best,
            "forward_gflops_per_image": fwd / 1e9 if fwd else None,
            "flops_cross_check_ok": flops.get(model, {}).get("cross_check_ok"),
        }
        if fwd and peak:
            entry["selene_gflops"] = s_best * 3 * fwd / 1e9
            entry["pytorch_gflops"] = p_best * 3 * fwd / 1e9
            entry["selene_fraction_of_peak"] = entry["selene_gflops"] / peak
            entry["pytorch_fraction_of_peak"] = entry["pytorch_gflops"] / peak
        profile = load(work, f"profile_{model}.json")
        if profile:
            entry["profile"] = profile
        training["models"][model] = entry
    r["training"] = training

    # ---------------------------------------------------------------- 2. epoch from files
    epochs = {}
    cls_s = load_all(work, "epoch_cls_selene_*.json")
    cls_p = load_all(work, "epoch_cls_pytorch_*.json")
    if cls_s and cls_p:
        s = min(cls_s, key=lambda x: x["epoch_with_decoding_seconds"])
        p = min(cls_p, key=lambda x: x["epoch_seconds"])
        epochs["classification"] = {
            "data": f"Tiny ImageNet sample, {p['classes']} classes ({s['files']} JPEGs of "
                    "64x64), upsampled to 128x128, default classifier, batch 64",
            "selene": s, "pytorch": p,
            "selene_seconds": s["epoch_with_decoding_seconds"], "pytorch_seconds": p["epoch_seconds"],
            "ratio": p["epoch_seconds"] / s["epoch_with_decoding_seconds"],
            # Later epochs: Selene's files are decoded already; the DataLoader decodes again.
            "ratio_later_epochs": p["epoch_seconds"] / s["epoch_seconds"],
            "train_images_per_second_ratio": s["images_per_second"] / p["images_per_second"],
        }
    seg_s = load_all(work, "epoch_seg_selene_*.json")
    seg_p = load_all(work, "epoch_seg_pytorch_*.json")
    if seg_s and seg_p:
        s = min(seg_s, key=lambda x: x["epoch_with_decoding_seconds"])
        p = min(seg_p, key=lambda x: x["epoch_seconds"])
        epochs["segmentation"] = {
            "data": f"{s['files']} MOON-layout pairs of 720x480 PNGs (render + colour-coded "
                    "ground), resized to 128x128, default U-Net, batch 8",
            "selene": s, "pytorch": p,
            "selene_seconds": s["epoch_with_decoding_seconds"], "pytorch_seconds": p["epoch_seconds"],
            "ratio": p["epoch_seconds"] / s["epoch_with_decoding_seconds"],
            # Later epochs: Selene's files are decoded already; the DataLoader decodes again.
            "ratio_later_epochs": p["epoch_seconds"] / s["epoch_seconds"],
            "train_images_per_second_ratio": s["images_per_second"] / p["images_per_second"],
        }
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
    unet_runs = load_all(work, "train_unet_selene_*.json")
    if unet_runs and "rss_after_mib" in unet_runs[-1]:
        r["memory"]["bench_unet_training_after_mib"] = unet_runs[-1]["rss_after_mib"]
        r["memory"]["bench_unet_training_after_trim_mib"] = unet_runs[-1][
            "rss_after_malloc_trim_mib"]

    # ---------------------------------------------------------------- goals
    goals = []
    unet = training["models"].get("unet", {})
    clf = training["models"].get("classifier", {})
    ratios = [m["ratio"] for m in training["models"].values()]
    if ratios:
        goals.append(("Training throughput vs PyTorch eager", ">= 1.0x",
                      ", ".join(f"{k} {v['ratio']:.2f}x" for k, v in training["models"].items()),
                      min(ratios) >= 1.0))
    fractions = [m.get("selene_fraction_of_peak") for m in training["models"].values()]
    if all(f is not None for f in fractions) and fractions:
        goals.append(("Training: share of the matmul peak", ">= 60%",
                      ", ".join(f"{k} {100 * v['selene_fraction_of_peak']:.0f}%"
                                for k, v in training["models"].items()),
                      min(fractions) >= 0.6))
    if epochs:
        goals.append(("Epoch with the input pipeline vs DataLoader", ">= 1.5x",
                      ", ".join(f"{k} {v['ratio']:.2f}x ({v['ratio_later_epochs']:.2f}x from the "
                                f"2nd epoch)" for k, v in epochs.items()),
                      min(v["ratio"] for v in epochs.values()) >= 1.5))
    t1 = inference.get("threads_1")
    if t1:
        goals.append(("Inference in process vs PyTorch eager (1 thread)", ">= 1.2x",
                      f"{t1['ratio']:.2f}x", t1["ratio"] >= 1.2))
    off = grpc.get("batching_off", {})
    if "overhead_c1" in off:
        goals.append(("gRPC overhead at concurrency 1 (batching off)", "<= 15%",
                      f"{100 * off['overhead_c1']:.0f}%", off["overhead_c1"] <= 0.15))
    on = grpc.get("batching_on", {})
    if "overhead_c1" in on:
        goals.append(("gRPC overhead at concurrency 1 (batching on, 5 ms delay)", "<= 15%",
                      f"{100 * on['overhead_c1']:.0f}%", on["overhead_c1"] <= 0.15))
    mem = r["memory"]
    if mem.get("idle_mib"):
        goals.append(("Server resident memory idle", "< 400 MB",
                      f"{mem['idle_mib']:.0f} MiB", mem["idle_mib"] * 1.048576 < 400))
    if mem.get("tiny_imagenet_peak_mib") and mem.get("tiny_imagenet_cache_mib"):
        grow = mem["tiny_imagenet_peak_mib"] - mem.get("idle_mib", 0)
        goals.append(("Training memory dominated by the data cache", "cache > half of the growth",
                      f"cache {mem['tiny_imagenet_cache_mib']:.0f} MiB of "
                      f"{grow:.0f} MiB growth", mem["tiny_imagenet_cache_mib"] > grow / 2))
    r["goals"] = [{"goal": g, "target": t, "measured": m, "met": ok} for g, t, m, ok in goals]
    return r


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

    lines += ["### Goals", "", "| goal | target | measured | |", "|---|---|---|---|"]
    for g in r.get("goals", []):
        lines.append(goal_row(g["goal"], g["target"], g["measured"], g["met"]))
    lines.append("")

    t = r.get("training", {})
    lines += ["### 1. Training throughput (synthetic tensors, same architecture)", "",
              f"Matmul peak (`torch.mm` 2048x2048 float32, {r.get('threads')} threads): "
              f"**{fmt(t.get('matmul_peak_gflops'))} GFLOP/s**. FLOPs per image are counted by "
              "forward hooks on every conv, transposed conv and linear layer (cross-checked "
              "against the autograd profiler's own count for conv2d and linear); a training step "
              "is taken as 3x the forward.", "",
              "| model | batch | parameters (Selene = PyTorch) | GFLOP/image (fwd) | Selene img/s "
              "| PyTorch img/s | ratio (median of rounds) | ratios per round | Selene % of peak "
              "| PyTorch % of peak |",
              "|---|---|---|---|---|---|---|---|---|---|"]
    for name, e in t.get("models", {}).items():
        same = "yes" if e["parameters_equal"] else "**NO**"
        lines.append(
            f"| {name} | {e['batch']} | {e['parameters_selene']:,} ({same}) | "
            f"{fmt(e.get('forward_gflops_per_image'), 2)} | {fmt(e['selene_best'])} | "
            f"{fmt(e['pytorch_best'])} | {ratio_text(e['ratio'])} | "
            f"{', '.join(f'{x:.2f}' for x in e['round_ratios'])} | "
            f"{fmt(100 * e.get('selene_fraction_of_peak', 0), 0)}% | "
            f"{fmt(100 * e.get('pytorch_fraction_of_peak', 0), 0)}% |")
    lines.append("")
    for name, e in t.get("models", {}).items():
        p = e.get("profile")
        if not p:
            continue
        lines += [f"Profile of a {name} training step (PyTorch side, `torch.autograd.profiler`, "
                  f"self CPU time; the same ATen kernels run under Selene): "
                  f"{fmt(p['total_ms_per_step'])} ms per step.", "",
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
                  "joint flip, brightness, contrast), decoding in the workers.", "",
                  "| task | data | Selene s (decode + epoch) | PyTorch s | ratio | ratio from "
                  "the 2nd epoch | train img/s Selene / PyTorch | waiting for data Selene / "
                  "PyTorch | Selene pipeline alone, ms/batch on 1 thread |",
                  "|---|---|---|---|---|---|---|---|---|"]
        for name, e in ep.items():
            s, p = e["selene"], e["pytorch"]
            lines.append(
                f"| {name} | {e['data']} | {fmt(s['decode_all_seconds'])} + "
                f"{fmt(s['epoch_seconds'])} = {fmt(e['selene_seconds'])} | "
                f"{fmt(e['pytorch_seconds'])} | {ratio_text(e['ratio'])} | "
                f"{fmt(e['ratio_later_epochs'], 2)}x | "
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
        lines += ["### 4. Server resident memory (VmRSS of `selene-server`)", "",
                  "| state | MiB |", "|---|---|"]
        labels = [
            ("idle_mib", "idle: started, no model loaded, no job"),
            ("training_small_peak_mib", "peak while training four small U-Net jobs "
             "(synthetic, 64 images at 128x128)"),
            ("after_training_mib", "after those jobs finished"),
            ("one_model_mib", "after the gRPC runs (one model loaded)"),
            ("four_models_mib", "four models loaded"),
            ("tiny_imagenet_peak_mib", "peak while training the classifier on the Tiny "
             "ImageNet sample (first steps, then cancelled)"),
            ("tiny_imagenet_cache_mib", "  of which the decoded data cache (its size on disk)"),
            ("bench_unet_training_after_mib", "`selene-bench` after U-Net training steps "
             "(batch 16): resident"),
            ("bench_unet_training_after_trim_mib", "  the same after `malloc_trim(0)`"),
        ]
        for key, label in labels:
            if mem.get(key) is not None:
                lines.append(f"| {label} | {fmt(mem[key], 0)} |")
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
