#!/usr/bin/env python3
"""Renditions checked with a second library (Pillow): every committed fixture image through a
resize pipeline writing JPEG, PNG and WebP; Pillow must open each output, find the format its name
says, the exact size, upright pixels for every EXIF orientation, and no EXIF orientation tag left.

Usage: check_images.py SLUICE_BIN
"""
import json
import os
import shutil
import subprocess
import sys
import tempfile

from PIL import Image

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
IMAGES = os.path.join(ROOT, "fixtures", "images")
GOOD = {  # name → upright size
    **{f"orient-{o}.jpg": (48, 64) for o in range(1, 9)},
    "cmyk.jpg": (480, 640), "progressive.jpg": (480, 640), "rgba16.png": (40, 30),
    "palette.png": (480, 640), "animated.gif": (40, 30), "lossy.webp": (480, 640),
    "lossless.webp": (480, 640), "photo.tif": (60, 80), "photo.bmp": (60, 80),
}
BAD = ["truncated.jpg", "bomb.png", "not-an-image.jpg"]


def main():
    sluice = sys.argv[1]
    work = tempfile.mkdtemp()
    try:
        bucket = os.path.join(work, "store", "photos")
        os.makedirs(bucket)
        for name in list(GOOD) + BAD:
            shutil.copy(os.path.join(IMAGES, name), bucket)
        event = os.path.join(work, "event.json")
        args = [sluice, "event", "s3", "--bucket", "photos", "--store", os.path.join(work, "store")]
        for name in list(GOOD) + BAD:
            args += ["--key", name]
        with open(event, "w") as f:
            subprocess.run(args, check=True, stdout=f)
        checked = 0
        for fmt, ext, pil in (("jpeg", "jpg", "JPEG"), ("png", "png", "PNG"), ("webp", "webp", "WEBP")):
            cfg = os.path.join(work, f"{fmt}.toml")
            with open(cfg, "w") as f:
                f.write(f'name = "check"\n[input]\nformat = "image"\n[[stage]]\ntype = "resize"\n'
                        f'format = "{fmt}"\nvariants = [{{ name = "w24", width = 24 }}, '
                        f'{{ name = "sq", width = 16, height = 16, fit = "cover" }}]\n'
                        f'[output]\nuri = "s3://out/{fmt}/"\n')
            out = subprocess.run([sluice, "replay", cfg, event, "--store", os.path.join(work, "store"), "--json"],
                                 check=True, capture_output=True, text=True)
            summary = json.loads(out.stdout.strip().splitlines()[-1])
            assert summary["rejected"] == len(BAD), summary
            assert summary["records_out"] == 2 * len(GOOD), summary
            for name, (w, h) in GOOD.items():
                stem = name.rsplit(".", 1)[0]
                path = os.path.join(work, "store", "out", fmt, "w24", f"{stem}.{ext}")
                with Image.open(path) as im:
                    assert im.format == pil, (path, im.format)
                    assert im.size == (24, round(h * 24 / w)), (path, im.size)
                    assert im.getexif().get(0x0112) in (None, 1), path
                    if name.startswith("orient-"):
                        r, g, b = im.convert("RGB").getpixel((1, 1))
                        assert r > 150 and g < 90 and b < 90, (path, (r, g, b))
                with Image.open(os.path.join(work, "store", "out", fmt, "sq", f"{stem}.{ext}")) as im:
                    assert im.size == (16, 16), (name, im.size)
                checked += 2
        print(f"images ok: {checked} renditions (JPEG, PNG, WebP) opened by Pillow with exact sizes, upright; "
              f"{len(BAD)} bad files rejected each time")
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
