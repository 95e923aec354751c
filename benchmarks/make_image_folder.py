"""A folder of "your own images" made from CIFAR-10 test images, to try `data.name=folder` on realistic files.

    python benchmarks/make_image_folder.py OUT [--per-class 200] [--broken]

Writes OUT/<class>/NNNN.<ext>: each image upscaled to one of several sizes and aspect ratios (32x32 up to
96x64) with Pillow, in PNG, JPEG, WebP and BMP in turn. With `--broken` it adds what real folders hold: a
truncated PNG, a text file named .jpg, a notes.txt, an empty hidden file and a symlink leading outside OUT.
CIFAR-10 is read from $VAEGAN_DATA as `vaegan train` reads it.
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path

from PIL import Image

from vaegan.config import DataConfig
from vaegan.data import load_split

SIZES = [(32, 32), (48, 48), (96, 64), (40, 70), (64, 96), (33, 35)]
SUFFIXES = [".png", ".jpg", ".webp", ".bmp"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("out", type=Path)
    parser.add_argument("--per-class", type=int, default=200)
    parser.add_argument("--broken", action="store_true")
    args = parser.parse_args()
    test = load_split(DataConfig(name="cifar10"), "test", 0)
    for label, name in enumerate(test.class_names):
        folder = args.out / name
        folder.mkdir(parents=True, exist_ok=True)
        members = test.images[test.labels == label][: args.per_class]
        for i, pixels in enumerate(members):
            image = Image.fromarray(pixels.permute(1, 2, 0).numpy()).resize(SIZES[i % len(SIZES)], Image.BICUBIC)
            image.save(folder / f"{i:04d}{SUFFIXES[i % len(SUFFIXES)]}")
    if args.broken:
        cut = (args.out / "cat" / "0000.png").read_bytes()
        (args.out / "cat" / "truncated.png").write_bytes(cut[: len(cut) // 3])
        (args.out / "dog" / "text.jpg").write_text("not a JPEG")
        (args.out / "dog" / "notes.txt").write_text("where these came from")
        (args.out / "ship" / ".DS_Store").write_bytes(b"")
        outside = args.out.parent / f"{args.out.name}-outside.png"
        Image.new("RGB", (32, 32)).save(outside)
        os.symlink(outside.absolute(), args.out / "ship" / "outside.png")
    print(f"wrote {sum(1 for _ in args.out.rglob('*.*'))} files into {args.out}")


if __name__ == "__main__":
    main()
