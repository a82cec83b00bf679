"""A synthetic palm photo of known area, for the hand-unit tests of the library and the app."""

import io
import math

import cv2
import numpy as np
from PIL import Image

SUPERSAMPLE = 4


def _capsule(x0, y0, angle_deg, width, length, steps=24):
    """A finger: a rectangle with a round tip, from its base centre (mm), pointing at ``angle_deg``."""
    a = math.radians(angle_deg)
    u = np.array([math.sin(a), -math.cos(a)])  # along the finger (up in the image when angle is 0)
    n = np.array([u[1], -u[0]])
    base = np.array([x0, y0])
    tip = base + u * (length - width / 2)
    pts = [base - n * width / 2]
    for t in np.linspace(0, math.pi, steps):
        pts.append(tip + (-n * math.cos(t) + u * math.sin(t)) * width / 2)
    pts.append(base + n * width / 2)
    return np.array(pts)


def _hand_polygons(forearm: bool):
    """Palm and five digits (mm, y down), palm centre near (0, 0)."""
    palm = []
    for t in np.linspace(0, 2 * math.pi, 90, endpoint=False):
        # A squarish ellipse 84 mm wide, 96 mm tall.
        c, s = math.cos(t), math.sin(t)
        palm.append((42 * np.sign(c) * abs(c) ** 0.6, 48 * np.sign(s) * abs(s) ** 0.6))
    shapes = [np.array(palm)]
    shapes.append(_capsule(-32, -38, -12, 16, 62))   # little
    shapes.append(_capsule(-12, -44, -4, 18, 78))    # ring
    shapes.append(_capsule(8, -46, 2, 19, 84))       # middle
    shapes.append(_capsule(28, -42, 9, 18, 76))      # index
    shapes.append(_capsule(38, 22, 48, 23, 66))      # thumb
    if forearm:
        shapes.append(np.array([[-30, 40], [30, 40], [34, 400], [-34, 400]], float))
    return shapes


def synthetic_hand_photo(seed: int, *, px_per_mm: float = 4.0, marker_mm: float = 20.0, forearm: bool = False,
                         skin_rgb=(200, 148, 122)):
    """A palm photo on dark cloth with an ArUco marker, unevenly lit, with noise.

    Returns the JPEG bytes and the true hand area in cm² (the forearm beyond
    the wrist line y = 48 mm excluded).
    """
    rng = np.random.default_rng(seed)
    width_mm, height_mm = 230.0, 250.0
    width, height = int(width_mm * px_per_mm), int(height_mm * px_per_mm)
    origin = np.array([95.0, 145.0])  # palm centre in mm from the top-left corner
    big = np.zeros((height * SUPERSAMPLE, width * SUPERSAMPLE), np.uint8)
    scale = px_per_mm * SUPERSAMPLE
    for shape in _hand_polygons(forearm):
        pts = np.round((shape + origin) * scale * 16).astype(np.int32)  # 4 fractional bits
        cv2.fillPoly(big, [pts], 1, lineType=cv2.LINE_8, shift=4)
    hand_only = big.copy()
    wrist_row = int(round((origin[1] + 48) * scale))
    hand_only[wrist_row:] = 0
    if forearm:
        # The truth is the hand up to the wrist line: the palm's own outline ends there.
        palm_only = np.zeros_like(big)
        for shape in _hand_polygons(False):
            pts = np.round((shape + origin) * scale * 16).astype(np.int32)
            cv2.fillPoly(palm_only, [pts], 1, lineType=cv2.LINE_8, shift=4)
        hand_only = palm_only
    true_cm2 = hand_only.sum() / scale**2 / 100.0
    coverage = cv2.resize(big.astype(np.float32), (width, height), interpolation=cv2.INTER_AREA)

    background = np.array([22.0, 24.0, 30.0]) + rng.normal(0, 2.0, (height, width, 1))
    skin = np.array(skin_rgb, float) * (1 + 0.04 * cv2.GaussianBlur(rng.normal(0, 1, (height, width)), (0, 0), 6)[..., None])
    image = background * (1 - coverage[..., None]) + skin * coverage[..., None]
    # Palm creases: darker lines inside the palm.
    for y0, y1 in ((-10, -20), (10, 0)):
        p0 = ((origin + [-35, y0]) * px_per_mm).astype(int)
        p1 = ((origin + [30, y1]) * px_per_mm).astype(int)
        crease = np.zeros((height, width), np.uint8)
        cv2.line(crease, tuple(int(v) for v in p0), tuple(int(v) for v in p1), 1, 2)
        image[crease.astype(bool)] *= 0.8
    # The marker on white paper with a quiet zone, beside the hand.
    side = int(round(marker_mm * px_per_mm))
    quiet = int(round(5 * px_per_mm))
    tag = cv2.aruco.generateImageMarker(cv2.aruco.getPredefinedDictionary(cv2.aruco.DICT_4X4_50), 7, side)
    paper = np.full((side + 2 * quiet, side + 2 * quiet), 235, np.uint8)
    paper[quiet:quiet + side, quiet:quiet + side] = np.where(tag > 0, 235, 20)
    top, left = int(200 * px_per_mm), int(175 * px_per_mm)
    image[top:top + paper.shape[0], left:left + paper.shape[1]] = paper[..., None]
    # Uneven light (a gradient across the frame), optical blur and sensor noise.
    yy, xx = np.mgrid[0:height, 0:width]
    light = 0.8 + 0.35 * (xx / width) * 0.6 + 0.35 * (1 - yy / height) * 0.4
    image = image * light[..., None]
    image = cv2.GaussianBlur(image, (0, 0), 0.8)
    image = np.clip(image + rng.normal(0, 3.0, image.shape), 0, 255).astype(np.uint8)
    buffer = io.BytesIO()
    Image.fromarray(image).save(buffer, format="JPEG", quality=92)
    return buffer.getvalue(), float(true_cm2)
