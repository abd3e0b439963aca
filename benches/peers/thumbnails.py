#!/usr/bin/env python3
"""Thumbnails side by side on one core each: a corpus of 12 MP and 2 MP (1080p) JPEG photos with
natural-image texture → widths 1024, 512, 128 at quality 80, as JPEG and separately as WebP.
Sluice (`sluice replay` of one S3 event naming every photo, RAYON_NUM_THREADS=1), Pillow (with and
without `draft`), sharp (npm, concurrency 1) and `vipsthumbnail` (Debian libvips-tools) when
installed. Reports images/s and peak RSS; every tool runs under `taskset -c 0`.

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
import io, sys
from PIL import Image
fmt, draft, paths = sys.argv[1], sys.argv[2] == "1", sys.argv[3:]
for p in paths:
    im = Image.open(p)
    if draft:
        im.draft("RGB", (1024, 1024))
    im = im.convert("RGB")
    for w in (1024, 512, 128):
        out = io.BytesIO()
        im.resize((w, round(im.height * w / im.width)), Image.LANCZOS).save(out, fmt, quality=80)
'''

SHARP = r'''
const sharp = require("sharp");
sharp.concurrency(1);
sharp.cache(false);
const [fmt, ...paths] = process.argv.slice(1);
(async () => {
  for (const p of paths) {
    const src = sharp(p);
    await Promise.all([1024, 512, 128].map((w) =>
      src.clone().resize({ width: w }).toFormat(fmt, { quality: 80 }).toBuffer()));
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
    for fmt in ("jpeg", "webp"):
        tools = {
            "Sluice": lambda group: sluice(bin_, work, group, fmt),
            "Pillow": lambda group: timed([sys.executable, "-c", PILLOW, fmt.upper(), "0", *[p for _, _, p in group]]),
            "Pillow with draft": lambda group: timed([sys.executable, "-c", PILLOW, fmt.upper(), "1", *[p for _, _, p in group]]),
        }
        if os.path.isdir(os.path.join(node_modules, "sharp")):
            tools["sharp (concurrency 1)"] = lambda group: timed(
                ["node", "-e", SHARP, fmt, *[p for _, _, p in group]], env={**os.environ, "NODE_PATH": node_modules})
        if vips:
            def vt(group):
                out = os.path.join(work, "vips")
                os.makedirs(out, exist_ok=True)
                total, rss = 0.0, 0.0
                for w in WIDTHS:
                    t, r = timed([vips, "--size", str(w), "-o", f"{out}/%s-{w}.{'jpg' if fmt == 'jpeg' else 'webp'}[Q=80]",
                                  *[p for _, _, p in group]], env={**os.environ, "VIPS_CONCURRENCY": "1"})
                    total, rss = total + t, max(rss, r)
                return total, rss
            tools["vipsthumbnail"] = vt
        for size, label in (("12mp", "12 MP"), ("2mp", "2 MP (1080p)")):
            group = [p for p in photos if p[0] == size]
            results = alternate({name: (lambda run=run: run(group)) for name, run in tools.items()}, runs)
            emit(table(
                f"Thumbnails, {label} JPEG → widths {', '.join(map(str, WIDTHS))}, {fmt.upper()} q80",
                f"{len(group)} photos of ≈ {mb[size]:.1f} MB; one core each (`taskset -c 0`, one thread); "
                "each run a whole process over every photo (start-up included); median of the runs, run in turns.",
                results,
                [("median", lambda m, _: f"{m * 1000:.0f} ms"),
                 ("images/s", lambda m, _, k=len(group): f"{k / m:.1f}"),
                 ("peak RSS", lambda _, rss: f"{rss:.0f} MiB" if rss else "")]))
    if not vips:
        print("vipsthumbnail: not installed (apt install libvips-tools to compare)", file=sys.stderr)


if __name__ == "__main__":
    main()
