"""Photographs and textures with holes, for the classical engine's quality benchmark
(`clearpaint bench --workload classical-photos`, issue 25).

Writes fixtures/photos/: NAME.png (ground truth, 192x192), NAME_mask.png (white = hole, about
10% of the pixels: two blobs and a stroke that crosses edges), and the baselines filled by
OpenCV on the same inputs: NAME_telea.png (cv2.inpaint, INPAINT_TELEA, radius 3: IOPaint's cv2
engine), NAME_fsr_fast.png and NAME_fsr_best.png (opencv-contrib xphoto.inpaint, frequency
selective reconstruction). The images are scikit-image's sample data (shipped inside the
package, no download).

    python3 -m venv /tmp/cv && /tmp/cv/bin/pip install numpy scikit-image==0.26.0 \
        opencv-contrib-python-headless==5.0.0.93
    /tmp/cv/bin/python make_photo_inpaint_fixtures.py
"""

import os

import cv2
import numpy as np
import skimage.data as data

SIZE = 192
OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "fixtures", "photos")

# (name, loader, kind): photos are what the targets are about; textures must stay good.
IMAGES = [
    ("astronaut", data.astronaut, "photo"),
    ("coffee", data.coffee, "photo"),
    ("chelsea", data.chelsea, "photo"),
    ("rocket", data.rocket, "photo"),
    ("camera", data.camera, "photo"),
    ("coins", data.coins, "photo"),
    ("brick", data.brick, "texture"),
    ("grass", data.grass, "texture"),
    ("gravel", data.gravel, "texture"),
]


def square(img):
    """The centre square, resized to SIZE x SIZE (area filter), as 8-bit RGB."""
    if img.ndim == 2:
        img = np.stack([img] * 3, axis=-1)
    h, w = img.shape[:2]
    s = min(h, w)
    y, x = (h - s) // 2, (w - s) // 2
    crop = np.ascontiguousarray(img[y : y + s, x : x + s, :3])
    return cv2.resize(crop, (SIZE, SIZE), interpolation=cv2.INTER_AREA)


def hole(seed):
    """About 10% of the pixels: two ellipses and a thick stroke, placed by `seed`."""
    rng = np.random.default_rng(seed)
    m = np.zeros((SIZE, SIZE), np.uint8)
    for _ in range(2):
        c = tuple(int(v) for v in rng.integers(40, SIZE - 40, 2))
        axes = tuple(int(v) for v in rng.integers(15, 26, 2))
        cv2.ellipse(m, c, axes, float(rng.integers(0, 180)), 0, 360, 255, -1)
    p0 = tuple(int(v) for v in rng.integers(20, SIZE - 20, 2))
    p1 = tuple(int(v) for v in rng.integers(20, SIZE - 20, 2))
    cv2.line(m, p0, p1, 255, 9)
    return m


def main():
    os.makedirs(OUT, exist_ok=True)
    for i, (name, load, kind) in enumerate(IMAGES):
        rgb = square(load())
        mask = hole(1000 + i)
        bgr = cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR)
        masked = bgr.copy()
        masked[mask > 0] = 0
        cv2.imwrite(os.path.join(OUT, f"{name}.png"), bgr)
        cv2.imwrite(os.path.join(OUT, f"{name}_mask.png"), mask)
        telea = cv2.inpaint(masked, mask, 3, cv2.INPAINT_TELEA)
        cv2.imwrite(os.path.join(OUT, f"{name}_telea.png"), telea)
        valid = np.where(mask > 0, 0, 255).astype(np.uint8)  # xphoto: non-zero = known
        for algo, tag in [
            (cv2.xphoto.INPAINT_FSR_FAST, "fsr_fast"),
            (cv2.xphoto.INPAINT_FSR_BEST, "fsr_best"),
        ]:
            dst = np.zeros_like(masked)
            cv2.xphoto.inpaint(masked, valid, dst, algo)
            cv2.imwrite(os.path.join(OUT, f"{name}_{tag}.png"), dst)
        print(f"{name:10} {kind:8} hole {100 * (mask > 0).mean():4.1f}%")


if __name__ == "__main__":
    main()
