"""The synthetic camera: how a rendered scene becomes a photo.

`_photograph` warps the scene into the photo frame of a visit's pose, then applies
lighting in linear light (exposure, gradient, vignetting, white balance, an optional strong
light from `LIGHT_CASTS`, glare), optics (defocus blur, anti-aliasing) and the sensor (shot
and read noise, luminance at full and chroma at half resolution) before sRGB encoding.
"""

from __future__ import annotations

import math

import cv2
import numpy as np

from .fields import _translation
from .scene import _Pose, _Scene
from .skin import _srgb_lut
from .spec import SeriesSpec

# ---------------------------------------------------------------------------------------------
# Camera: lighting, optics, sensor


#: Strong lights a follow-up visit may be photographed under (``SeriesSpec.light_casts``):
#: per-channel gains in linear light (white balance times exposure) and an additive veil
#: of flare that washes the photo out.
LIGHT_CASTS: dict[str, tuple[tuple[float, float, float], float]] = {
    "tungsten": ((1.35, 1.0, 0.62), 0.0),
    "fluorescent": ((0.92, 1.08, 1.04), 0.0),
    "shade": ((0.70, 0.80, 1.02), 0.0),
    "flash": ((1.45, 1.45, 1.5), 0.0),
    "washed-out": ((0.72, 0.8, 0.95), 0.09),
    "+1.5 EV": ((2.83, 2.83, 2.83), 0.0),
    "-1.5 EV": ((0.354, 0.354, 0.354), 0.0),
}


def _photograph(
    scene: _Scene, scene_img: np.ndarray, pose: _Pose, rng: np.random.Generator, spec: SeriesSpec,
    *, light: str | None = None,
) -> np.ndarray:
    w, h = spec.image_size
    cv, lv = spec.camera_variation, spec.lighting_variation
    sr = scene.scene_rect
    hs = pose.h @ _translation(sr[0], sr[1])
    img = cv2.warpPerspective(
        scene_img, hs, (w, h), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE
    )
    img = img.astype(np.float32)
    # Illumination in linear light: exposure, gradient, vignetting, white balance.
    gain = 1.0 + rng.uniform(-0.25, 0.25) * lv
    grad = rng.uniform(0.0, 0.2) * lv
    gdir = rng.uniform(0, 2 * math.pi)
    vig = 0.10 + rng.uniform(0.0, 0.15) * lv
    temp = rng.uniform(-1, 1) * lv
    wb = np.array([1 + 0.12 * temp, 1 + rng.uniform(-0.04, 0.04) * lv, 1 - 0.12 * temp])
    wb *= 1 + rng.uniform(-0.03, 0.03, 3) * lv
    half_diag = 0.5 * math.hypot(w, h)
    xs = (np.arange(w, dtype=np.float32) - w / 2) / half_diag
    ys = (np.arange(h, dtype=np.float32) - h / 2) / half_diag
    illum = (1.0 + grad * (math.cos(gdir) * xs[None, :] + math.sin(gdir) * ys[:, None]))
    illum *= 1.0 - vig * (xs[None, :] ** 2 + ys[:, None] ** 2)
    illum *= np.float32(gain / 65535.0)
    img *= illum[..., None]
    img *= wb.astype(np.float32)
    if light is not None:
        gains, veil = LIGHT_CASTS[light]
        img *= np.array(gains, np.float32)
        img += np.float32(veil)
    # Specular glare: a few small bright spots, sometimes.
    if lv > 0 and rng.random() < 0.5:
        for _ in range(int(rng.integers(1, 5))):
            sig = rng.uniform(2.0, 10.0) * w / 1200
            amp = rng.uniform(0.15, 0.6) * lv
            gx, gy = rng.uniform(0, w), rng.uniform(0, h)
            r = int(3 * sig) + 1
            xa, xb = max(int(gx) - r, 0), min(int(gx) + r + 1, w)
            ya, yb = max(int(gy) - r, 0), min(int(gy) + r + 1, h)
            if xa >= xb or ya >= yb:
                continue
            yy, xx = np.mgrid[ya:yb, xa:xb].astype(np.float32)
            stretch = rng.uniform(1.0, 2.5)
            r2 = (xx - gx) ** 2 / stretch + (yy - gy) ** 2 * stretch
            spot = amp * np.exp(-r2 / (2 * sig * sig))
            img[ya:yb, xa:xb] += spot[..., None]
    # Optics: defocus blur, plus anti-aliasing when the scene is minified.
    blur = 0.5 + (rng.uniform(0.2, 1.2) - 0.5) * cv
    aa = 0.45 * math.sqrt(max(0.0, 1.0 / pose.scale**2 - 1.0))
    sigma = math.hypot(blur, aa)
    cv2.GaussianBlur(img, (0, 0), sigma, dst=img)
    # Sensor: signal-dependent shot noise plus read noise, then sRGB encoding. As after
    # demosaicing, the noise is mostly luminance at full resolution with coarser chroma
    # noise. Done in bands of rows to keep the temporaries small.
    a = np.float32(rng.uniform(0.0003, 0.0012))
    b = np.float32(rng.uniform(2e-6, 2e-5))
    mix = np.array([[0.8, 0.75, 0.0], [0.8, -0.35, -0.35], [0.8, 0.0, 0.75]], np.float32)
    lut = _srgb_lut()
    out = np.empty((h, w, 3), np.uint8)
    band = max(2, (400_000 // w) & ~1)
    for y in range(0, h, band):
        blk = img[y:y + band]
        bh = blk.shape[0]
        lum = rng.standard_normal((bh, w), dtype=np.float32)
        chroma = rng.standard_normal(((bh + 1) // 2, (w + 1) // 2, 2), dtype=np.float32)
        chroma = cv2.resize(chroma, ((w + 1) // 2 * 2, (bh + 1) // 2 * 2),
                            interpolation=cv2.INTER_LINEAR)
        noise = cv2.transform(np.dstack([lum, chroma[:bh, :w] * np.float32(1.3)]), mix)
        std = np.maximum(blk, 0.0)
        std *= a
        std += b
        np.sqrt(std, out=std)
        std *= noise
        blk += std
        np.clip(blk, 0.0, 1.0, out=blk)
        blk *= np.float32(65535.0)
        blk += np.float32(0.5)
        out[y:y + band] = lut[blk.astype(np.uint16)]
    return out
