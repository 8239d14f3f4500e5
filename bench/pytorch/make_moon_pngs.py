#!/usr/bin/python3
"""Writes a MOON-layout segmentation set of real-format PNG files for bench/run.sh.

From the one real pair in ../shared/data/lunar-sample (a 720x480 render and its colour-coded
ground truth), makes N pairs at the original 720x480: a random crop (40-100% of the area, the
frame's aspect), resized back, maybe mirrored, with a brightness change on the render. Output:
OUT/images/render/renderNNNN.png and OUT/images/ground/groundNNNN.png, the layout Selene's `moon`
reader and the PyTorch Dataset both read.

  make_moon_pngs.py --sample ../shared/data/lunar-sample --out /tmp/moon-bench --count 300
"""

import argparse
import os
import random

from PIL import Image, ImageEnhance


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--sample", required=True, help="lunar-sample folder")
    parser.add_argument("--out", required=True)
    parser.add_argument("--count", type=int, default=300)
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()

    render = Image.open(os.path.join(args.sample, "images", "render", "render0001.png"))
    render = render.convert("RGB")
    ground = Image.open(os.path.join(args.sample, "images", "ground", "ground0001.png"))
    ground = ground.convert("RGB")
    width, height = render.size
    for sub in ("render", "ground"):
        os.makedirs(os.path.join(args.out, "images", sub), exist_ok=True)
    rng = random.Random(args.seed)
    for i in range(1, args.count + 1):
        scale = rng.uniform(0.4, 1.0) ** 0.5
        w, h = int(width * scale), int(height * scale)
        x, y = rng.randint(0, width - w), rng.randint(0, height - h)
        box = (x, y, x + w, y + h)
        r = render.crop(box).resize((width, height), Image.BILINEAR)
        g = ground.crop(box).resize((width, height), Image.NEAREST)
        if rng.random() < 0.5:
            r = r.transpose(Image.FLIP_LEFT_RIGHT)
            g = g.transpose(Image.FLIP_LEFT_RIGHT)
        r = ImageEnhance.Brightness(r).enhance(rng.uniform(0.8, 1.2))
        r.save(os.path.join(args.out, "images", "render", f"render{i:04d}.png"))
        g.save(os.path.join(args.out, "images", "ground", f"ground{i:04d}.png"))
    print(f"make_moon_pngs: {args.count} pairs of {width}x{height} PNGs in {args.out}")


if __name__ == "__main__":
    main()
