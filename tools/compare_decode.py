#!/usr/bin/env python3
"""Full vs DCT-domain scaled JPEG decoding (issue 13), ours against Pillow, in one run.

On the real HAM10000 image (../shared/data/ISIC_0024310.jpg, if present) and K synthetic 600x450
lesions (written by examples/decode_compare), per image on one thread: decode + resize to
224x224 (squash, bilinear antialiased) + normalise to float32 CHW, for
  ours full    : skinengine::data::image::preprocess (zune-jpeg full decode)
  ours scaled  : skinengine::data::input::image_tensor(.., Decode::Scaled) (jpeg-decoder reduced
                 IDCT; what embed/infer/train's feature pass do by default)
  Pillow full  : Image.open + convert RGB + resize(BILINEAR) + numpy normalise
  Pillow draft : the same after img.draft("RGB", (224, 224)) (libjpeg scale_denom)
and the difference of our scaled model input from our full one (max/mean |d| of the normalised
tensor; relative L2 difference of random-init ResNet50's pooled 2048-d features). Prints a table with ratios
(Pillow draft time / ours, > 1 means we are faster).

    .venv-tools/bin/python tools/compare_decode.py [--iters 30] [--synth 3]
"""

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time

import numpy as np
from PIL import Image

MEAN = np.array([0.485, 0.456, 0.406], dtype=np.float32)
STD = np.array([0.229, 0.224, 0.225], dtype=np.float32)


def pillow(path, draft):
    img = Image.open(path)
    if draft:
        img.draft("RGB", (224, 224))
    img = img.convert("RGB").resize((224, 224), Image.BILINEAR)
    a = np.asarray(img, dtype=np.float32) / 255.0
    return ((a - MEAN) / STD).transpose(2, 0, 1).copy()


def time_ms(f, iters):
    f()
    t0 = time.perf_counter()
    for _ in range(iters):
        f()
    return (time.perf_counter() - t0) / iters * 1e3


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--iters", type=int, default=30)
    ap.add_argument("--synth", type=int, default=3)
    args = ap.parse_args()
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    real = os.path.join(root, "..", "shared", "data", "ISIC_0024310.jpg")
    with tempfile.TemporaryDirectory() as tmp:
        cmd = ["cargo", "run", "--release", "--quiet", "--example", "decode_compare", "--",
               "--iters", str(args.iters), "--synth", tmp, str(args.synth)]
        if os.path.exists(real):
            cmd.append(real)
        # One thread for both sides: the comparison is per core.
        env = dict(os.environ, RAYON_NUM_THREADS="1")
        out = subprocess.run(cmd, cwd=root, env=env, check=True, capture_output=True, text=True)
        rows = [json.loads(line) for line in out.stdout.splitlines() if line.startswith("{")]
        print(f"{'image':<22} {'max|d|':>7} {'mean|d|':>8} {'feat rel':>8} {'ours full':>9} {'ours scl':>8} "
              f"{'PIL full':>8} {'PIL draft':>9} {'draft/scl':>9} {'full/full':>9}  (ms/img, 1 core)")
        for r in rows:
            if r["mode"] != "squash":
                continue
            p = r["file"]
            pf = time_ms(lambda: pillow(p, False), args.iters)
            pd = time_ms(lambda: pillow(p, True), args.iters)
            name = os.path.basename(p)
            print(f"{name:<22} {r['max_abs']:7.3f} {r['mean_abs']:8.4f} {r['feat_rel']:8.1e} {r['ms_full']:9.2f} "
                  f"{r['ms_scaled']:8.2f} {pf:8.2f} {pd:9.2f} {pd / r['ms_scaled']:9.2f} "
                  f"{pf / r['ms_full']:9.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
