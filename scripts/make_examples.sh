#!/usr/bin/env bash
# Remake the README's before/after pictures with the shipped default model, using exactly the commands
# listed in the README. Outputs go to docs/images/.
set -euo pipefail
cd "$(dirname "$0")/.."
OUT=docs/images
mkdir -p "$OUT"
P="palette"
$P colorize examples/grace_hopper_gray.jpg -o "$OUT/grace_hopper_colorized.png" --seed 0 --overwrite --quiet
TMP=$(mktemp -d)
trap 'rm -rf "$TMP"' EXIT
python -c "from PIL import Image; Image.open('examples/chelsea.png').convert('L').save('$TMP/chelsea_gray.png')"
$P colorize "$TMP/chelsea_gray.png" -n 3 -o "$TMP/colorized" --seed 0 --overwrite --quiet
$P inpaint examples/chelsea.png --mask examples/chelsea_mask.png -o "$OUT/chelsea_inpainted.png" --seed 0 --overwrite --quiet
$P uncrop examples/astronaut_256.png --direction right -o "$OUT/astronaut_uncropped.png" --seed 0 --overwrite --quiet
$P restore examples/coffee_q10.jpg -o "$OUT/coffee_restored.png" --seed 0 --overwrite --quiet
$P panorama examples/astronaut_256.png --steps 8 -o "$OUT/astronaut_panorama.png" --seed 0 --overwrite --quiet
TMP="$TMP" python - <<'PY'
import os
from PIL import Image, ImageDraw

def pair(before, after, out, label_a="input", label_b="output"):
    a, b = Image.open(before).convert("RGB"), Image.open(after).convert("RGB")
    h = 256
    a = a.resize((round(a.width * h / a.height), h), Image.Resampling.LANCZOS)
    b = b.resize((round(b.width * h / b.height), h), Image.Resampling.LANCZOS)
    canvas = Image.new("RGB", (a.width + b.width + 8, h + 20), "white")
    canvas.paste(a, (0, 20)); canvas.paste(b, (a.width + 8, 20))
    d = ImageDraw.Draw(canvas)
    d.text((4, 4), label_a, fill="black"); d.text((a.width + 12, 4), label_b, fill="black")
    canvas.save(out)

def masked(image, mask):
    img, m = Image.open(image).convert("RGB"), Image.open(mask).convert("L")
    white = Image.new("RGB", img.size, (255, 255, 255))
    return Image.composite(white, img, m)

O = "docs/images"
masked("examples/chelsea.png", "examples/chelsea_mask.png").save(f"{O}/chelsea_masked.png")
pair("examples/grace_hopper_gray.jpg", f"{O}/grace_hopper_colorized.png", f"{O}/colorize.png")

def row(paths, out, labels):
    ims = [Image.open(p).convert("RGB") for p in paths]
    h = 192
    ims = [im.resize((round(im.width * h / im.height), h), Image.Resampling.LANCZOS) for im in ims]
    canvas = Image.new("RGB", (sum(im.width for im in ims) + 8 * (len(ims) - 1), h + 20), "white")
    d, x = ImageDraw.Draw(canvas), 0
    for im, label in zip(ims, labels):
        canvas.paste(im, (x, 20)); d.text((x + 4, 4), label, fill="black"); x += im.width + 8
    canvas.save(out, quality=90)

T = os.environ["TMP"]
row([f"{T}/chelsea_gray.png"] + [f"{T}/colorized/chelsea_gray_colorized_s{k}.png" for k in range(3)],
    f"{O}/colorize_samples.jpg", ["input", "-n 3: sample 0 (most likely)", "sample 1", "sample 2"])
pair(f"{O}/chelsea_masked.png", f"{O}/chelsea_inpainted.png", f"{O}/inpaint.png", "input + mask (white)")
pair("examples/astronaut_256.png", f"{O}/astronaut_uncropped.png", f"{O}/uncrop.png")
pair("examples/coffee_q10.jpg", f"{O}/coffee_restored.png", f"{O}/restore.png", "JPEG quality 10")
pair("examples/astronaut_256.png", f"{O}/astronaut_panorama.png", f"{O}/panorama.png")
print("pictures in", O)
PY
