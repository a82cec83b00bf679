"""Random fields and small geometric helpers of the synthetic-series generator.

`_Field`, a smooth random field of about unit variance that can be evaluated seamlessly on
any rectangle (the source of texture, patch borders and course irregularity), and the small
helpers shared by scene, camera and series: translation homographies, applying a homography
to points, rectangle intersection, quadrilateral area and the slow-start course progress.
"""

from __future__ import annotations

import math

import cv2
import numpy as np

# ---------------------------------------------------------------------------------------------
# Random fields and small helpers


class _Field:
    """Smooth random field of about unit variance, evaluable on any rectangle.

    White noise on a coarse grid (one cell per `scale` px, optionally stretched by `aspect`
    along `angle`) is blurred and resampled bicubically, so separate evaluations of adjacent
    rectangles join seamlessly.
    """

    def __init__(
        self,
        rng: np.random.Generator,
        bounds: tuple[float, float, float, float],
        scale: float,
        *,
        aspect: float = 1.0,
        angle: float = 0.0,
    ) -> None:
        x0, y0, x1, y1 = bounds
        ca, sa = math.cos(angle), math.sin(angle)
        sx, sy = scale * aspect, scale
        cx = np.array([x0, x1, x1, x0], dtype=np.float64)
        cy = np.array([y0, y0, y1, y1], dtype=np.float64)
        gx = (ca * cx + sa * cy) / sx
        gy = (-sa * cx + ca * cy) / sy
        pad = 4
        nx = int(math.ceil(gx.max() - gx.min())) + 2 * pad + 1
        ny = int(math.ceil(gy.max() - gy.min())) + 2 * pad + 1
        grid = rng.standard_normal((ny, nx), dtype=np.float32)
        grid = cv2.GaussianBlur(grid, (0, 0), 1.0, borderType=cv2.BORDER_REFLECT101)
        grid *= np.float32(1.0 / (float(grid.std()) + 1e-9))
        self._grid = grid
        self._affine = np.array(
            [[ca / sx, sa / sx, pad - gx.min()], [-sa / sy, ca / sy, pad - gy.min()]],
            dtype=np.float64,
        )
        # Coarse fields are evaluated on a grid aligned to multiples of `_step` and upsampled
        # bilinearly, which is invisible at their scale and much cheaper.
        step = 1
        while step < 16 and 2 * step <= min(sx, sy) / 4:
            step *= 2
        self._step = step

    def render(self, x0: float, y0: float, w: int, h: int) -> np.ndarray:
        r = self._step
        if r == 1:
            m = self._affine.copy()
            m[:, 2] += m[:, 0] * x0 + m[:, 1] * y0
            return cv2.warpAffine(
                self._grid, m, (int(w), int(h)),
                flags=cv2.INTER_CUBIC | cv2.WARP_INVERSE_MAP, borderMode=cv2.BORDER_REFLECT101,
            )
        x0, y0 = int(x0), int(y0)
        gx0 = (x0 // r) * r - r
        gy0 = (y0 // r) * r - r
        nw = -(-(x0 + w - gx0) // r) + 1
        nh = -(-(y0 + h - gy0) // r) + 1
        # Low-res pixel (i, j) sits at (gx0 + r j + (r - 1) / 2, ...), as cv2.resize assumes.
        lo_to_xy = np.array([[r, 0, gx0 + (r - 1) / 2], [0, r, gy0 + (r - 1) / 2], [0, 0, 1.0]])
        m = (np.vstack([self._affine, [0, 0, 1]]) @ lo_to_xy)[:2]
        low = cv2.warpAffine(
            self._grid, m, (nw, nh),
            flags=cv2.INTER_CUBIC | cv2.WARP_INVERSE_MAP, borderMode=cv2.BORDER_REFLECT101,
        )
        big = cv2.resize(low, (nw * r, nh * r), interpolation=cv2.INTER_LINEAR)
        return big[y0 - gy0:y0 - gy0 + h, x0 - gx0:x0 - gx0 + w]


def _smoothstep(x: np.ndarray) -> np.ndarray:
    x = np.clip(x, 0.0, 1.0)
    return x * x * (3.0 - 2.0 * x)


def _translation(tx: float, ty: float) -> np.ndarray:
    return np.array([[1.0, 0.0, tx], [0.0, 1.0, ty], [0.0, 0.0, 1.0]])


def _apply_h(h: np.ndarray, pts: np.ndarray) -> np.ndarray:
    pts = np.asarray(pts, dtype=np.float64).reshape(-1, 2)
    q = np.c_[pts, np.ones(len(pts))] @ h.T
    return q[:, :2] / q[:, 2:3]


def _intersect(a: tuple[int, int, int, int], b: tuple[int, int, int, int]):
    """Intersection of rectangles (x0, y0, w, h); None if empty."""
    x0, y0 = max(a[0], b[0]), max(a[1], b[1])
    x1, y1 = min(a[0] + a[2], b[0] + b[2]), min(a[1] + a[3], b[1] + b[3])
    if x1 <= x0 or y1 <= y0:
        return None
    return x0, y0, x1 - x0, y1 - y0


def _quad_area(q: np.ndarray) -> float:
    x, y = q[:, 0], q[:, 1]
    return 0.5 * abs(float(np.dot(x, np.roll(y, -1)) - np.dot(y, np.roll(x, -1))))


def _progress(weeks: tuple[float, ...]) -> np.ndarray:
    w = np.asarray(weeks, dtype=np.float64)
    if len(w) < 2:
        return np.zeros(len(w))
    return np.clip((w - w[0]) / (w[-1] - w[0]), 0.0, 1.0) ** 1.3
