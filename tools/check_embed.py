#!/usr/bin/env python3
"""End-to-end check of `skinengine embed` against torchvision on real image files.

Builds a seeded random torchvision ResNet50 (see make_model: BN statistics calibrated on random
images, then perturbed, so BN matters and the features depend on the image), saves it as f32, f16
and bf16 safetensors (num_batches_tracked included, as torchvision saves it), writes test images
(a real JPEG if available, plus generated RGB/RGBA PNGs, grayscale JPEG/PNG and 16-bit grayscale
PNGs of several sizes), runs the binary with `--logits --strict` in both resize modes for each
weights file, and compares `features` and `logits` (rows matched through metadata `image_ids`)
with torchvision fed by the standard PIL preprocessing.

Usage (from the repository root, Python environment of tools/README.md):
    $PYTHON tools/check_embed.py [--bin target/release/skinengine] [--threshold 0.05]
        [--exact-threshold 1e-4] [--image X.jpg] [--keep DIR] [--verbose] [--scaled-decode]

--scaled-decode runs embed with --scaled-decode (JPEGs decoded DCT-scaled); by default embed
decodes them at full size, as PIL does.

Images are split per mode into "exact" ones, which that mode does not resample (224x224 in squash
mode; short side 256 in crop mode, a pure crop), and "resampled" ones. Exact images test the
decoding, colour conversion (RGBA -> RGB drops alpha, gray -> RGB, 16 -> 8 bit), normalisation
and network; they should match to float rounding. Resampled images add the resize filter, whose
implementations differ by about one uint8 level here and there.

Columns per (weights dtype, resize mode, reference, reference weights), over resampled images:
  feat rel / logitrel   max |ours - ref| / max |ref|
  cos                   min over images of cosine(ours, ref)
  cos_c                 the same after subtracting ref's mean over the images (the
                        image-dependent part only)
  exact rel             max over exact images of max |ours - ref| / max |ref| (features, logits)
References:
  pil       the standard PIL/torchvision preprocessing (squash: resize((224,224), BILINEAR);
            crop: Resize(256) + CenterCrop(224)), then ToTensor + Normalize.
  torch-aa  (squash only) F.interpolate(bilinear, antialias=True, align_corners=False) on the
            decoded uint8 image as float (no uint8 rounding after the resize).
  rust-geom (crop only) PIL resize of exactly the source window src/data/image.rs resamples (its
            centre-offset rounding and one scale for both axes): separates crop geometry from
            filter differences.
Reference weights: `f32` always; for f16/bf16 files also `rounded` (the model with its weights
rounded to that dtype), which leaves out the weight rounding itself.
"resize noise floor" is the difference between the pil and torch-aa references: two correct
resize implementations.

16-bit PNGs: PIL's convert('RGB') of mode I;16 clips to 0..255 instead of scaling, so the
reference decodes them as round(v / 257), like the Rust `image` crate. `<stem>_pil.png` is the
real JPEG decoded by PIL (libjpeg-turbo) and stored losslessly: its rows leave out JPEG decoder
differences.

Exit status: 0 if both gates pass, 1 if one fails, 2 if the binary fails.
  gate 1: squash mode, f32 weights, pil reference, resampled images: max(feat rel, logitrel) <=
          --threshold (0.05). With the default seed the pil and torch-aa references differ by 0.03
          from each other, ±1-level noise on 5-50% of the input values moves the features by
          0.012-0.040, and a one-pixel crop offset by 0.04-0.11.
  gate 2: exact images, every dtype against the reference with the same (rounded) weights, both
          modes: max rel <= --exact-threshold (1e-4; observed ~2e-6, while ±1 level on 5% of the
          input values already gives ~1e-2).
"""
import argparse
import copy
import json
import os
import shutil
import subprocess
import sys
import tempfile

import numpy as np
import torch
import torch.nn.functional as F
import torchvision
from PIL import Image
from safetensors import safe_open
from safetensors.torch import save_file

MEAN = (0.485, 0.456, 0.406)
STD = (0.229, 0.224, 0.225)
SIZE = 224
DEFAULT_IMAGE = "../shared/data/ISIC_0024310.jpg"


SCALED_DECODE = False  # --scaled-decode, set in main


def make_model(seed: int) -> torch.nn.Module:
    """Seeded random ResNet50 whose eval-mode BatchNorm is far from an identity.

    The BN running statistics are first calibrated (one train-mode pass, momentum=None, over 8
    random smooth 224x224 images) and then perturbed: mean += N(0, 0.2^2) * std, var *= U(0.5, 2),
    gamma ~ U(0.5, 1.5), beta ~ N(0, 0.1^2). Without the calibration (stats drawn around 0 / 1) or
    with small bn3 gammas, the pooled features of a random ResNet50 hardly depend on the image
    (cosine between different images > 0.99999, across-image spread ~1e-3 of the feature scale),
    which would make the comparison blind to preprocessing bugs.
    """
    torch.manual_seed(seed)
    g = torch.Generator().manual_seed(seed)
    model = torchvision.models.resnet50(weights=None)
    rng = np.random.default_rng(seed + 1)
    calib = torch.stack([normalize(torch.from_numpy(smooth_field(SIZE, SIZE, rng, 3)).permute(2, 0, 1).float())
                         for _ in range(8)])
    bns = [(n, m) for n, m in model.named_modules() if isinstance(m, torch.nn.BatchNorm2d)]
    for _, m in bns:
        m.reset_running_stats()
        m.momentum = None  # cumulative average: the stats of this one batch
    model.train()
    with torch.no_grad():
        model(calib)
        for _, m in bns:
            n = m.num_features
            m.momentum = 0.1
            m.running_mean.add_(torch.randn(n, generator=g) * 0.2 * m.running_var.sqrt())
            m.running_var.mul_(torch.rand(n, generator=g) * 1.5 + 0.5)
            m.weight.copy_(torch.rand(n, generator=g) + 0.5)
            m.bias.copy_(torch.randn(n, generator=g) * 0.1)
            m.num_batches_tracked.fill_(1000)
    return model.eval()


def smooth_field(h: int, w: int, rng: np.random.Generator, channels: int) -> np.ndarray:
    """Natural-ish image in [0,1]: sinusoids + blobs + mild noise."""
    y, x = np.mgrid[0:h, 0:w].astype(np.float64)
    out = np.zeros((h, w, channels))
    for c in range(channels):
        f = np.zeros((h, w))
        for _ in range(4):
            fx, fy = rng.uniform(0.5, 6, 2) / np.array([w, h])
            f += rng.uniform(0.2, 1) * np.sin(2 * np.pi * (fx * x + fy * y) + rng.uniform(0, 6.3))
        for _ in range(6):
            cx, cy, r = rng.uniform(0, w), rng.uniform(0, h), rng.uniform(10, 80)
            f += rng.uniform(-1.5, 1.5) * np.exp(-((x - cx) ** 2 + (y - cy) ** 2) / (2 * r * r))
        f += rng.normal(0, 0.08, (h, w))
        out[..., c] = (f - f.min()) / (f.max() - f.min())
    return out


def make_images(real: str, d: str, seed: int) -> list:
    """Writes the test images; returns their paths."""
    os.makedirs(d, exist_ok=True)
    rng = np.random.default_rng(seed)
    paths = []

    def save(arr, mode, name, **kw):
        p = os.path.join(d, name)
        (Image.fromarray(arr) if mode is None else Image.fromarray(arr, mode)).save(p, **kw)
        paths.append(p)

    u8 = lambda f: (f * 255).round().astype(np.uint8)
    u16 = lambda f: (f * 65535).round().astype(np.uint16)
    if real:
        dst = os.path.join(d, os.path.basename(real))
        shutil.copy(real, dst)
        paths.append(dst)
        stem = os.path.splitext(os.path.basename(real))[0]
        # the same JPEG decoded by PIL, stored losslessly: no decoder difference
        save(np.asarray(Image.open(real).convert("RGB")), "RGB", stem + "_pil.png")
    # resampled in both modes
    rgba = np.dstack([smooth_field(260, 500, rng, 3), np.clip(smooth_field(260, 500, rng, 1) * 1.5, 0, 1)])
    save(u8(rgba), "RGBA", "gen_rgba_500x260.png")  # alpha varies; dropped, not composited
    save(u8(smooth_field(400, 300, rng, 1)[..., 0]), "L", "gen_gray_300x400.jpg", quality=92)
    save(u16(smooth_field(450, 600, rng, 1)[..., 0]), None, "gen_gray16_600x450.png")
    # exact: no resampling in squash mode (224x224) or in crop mode (short side 256)
    save(u8(smooth_field(256, 320, rng, 3)), "RGB", "gen_rgb_320x256.png")
    save(u8(smooth_field(256, 256, rng, 1)[..., 0]), "L", "gen_gray_256x256.png")
    save(u8(smooth_field(224, 224, rng, 3)), "RGB", "gen_rgb_224x224.png")
    rgba = np.dstack([smooth_field(224, 224, rng, 3), smooth_field(224, 224, rng, 1)])
    save(u8(rgba), "RGBA", "gen_rgba_224x224.png")
    save(u16(smooth_field(224, 224, rng, 1)[..., 0]), None, "gen_gray16_224x224.png")
    return paths


def is_exact(size, mode: str) -> bool:
    """True when the mode's preprocessing does not resample this image (a pure copy/crop)."""
    return size == (SIZE, SIZE) if mode == "squash" else min(size) == 256


def load_rgb(path: str) -> Image.Image:
    im = Image.open(path)
    if im.mode in ("I;16", "I;16B", "I;16L", "I"):
        a = np.asarray(im).astype(np.float64)
        return Image.fromarray(np.clip(np.round(a / 257.0), 0, 255).astype(np.uint8), "L").convert("RGB")
    return im.convert("RGB")


def normalize(t: torch.Tensor) -> torch.Tensor:
    m = torch.tensor(MEAN).view(3, 1, 1)
    s = torch.tensor(STD).view(3, 1, 1)
    return (t - m) / s


def to_tensor(im: Image.Image) -> torch.Tensor:
    return torch.from_numpy(np.asarray(im, dtype=np.uint8).copy()).permute(2, 0, 1).float() / 255.0


def prep_pil_squash(im):
    return normalize(to_tensor(im.resize((SIZE, SIZE), Image.BILINEAR)))


def prep_pil_crop(im):
    from torchvision import transforms as T
    t = T.Compose([T.Resize(256, interpolation=T.InterpolationMode.BILINEAR), T.CenterCrop(SIZE)])
    return normalize(to_tensor(t(im)))


def prep_torch_aa(im):
    x = torch.from_numpy(np.asarray(im, dtype=np.uint8).copy()).permute(2, 0, 1).float()[None]
    y = F.interpolate(x, size=(SIZE, SIZE), mode="bilinear", antialias=True, align_corners=False)
    return normalize(y[0] / 255.0)


def prep_rust_geom(im):
    """The source window src/data/image.rs resamples in crop mode (f64::round = half away)."""
    w, h = im.size
    scale = round(SIZE * 256 / 224) / min(w, h)
    rw, rh = np.floor(w * scale), np.floor(h * scale)
    half_away = lambda v: np.floor(v + 0.5)
    left = half_away((rw - SIZE) / 2) / scale
    top = half_away((rh - SIZE) / 2) / scale
    side = SIZE / scale
    return normalize(to_tensor(im.resize((SIZE, SIZE), Image.BILINEAR, box=(left, top, left + side, top + side))))


def run_bin(binary, weights, img_dir, out, mode):
    cmd = [binary, "embed", "--weights", weights, "--images", img_dir, "--out", out,
           "--logits", "--resize", mode, "--strict"] + (["--scaled-decode"] if SCALED_DECODE else [])
    r = subprocess.run(cmd, capture_output=True, text=True)
    if r.returncode != 0:
        print("FAILED:", " ".join(cmd), "\n", r.stdout, r.stderr, file=sys.stderr)
        sys.exit(2)
    with safe_open(out, "pt") as f:
        ids = json.loads(f.metadata()["image_ids"])
        return ids, f.get_tensor("features").double(), f.get_tensor("logits").double()


def compare(ours, ref, rows):
    """Over `rows`: rel, min cosine, and min cosine after removing ref's across-image mean."""
    d = (ours - ref)[rows]
    rel = (d.abs().max() / ref.abs().max()).item()
    cos = F.cosine_similarity(ours[rows], ref[rows], dim=1).min().item()
    centre = ref.mean(0, keepdim=True)
    cosc = F.cosine_similarity((ours - centre)[rows], (ref - centre)[rows], dim=1).min().item()
    return rel, cos, cosc


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--bin", default="target/release/skinengine")
    ap.add_argument("--scaled-decode", action="store_true",
                    help="run embed with --scaled-decode (JPEGs decoded DCT-scaled; the default "
                         "decodes them at full size, as PIL does)")
    ap.add_argument("--image", default=DEFAULT_IMAGE,
                    help="a real JPEG to include ('' for none; default: %(default)s if it exists)")
    ap.add_argument("--threshold", type=float, default=0.05,
                    help="gate 1: max squash/f32/pil relative error on resampled images")
    ap.add_argument("--exact-threshold", type=float, default=1e-4,
                    help="gate 2: max relative error on images that are not resampled")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--keep", help="work in this dir and keep it (default: a removed temp dir)")
    ap.add_argument("--verbose", action="store_true", help="per-image relative errors")
    args = ap.parse_args()
    global SCALED_DECODE
    SCALED_DECODE = args.scaled_decode
    torch.set_num_threads(args.threads)
    if args.image == DEFAULT_IMAGE and not os.path.exists(args.image):
        print(f"note: {args.image} not found; generated images only", file=sys.stderr)
        args.image = ""
    if not os.path.exists(args.bin):
        sys.exit(f"binary not found: {args.bin} (build it with cargo build --release, or pass --bin)")

    tmp = args.keep or tempfile.mkdtemp(prefix="check_embed_")
    os.makedirs(tmp, exist_ok=True)
    try:
        model = make_model(args.seed)
        wfiles = {}
        for name, dt in (("f32", torch.float32), ("f16", torch.float16), ("bf16", torch.bfloat16)):
            m = copy.deepcopy(model).to(dt)
            sd = {k: v.contiguous() for k, v in m.state_dict().items()}
            wfiles[name] = os.path.join(tmp, f"w_{name}.safetensors")
            save_file(sd, wfiles[name])
        img_dir = os.path.join(tmp, "images")
        paths = make_images(args.image, img_dir, args.seed)
        stems = [os.path.splitext(os.path.basename(p))[0] for p in paths]
        pils = [load_rgb(p) for p in paths]

        refs = {  # (mode, ref) -> normalised [N,3,224,224]
            ("squash", "pil"): [prep_pil_squash(im) for im in pils],
            ("squash", "torch-aa"): [prep_torch_aa(im) for im in pils],
            ("crop", "pil"): [prep_pil_crop(im) for im in pils],
            ("crop", "rust-geom"): [prep_rust_geom(im) for im in pils],
        }
        keys = list(refs)
        batch = torch.cat([torch.stack(refs[k]) for k in keys])
        n = len(paths)

        def forward(state_dict):
            m = torchvision.models.resnet50(weights=None)
            m.load_state_dict({k: (v.float() if v.is_floating_point() else v) for k, v in state_dict.items()})
            m.eval()
            feats = {}
            m.fc.register_forward_pre_hook(lambda mod, inp: feats.__setitem__("f", inp[0].detach().clone()))
            with torch.inference_mode():
                logits = m(batch)
            out = {}
            for i, k in enumerate(keys):
                out[k] = (feats["f"][i * n:(i + 1) * n].double(), logits[i * n:(i + 1) * n].double())
            return out

        ref_out = {"f32": forward(model.state_dict())}
        for name, dt in (("f16", torch.float16), ("bf16", torch.bfloat16)):
            ref_out[name] = forward(copy.deepcopy(model).to(dt).state_dict())

        sizes = [im.size for im in pils]
        rows = {m: [i for i in range(n) if not is_exact(sizes[i], m)] for m in ("squash", "crop")}
        exact = {m: [i for i in range(n) if is_exact(sizes[i], m)] for m in ("squash", "crop")}
        for m in ("squash", "crop"):
            print(f"{m}: resampled: {', '.join(stems[i] for i in rows[m])}; "
                  f"exact: {', '.join(stems[i] for i in exact[m])}")
        a_, b_ = ref_out["f32"][("squash", "pil")][0], ref_out["f32"][("squash", "torch-aa")][0]
        floor = compare(b_, a_, rows["squash"])[0]
        print(f"resize noise floor: torchvision features, PIL vs torch antialiased resize: rel {floor:.2e}")
        print(f"{'weights':7} {'mode':6} {'ref':9} {'w':7} | {'feat rel':>8} {'cos':>8} {'cos_c':>8} | "
              f"{'logitrel':>8} {'cos':>8} | {'exact rel':>9} | worst resampled image (feat rel)")
        gate, exact_worst, verbose_lines = None, 0.0, []
        for wname in ("f32", "f16", "bf16"):
            for mode in ("squash", "crop"):
                ids, feat, logit = run_bin(args.bin, wfiles[wname], img_dir,
                                           os.path.join(tmp, f"out_{wname}_{mode}.safetensors"), mode)
                if sorted(ids) != sorted(stems):
                    print(f"image_ids mismatch: {ids} vs {stems}", file=sys.stderr)
                    sys.exit(2)
                order = [ids.index(s) for s in stems]
                feat, logit = feat[order], logit[order]
                for ref in [r for (m_, r) in keys if m_ == mode]:
                    for wref in (["f32"] if wname == "f32" else ["f32", wname]):
                        rf, rl = ref_out[wref][(mode, ref)]
                        fr, fc, fcc = compare(feat, rf, rows[mode])
                        lr, lc, _ = compare(logit, rl, rows[mode])
                        per_f = ((feat - rf).abs().max(1).values / rf.abs().max()).tolist()
                        per_l = ((logit - rl).abs().max(1).values / rl.abs().max()).tolist()
                        ex = max(max(per_f[i], per_l[i]) for i in exact[mode])
                        if wref == wname:
                            exact_worst = max(exact_worst, ex)
                        worst = max(rows[mode], key=lambda i: per_f[i])
                        wlabel = "f32" if wref == "f32" else "rounded"
                        print(f"{wname:7} {mode:6} {ref:9} {wlabel:7} | {fr:8.2e} {fc:8.6f} {fcc:8.6f} | "
                              f"{lr:8.2e} {lc:8.6f} | {ex:9.2e} | {stems[worst]} ({per_f[worst]:.1e})")
                        verbose_lines.append(f"{wname} {mode} {ref} w={wlabel}: " + ", ".join(
                            f"{stems[i]} {per_f[i]:.1e}" for i in range(n)))
                        if (wname, mode, ref, wref) == ("f32", "squash", "pil", "f32"):
                            gate = max(fr, lr)
        if args.verbose:
            print("per-image feature rel (max |diff| / max |ref|):")
            print("\n".join("  " + line for line in verbose_lines))
        ok1 = gate <= args.threshold
        ok2 = exact_worst <= args.exact_threshold
        print(f"gate 1: squash/f32/pil, resampled images: max(feat rel, logit rel) = {gate:.2e} "
              f"{'<=' if ok1 else '>'} {args.threshold:.2e} -> {'PASS' if ok1 else 'FAIL'}")
        print(f"gate 2: non-resampled images, all dtypes vs same-weights reference, both modes: "
              f"max rel = {exact_worst:.2e} {'<=' if ok2 else '>'} {args.exact_threshold:.2e} "
              f"-> {'PASS' if ok2 else 'FAIL'}")
        sys.exit(0 if ok1 and ok2 else 1)
    finally:
        if not args.keep:
            shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
