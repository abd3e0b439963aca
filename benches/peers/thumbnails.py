#!/usr/bin/env python3
"""Thumbnails side by side on one core each: a corpus of 12 MP and 2 MP (1080p) JPEG photos with
natural-image texture → widths 1024, 512, 128 at quality 80, as JPEG and separately as WebP.
Sluice (`sluice replay` of one S3 event naming every photo, RAYON_NUM_THREADS=1), Pillow (with and
without `draft`), sharp (npm, concurrency 1) and `vipsthumbnail` (Debian libvips-tools) when
installed. Reports images/s, peak RSS and quality: the mean structural similarity (SSIM, Wang et
al. 2004: 11×11 Gaussian window of σ 1.5 on luma, K1 0.01, K2 0.03) of every rendition a tool
wrote against a reference made here from the photo's full decode, resized with Pillow's Lanczos3
and not compressed — speed bought with blur shows as a lower SSIM. Every tool runs under
`taskset -c 0`.

Usage: thumbnails.py SLUICE_BIN WORKDIR NODE_MODULES [PHOTOS_PER_SIZE] [RUNS]
Prints (and appends to $SLUICE_PEERS_OUT) a markdown table per format and size.
"""
import io
import json
import os
import shutil
import subprocess
import sys
import time

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view
from PIL import Image

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from common import alternate, emit, table  # noqa: E402

WIDTHS = (1024, 512, 128)


def corpus(store, n):
    """n photos of each size, 2–5 MB for 12 MP: smooth noise, gradients and grain."""
    photos = []
    os.makedirs(store, exist_ok=True)
    for size_name, (w, h) in (("12mp", (4000, 3000)), ("2mp", (1920, 1080))):
        for i in range(n):
            name = f"{size_name}-{i}.jpg"
            path = os.path.join(store, name)
            if not os.path.exists(path):
                base = Image.effect_noise((w // 8, h // 8), 60 + 10 * i).resize((w, h), Image.BICUBIC)
                grad = Image.linear_gradient("L").rotate(30 * i).resize((w, h))
                grain = Image.effect_noise((w, h), 30)
                Image.merge("RGB", (base, grad, Image.blend(grain, base, 0.6))).save(path, quality=92)
            photos.append((size_name, name, path))
    return photos


def _window():
    x = np.arange(11) - 5
    g = np.exp(-(x ** 2) / (2 * 1.5 ** 2))
    return g / g.sum()


def _blur(img, g):
    """The 11×11 Gaussian-weighted mean around each pixel (valid positions only)."""
    v = sliding_window_view(img, 11, axis=0) @ g
    return sliding_window_view(v, 11, axis=1) @ g


def ssim(a, b):
    """Mean SSIM of two same-sized grey images (arrays of 0–255)."""
    a, b = a.astype(np.float64), b.astype(np.float64)
    g = _window()
    c1, c2 = (0.01 * 255) ** 2, (0.03 * 255) ** 2
    mu_a, mu_b = _blur(a, g), _blur(b, g)
    s_aa = _blur(a * a, g) - mu_a ** 2
    s_bb = _blur(b * b, g) - mu_b ** 2
    s_ab = _blur(a * b, g) - mu_a * mu_b
    m = ((2 * mu_a * mu_b + c1) * (2 * s_ab + c2)) / ((mu_a ** 2 + mu_b ** 2 + c1) * (s_aa + s_bb + c2))
    return float(m.mean())


_REFERENCES = {}


def reference(path, width):
    """The photo decoded whole and resized to `width` with Lanczos3, as grey (luma) pixels."""
    key = (path, width)
    if key not in _REFERENCES:
        im = Image.open(path).convert("RGB")
        h = round(im.height * width / im.width)
        _REFERENCES[key] = np.asarray(im.resize((width, h), Image.LANCZOS).convert("L"))
    return _REFERENCES[key]


def quality(group, rendition):
    """Mean SSIM over every photo of `group` and every width, of the file `rendition(photo name,
    width)` against the reference (both cut to the smaller size, should heights round apart)."""
    scores = []
    for _, name, path in group:
        for w in WIDTHS:
            got = np.asarray(Image.open(rendition(name, w)).convert("L"))
            ref = reference(path, w)
            h, wd = min(got.shape[0], ref.shape[0]), min(got.shape[1], ref.shape[1])
            scores.append(ssim(got[:h, :wd], ref[:h, :wd]))
    return sum(scores) / len(scores)


def timed(cmd, env=None):
    """(seconds, peak RSS in MiB) of one command on core 0."""
    t = time.perf_counter()
    out = subprocess.run(["/usr/bin/time", "-f", "%M", "taskset", "-c", "0", *cmd],
                         capture_output=True, text=True, env=env)
    took = time.perf_counter() - t
    if out.returncode != 0:
        raise RuntimeError(f"{cmd[0]} failed: {out.stderr[-2000:]}")
    rss = int(out.stderr.strip().splitlines()[-1]) / 1024
    return took, rss


def sluice(bin_, work, photos, fmt):
    store = os.path.join(work, "store")
    bucket = os.path.join(store, "photos")
    os.makedirs(bucket, exist_ok=True)
    for _, name, path in photos:
        dst = os.path.join(bucket, name)
        if not os.path.exists(dst):
            os.link(path, dst)
    cfg = os.path.join(work, f"thumbs-{fmt}.toml")
    variants = ", ".join(f'{{ name = "w{w}", width = {w} }}' for w in WIDTHS)
    with open(cfg, "w") as f:
        f.write(f'name = "thumbs"\n[input]\nformat = "image"\n[[stage]]\ntype = "resize"\n'
                f'format = "{fmt}"\nquality = 80\nvariants = [{variants}]\n[output]\nuri = "s3://out/{fmt}/"\n')
    event = os.path.join(work, "event.json")
    args = [bin_, "event", "s3", "--bucket", "photos", "--store", store]
    for _, name, _ in photos:
        args += ["--key", name]
    with open(event, "w") as f:
        subprocess.run(args, check=True, stdout=f)
    env = {**os.environ, "RAYON_NUM_THREADS": "1"}
    return timed([bin_, "replay", cfg, event, "--store", store], env=env)


PILLOW = r'''
import os, sys
from PIL import Image
fmt, draft, out, paths = sys.argv[1], sys.argv[2] == "1", sys.argv[3], sys.argv[4:]
ext = ".jpg" if fmt == "JPEG" else ".webp"
for p in paths:
    im = Image.open(p)
    if draft:
        im.draft("RGB", (1024, 1024))
    im = im.convert("RGB")
    stem = os.path.splitext(os.path.basename(p))[0]
    for w in (1024, 512, 128):
        dst = os.path.join(out, str(w), stem + ext)
        im.resize((w, round(im.height * w / im.width)), Image.LANCZOS).save(dst, fmt, quality=80)
'''

SHARP = r'''
const sharp = require("sharp");
sharp.concurrency(1);
sharp.cache(false);
const path = require("path");
const [fmt, out, ...paths] = process.argv.slice(1);
const ext = fmt === "jpeg" ? ".jpg" : ".webp";
(async () => {
  for (const p of paths) {
    const src = sharp(p);
    const stem = path.basename(p, path.extname(p));
    await Promise.all([1024, 512, 128].map((w) =>
      src.clone().resize({ width: w }).toFormat(fmt, { quality: 80 })
        .toFile(path.join(out, String(w), stem + ext))));
  }
})();
'''


def main():
    bin_, work, node_modules = sys.argv[1:4]
    n = int(sys.argv[4]) if len(sys.argv) > 4 else 3
    runs = int(sys.argv[5]) if len(sys.argv) > 5 else 3
    photos = corpus(os.path.join(work, "corpus"), n)
    mb = {s: sum(os.path.getsize(p) for k, _, p in photos if k == s) / len([1 for k, _, _ in photos if k == s]) / 1e6
          for s in ("12mp", "2mp")}
    vips = shutil.which("vipsthumbnail")
    stem = lambda name: os.path.splitext(name)[0]  # noqa: E731
    for fmt in ("jpeg", "webp"):
        ext = ".jpg" if fmt == "jpeg" else ".webp"

        def out_dir(tool):
            d = os.path.join(work, "out", fmt, tool)
            for w in WIDTHS:
                os.makedirs(os.path.join(d, str(w)), exist_ok=True)
            return d

        # Each tool's renditions, by photo and width, where it wrote them.
        written = {
            "Sluice": lambda name, w: os.path.join(work, "store", "out", fmt, f"w{w}", stem(name) + ext),
            "Pillow": lambda name, w: os.path.join(out_dir("pillow"), str(w), stem(name) + ext),
            "Pillow with draft": lambda name, w: os.path.join(out_dir("pillow-draft"), str(w), stem(name) + ext),
            "sharp (concurrency 1)": lambda name, w: os.path.join(out_dir("sharp"), str(w), stem(name) + ext),
            "vipsthumbnail": lambda name, w: os.path.join(out_dir("vips"), f"{stem(name)}-{w}{ext}"),
        }
        tools = {
            "Sluice": lambda group: sluice(bin_, work, group, fmt),
            "Pillow": lambda group: timed([sys.executable, "-c", PILLOW, fmt.upper(), "0", out_dir("pillow"),
                                           *[p for _, _, p in group]]),
            "Pillow with draft": lambda group: timed([sys.executable, "-c", PILLOW, fmt.upper(), "1",
                                                      out_dir("pillow-draft"), *[p for _, _, p in group]]),
        }
        if os.path.isdir(os.path.join(node_modules, "sharp")):
            tools["sharp (concurrency 1)"] = lambda group: timed(
                ["node", "-e", SHARP, fmt, out_dir("sharp"), *[p for _, _, p in group]],
                env={**os.environ, "NODE_PATH": node_modules})
        if vips:
            def vt(group):
                out = out_dir("vips")
                total, rss = 0.0, 0.0
                for w in WIDTHS:
                    t, r = timed([vips, "--size", str(w), "-o", f"{out}/%s-{w}{ext}[Q=80]",
                                  *[p for _, _, p in group]], env={**os.environ, "VIPS_CONCURRENCY": "1"})
                    total, rss = total + t, max(rss, r)
                return total, rss
            tools["vipsthumbnail"] = vt
        for size, label in (("12mp", "12 MP"), ("2mp", "2 MP (1080p)")):
            group = [p for p in photos if p[0] == size]
            results = alternate({name: (lambda run=run: run(group)) for name, run in tools.items()}, runs)
            # Quality of what each tool wrote in its last run.
            for name, (med, times, rss) in list(results.items()):
                try:
                    q = quality(group, written[name])
                except (OSError, ValueError) as e:
                    print(f"  {name}: SSIM not measured: {e}", file=sys.stderr)
                    q = None
                results[name] = (med, times, (rss, q))
            emit(table(
                f"Thumbnails, {label} JPEG → widths {', '.join(map(str, WIDTHS))}, {fmt.upper()} q80",
                f"{len(group)} photos of ≈ {mb[size]:.1f} MB; one core each (`taskset -c 0`, one thread); "
                "each run a whole process over every photo (start-up included); median of the runs, run in turns. "
                "SSIM: the mean structural similarity of every rendition against the photo's full decode resized "
                "with Lanczos3 (uncompressed), on luma; 1 is identical.",
                results,
                [("median", lambda m, _: f"{m * 1000:.0f} ms"),
                 ("images/s", lambda m, _, k=len(group): f"{k / m:.1f}"),
                 ("SSIM", lambda _, x: f"{x[1]:.4f}" if x and x[1] is not None else ""),
                 ("peak RSS", lambda _, x: f"{x[0]:.0f} MiB" if x and x[0] else "")]))
    if not vips:
        print("vipsthumbnail: not installed (apt install libvips-tools to compare)", file=sys.stderr)


if __name__ == "__main__":
    main()
