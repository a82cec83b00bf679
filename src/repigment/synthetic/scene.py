"""The synthetic scene: one piece of skin, laid out and rendered in scene pixels.

`_Scene` chooses the patient's look, lays out patch, printed ArUco marker and optional
cloth, fits the pigment course, builds the static texture (pores, skin lines, hairs, moles,
relief) and samples a camera pose per visit; it renders the scene in linear light for any
visit and warps the pigment map into a photo frame as the ground truth. Also here: the
small records it uses (`_Hairs`, `_Spot`, `_PatchShape`, `_Pose`), the paper and camera
constants, and its rendering and camera-homography helpers.
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass
from typing import Any

import cv2
import numpy as np

from .fields import _apply_h, _Field, _intersect, _smoothstep, _translation
from .skin import (
    _BASE_REFLECTANCE,
    _EUMELANIN,
    _HAEMOGLOBIN,
    _MELANIN_BY_TYPE,
    FITZPATRICK_TYPES,
    _srgb_to_linear,
    _type_absorbance,
)
from .spec import SeriesSpec, _field_diag_mm

_PAPER_RGB = np.array([0.885, 0.880, 0.860], dtype=np.float32)  # off-white printer paper
_INK = 0.035  # reflectance of printed black
_FOCAL_PER_DIAG = 0.9  # focal length in photo px per photo diagonal (phone camera, close up)


#: Share of the frame's width and height past each edge that a large patch may occupy.
_PATCH_OVERHANG = 0.15


# ---------------------------------------------------------------------------------------------
# The scene


@dataclass
class _Hairs:
    pts: np.ndarray  # (n, 9, 2) layout px, root first
    thickness: np.ndarray  # (n,) px
    alpha: np.ndarray  # (n,) coverage, quantised to 1/16
    layer: np.ndarray  # (n,) 0 = pigmented, 1 = white (leukotrichia)
    bbox: np.ndarray  # (n, 4) x0, y0, x1, y1


@dataclass
class _Spot:
    x: float
    y: float
    a: float  # px semi-axes
    b: float
    angle: float
    amount: float  # added eumelanin
    soft: float  # edge softness as a fraction of the radius
    raised: float  # height of a raised mole (relief units)
    wobble: tuple[float, float, float, float]


@dataclass
class _PatchShape:
    render: Any  # r0 (px per unit) -> (mask, area)
    r_small: float
    area_small: float
    extent: tuple[float, float]  # bbox (w, h) at r_small


@dataclass
class _Pose:
    h: np.ndarray  # layout -> photo
    marker_centre: np.ndarray | None
    marker_angle: float
    scale: float  # local scale at the frame centre


class _Scene:
    """One piece of skin: layout, pigment course, static texture, camera poses."""

    def __init__(
        self,
        rng: np.random.Generator,
        spec: SeriesSpec,
        views: list[int],
        marker_id: int | None = None,
    ) -> None:
        self.rng = rng
        self._marker_id = marker_id
        self.spec = spec
        self.size = spec.image_size
        w, h = self.size
        self.mpp = _field_diag_mm(spec.marker_mm) / math.hypot(w, h)  # = nominal photo px
        self.skin_type = spec.skin_type
        self.course = spec.course
        self.a_type = _type_absorbance(spec.skin_type)
        self._choose_look()
        self._layout()
        self._poses = {k: self._sample_pose(k) for k in views}
        self._build_scene_extent()
        self._build_texture()
        self._canvas_layers = self._layers(*self.canvas_rect)
        self.static = self._render_static()
        self._marker_backup: tuple[Any, np.ndarray] | None = None

    # -- small unit helpers ---------------------------------------------------------------
    def px(self, mm: float) -> float:
        return mm / self.mpp

    # -- global look --------------------------------------------------------------------
    def _choose_look(self) -> None:
        rng = self.rng
        ti = FITZPATRICK_TYPES.index(self.skin_type)
        self.edge_mm = rng.uniform(1.0, 2.0)
        # A lighter perilesional rim in about half of the patients.
        self.rim_amp = rng.uniform(0.08, 0.22) if rng.random() < 0.5 else 0.0
        self.rim_mm = rng.uniform(1.5, 4.0)
        self.light_dir = rng.uniform(0, 2 * math.pi)
        self.relief_gain = rng.uniform(0.6, 1.3)
        self.pore_density = rng.uniform(0.25, 0.7)  # per mm^2
        self.hair_density = rng.uniform(30, 110) / 1e4  # terminal hairs per mm^2
        self.vellus_density = rng.uniform(100, 400) / 1e4
        self.hair_flow = rng.uniform(0, 2 * math.pi)
        self.white_hair_fraction = rng.uniform(0.2, 0.7)
        if ti <= 1 and rng.random() < 0.5:
            self.hair_rgb = np.array([0.10, 0.062, 0.036]) * rng.uniform(0.8, 1.3)
        else:
            self.hair_rgb = np.array([0.030, 0.022, 0.018]) * rng.uniform(0.7, 1.3)
        self.white_hair_rgb = np.array([0.66, 0.64, 0.60]) * rng.uniform(0.85, 1.1)
        # Freckles in light skin; small dark macules (lentigines, DPN, post-inflammatory) in dark.
        freckles_per_100cm2 = [(30, 120), (15, 60), (3, 20), (3, 15), (5, 25), (5, 25)][ti]
        self.freckle_density = rng.uniform(*freckles_per_100cm2) / 1e4
        self.mole_density = rng.uniform(1, 5) / 1e4 * (0.5 if ti >= 4 else 1.0)

    # -- layout: clutter, patch, marker ---------------------------------------------------
    def _layout(self) -> None:
        rng, spec = self.rng, self.spec
        w, h = self.size
        self.clutter = self._choose_clutter() if spec.clutter else None
        factor = self._spread_factor()
        share_lo, share_hi = spec.patch_share
        hi = min(share_hi, 0.30 / factor) if factor > 1 else share_hi
        frac0 = rng.uniform(share_lo, max(share_lo + 0.001, hi))
        # A large patch (and no marker to fit beside it) may run past the frame's edges.
        overhang = _PATCH_OVERHANG if share_hi > 0.2 and not spec.marker else 0.0
        self.marker_id = self._marker_id if self._marker_id is not None else (
            int(rng.integers(0, 50)) if spec.marker else None)
        if spec.marker:
            self._marker_geometry()
        angle0 = self.marker_angle0 if spec.marker else 0.0
        square = round(angle0 / (math.pi / 2)) * math.pi / 2 + rng.uniform(-0.05, 0.05)
        cloth0 = None if self.clutter is None else (self.clutter["base_px"], self.clutter["amps"])
        shape = self._new_shape()
        # When patch and marker do not fit, relax in order: stick the marker square to the
        # frame, narrow the cloth, let the patch go below 8 % of the frame, drop the cloth.
        levels = [(0.08, 1.0, False), (0.08, 1.0, True), (0.08, 0.75, True), (0.08, 0.5, True),
                  (0.08, 0.3, True), (0.05, 0.3, True), (0.03, 0.0, True)]
        for level, (floor, cloth, squared) in enumerate(levels):
            last = level == len(levels) - 1
            if cloth0 is not None:
                if cloth == 0.0:
                    self.clutter = None
                else:
                    c = self.clutter
                    c["base_px"] = cloth0[0] * cloth
                    c["amps"] = (cloth0[1][0] * cloth, cloth0[1][1] * cloth)
                    c["inner_px"] = c["base_px"] + sum(c["amps"])
            if spec.marker:
                self.marker_angle0 = square if squared else angle0
                # The marker's footprint and gap exactly as `_place_marker` reserves them.
                rot = abs(math.cos(self.marker_angle0)) + abs(math.sin(self.marker_angle0))
                box = 2 * (self.paper_hs + self.marker_jitter_px + self.px(2.0)) * rot
                gap = self.marker_jitter_px + self.px(6.0)
            avail = self._free_area(overhang)
            aw, ah = avail[2] - avail[0], avail[3] - avail[1]
            frac = max(floor, min(frac0, 0.45 * aw * ah / (w * h)))
            fitted = False
            for _attempt in range(6):
                # Cheap size check on the small raster first; the course calibration is costly.
                while True:
                    k = math.sqrt(frac * w * h / shape.area_small)
                    ew, eh = shape.extent[0] * k, shape.extent[1] * k
                    if factor > 1:
                        # Outward growth by about r_eq (sqrt(factor) - 1), plus a satellite.
                        r_eq = math.sqrt(frac * w * h / math.pi)
                        more = 2.6 * r_eq * (math.sqrt(factor) - 1) + self.px(14) + 0.7 * r_eq
                        ew, eh = ew + more, eh + more
                    if spec.marker:
                        ok = (ew + gap + box <= aw and max(eh, box) <= ah) or (
                            eh + gap + box <= ah and max(ew, box) <= aw)
                    else:
                        ok = ew <= aw and eh <= ah
                    if ok or frac <= floor:
                        break
                    frac = max(floor, frac * 0.93)
                if not ok and not last:
                    break  # relax further before paying for a calibration
                mask, pad = self._render_shape(shape, frac * w * h)
                self._fit_course(np.pad(mask, pad), factor)
                roi = self._extent_bbox_local()
                if spec.marker:
                    roi = self._place_marker(roi, aw, ah)
                rx0, ry0, rx1, ry1 = roi
                if rx1 - rx0 <= aw and ry1 - ry0 <= ah:
                    fitted = True
                    break
                if frac <= floor:
                    break
                frac = max(floor, frac * 0.85)
            if fitted:
                break
        # Place the ROI (patch + marker) inside the free area, biased towards its centre.
        cx_lo, cx_hi = avail[0] + (rx1 - rx0) / 2, avail[2] - (rx1 - rx0) / 2
        cy_lo, cy_hi = avail[1] + (ry1 - ry0) / 2, avail[3] - (ry1 - ry0) / 2
        cx = (cx_lo + cx_hi) / 2 + 0.6 * (cx_hi - cx_lo) / 2 * rng.uniform(-1, 1)
        cy = (cy_lo + cy_hi) / 2 + 0.6 * (cy_hi - cy_lo) / 2 * rng.uniform(-1, 1)
        off = np.array([round(cx - (rx0 + rx1) / 2), round(cy - (ry0 + ry1) / 2)], dtype=np.int64)
        self.canvas_rect = (int(off[0]), int(off[1]), self._cw, self._ch)
        self.extent_hull = self._extent_hull_local + off
        if spec.marker:
            self.marker_base_centre = self._marker_local + off

    def _free_area(self, overhang: float = 0.0) -> list[float]:
        """[x0, y0, x1, y1] of the nominal frame left free by the margins and the cloth.

        With ``overhang``, that share of the frame's width and height past each edge is free
        too (except on the cloth's side).
        """
        w, h = self.size
        margin = 0.05 * min(w, h)
        avail = [margin, margin, w - margin, h - margin]
        if overhang > 0:
            avail = [-overhang * w, -overhang * h, (1 + overhang) * w, (1 + overhang) * h]
        if self.clutter is not None:
            side, inner = self.clutter["side"], self.clutter["inner_px"] + self.px(4.0)
            if side == "left":
                avail[0] = max(avail[0], inner)
            elif side == "right":
                avail[2] = min(avail[2], w - inner)
            elif side == "top":
                avail[1] = max(avail[1], inner)
            else:
                avail[3] = min(avail[3], h - inner)
        return avail

    def _spread_factor(self) -> float:
        if self.course != "spreading":
            return 1.0
        return self.spec.final_residual if self.spec.final_residual > 1.0 else 1.4

    def _choose_clutter(self) -> dict[str, Any]:
        rng = self.rng
        w, h = self.size
        side = ["left", "right", "top", "bottom"][int(rng.integers(0, 4))]
        across = w if side in ("left", "right") else h
        along = h if side in ("left", "right") else w
        frac = rng.uniform(0.15, 0.35)
        amps = (rng.uniform(0.02, 0.07) * across, rng.uniform(0.005, 0.02) * across)
        lams = (rng.uniform(0.8, 2.0) * along, rng.uniform(0.15, 0.35) * along)
        phases = tuple(rng.uniform(0, 2 * math.pi, 2))
        kind = "background" if rng.random() < 0.5 else "clothing"
        lin = _srgb_to_linear
        if kind == "background":
            colours = [(0.012, 0.012, 0.014), (0.010, 0.016, 0.045), (0.010, 0.030, 0.018)]
            c1 = np.array(colours[int(rng.integers(0, 3))]) * rng.uniform(0.7, 1.6)
            c2 = c1 * 0.8
            pattern = "plain"
        else:
            palette = [
                lin((196, 170, 140)),  # beige
                lin((110, 80, 58)),  # brown
                lin((232, 232, 228)),  # white
                lin((135, 135, 140)),  # grey
                lin((60, 85, 130)),  # denim
                lin((175, 40, 45)),  # red
                lin((90, 100, 55)),  # olive
                lin((220, 150, 165)),  # pink
                lin((40, 40, 45)),  # charcoal
            ]
            i1, i2 = rng.choice(len(palette), 2, replace=False)
            c1, c2 = np.asarray(palette[i1]), np.asarray(palette[i2])
            pattern = ["plain", "stripes", "checks", "dots"][
                int(rng.choice(4, p=[0.35, 0.25, 0.25, 0.15]))
            ]
        base = frac * across
        return {
            "side": side,
            "base_px": base,
            "amps": amps,
            "lams": lams,
            "phases": phases,
            "inner_px": base + amps[0] + amps[1],
            "kind": kind,
            "c1": c1.astype(np.float32),
            "c2": c2.astype(np.float32),
            "pattern": pattern,
            "angle": rng.uniform(0, math.pi),
            "weave_mm": rng.uniform(0.35, 0.8),
            "pattern_mm": rng.uniform(3.0, 10.0),
            "duty": rng.uniform(0.25, 0.6),
            "shadow": rng.uniform(0.15, 0.4),
        }

    # -- the patch and its course ---------------------------------------------------------
    def _new_shape(self) -> _PatchShape:
        """Random 1-3 blob patch outline, renderable at any size."""
        rng = self.rng
        n = int(rng.choice([1, 2, 3], p=[0.5, 0.3, 0.2]))
        shares = np.sort(rng.dirichlet(np.full(n, 2.5)))[::-1]
        shares = shares if n == 1 else np.maximum(shares, 0.12) / np.maximum(shares, 0.12).sum()
        blobs = []
        for i, share in enumerate(shares):
            aspect = rng.uniform(1.0, 1.8)
            r = math.sqrt(share)  # in units of sqrt(A / pi)
            a, b = r * math.sqrt(aspect), r / math.sqrt(aspect)
            if i == 0:
                c = np.zeros(2)
            else:
                ang = rng.uniform(0, 2 * math.pi)
                dist = (math.sqrt(shares[0]) + r) * rng.uniform(0.75, 1.25)
                c = dist * np.array([math.cos(ang), math.sin(ang)])
            blobs.append((c, a, b, rng.uniform(0, math.pi)))
        lu = max(float(np.abs(c).max()) + max(a, b) * 1.6 for c, a, b, _ in blobs) + 0.1
        unit_bounds = (-lu, -lu, lu, lu)
        n_low = _Field(rng, unit_bounds, 0.45)
        n_mid = _Field(rng, unit_bounds, 0.15)

        def shape(r0: float) -> tuple[np.ndarray, int]:
            size = int(math.ceil(2 * lu * r0))
            xs = (np.arange(size, dtype=np.float32) + 0.5) / r0 - lu
            m = np.array([[1 / r0, 0, -lu + 0.5 / r0], [0, 1 / r0, -lu + 0.5 / r0]])
            f = 0.42 * _render_affine(n_low, m, size) + 0.10 * _render_affine(n_mid, m, size)
            blob = np.full((size, size), -np.inf, dtype=np.float32)
            for c, a, b, th in blobs:
                u = (xs[None, :] - c[0]) * math.cos(th) + (xs[:, None] - c[1]) * math.sin(th)
                v = -(xs[None, :] - c[0]) * math.sin(th) + (xs[:, None] - c[1]) * math.cos(th)
                np.maximum(blob, 1.0 - np.sqrt((u / a) ** 2 + (v / b) ** 2), out=blob)
            mask = (f + blob) > 0
            return mask, int(mask.sum())

        # Area and bounding box scale with r0^2 and r0: measure them once on a small raster.
        r_small = 60.0 / lu
        small, area_small = shape(r_small)
        ys, xs = np.nonzero(small)
        extent = (float(xs.max() - xs.min() + 1), float(ys.max() - ys.min() + 1))
        return _PatchShape(shape, r_small, float(area_small), extent)

    def _render_shape(self, shape: _PatchShape, target_px: float) -> tuple[np.ndarray, int]:
        """Patch mask of about `target_px` pixels, and the canvas padding it needs."""
        r0 = shape.r_small * math.sqrt(target_px / max(shape.area_small, 1.0))
        mask, area = shape.render(r0)
        if abs(area / target_px - 1) > 0.05:
            r0 *= math.sqrt(target_px / max(area, 1))
            mask, area = shape.render(r0)
        mask = _drop_specks(mask, 0.01 * area)
        factor = self._spread_factor()
        pad = self.px(max(8.0, 4 * self.rim_mm + 2))
        if self.course == "spreading":
            pad += self.px(25.0) + 0.8 * r0 * (math.sqrt(factor) - 1)
        return mask, int(math.ceil(pad))

    def _fit_course(self, mask: np.ndarray, factor: float) -> None:
        rng = self.rng
        hh, ww = mask.shape
        bounds = (0.0, 0.0, float(ww), float(hh))
        m8 = mask.astype(np.uint8)
        d_in = cv2.distanceTransform(m8, cv2.DIST_L2, cv2.DIST_MASK_PRECISE)
        d_out = cv2.distanceTransform(1 - m8, cv2.DIST_L2, cv2.DIST_MASK_PRECISE)
        phi = np.where(mask, d_in - 0.5, 0.5 - d_out) * self.mpp
        border = 0.22 * _Field(rng, bounds, self.px(0.7)).render(0, 0, ww, hh)
        border += 0.45 * _Field(rng, bounds, self.px(2.5)).render(0, 0, ww, hh)
        f: dict[str, Any] = {"phi": (phi + border).astype(np.float32)}
        course = self.course
        if course in ("marginal", "combined", "spreading"):
            g = _Field(rng, bounds, self.px(5.0)).render(0, 0, ww, hh)
            f["g"] = np.clip(1.0 + 0.55 * g, 0.15, 2.0)
        if course in ("perifollicular", "combined"):
            self._follicles(f, rng)
        if course == "diffuse":
            f["nd"] = _Field(rng, bounds, self.px(6.0)).render(0, 0, ww, hh)
        if course == "spreading":
            self._satellite(f, rng)
        self.kappa = rng.uniform(1.5, 3.0)
        self.fields = f
        self.S = 0.0
        if course != "stable":
            self.S = self._calibrate(factor if course == "spreading" else self.spec.final_residual)
        # Extent: everything the patch ever touches; then crop the canvas around it.
        t_ext = 1.0 if course == "spreading" else 0.0
        ext = self._dep(self.fields, t_ext, self.S) > 0.01
        ys, xs = np.nonzero(ext)
        pad = int(math.ceil(self.px(max(6.0, 4 * self.rim_mm + 2))))
        y0, y1 = max(ys.min() - pad, 0), min(ys.max() + pad + 1, hh)
        x0, x1 = max(xs.min() - pad, 0), min(xs.max() + pad + 1, ww)
        self.fields = {k: (v[y0:y1, x0:x1] if isinstance(v, np.ndarray) and v.ndim == 2 else v)
                       for k, v in self.fields.items()}
        ext = ext[y0:y1, x0:x1]
        self._ch, self._cw = ext.shape
        e8 = ext.astype(np.uint8)
        self.dist_out_extent = cv2.distanceTransform(1 - e8, cv2.DIST_L2, 3) * self.mpp
        contours, _ = cv2.findContours(e8, cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE)
        pts = np.concatenate([c.reshape(-1, 2) for c in contours]).astype(np.float64)
        self._extent_pts_local = pts
        hull = cv2.convexHull(pts.astype(np.float32))
        self._extent_hull_local = hull.reshape(-1, 2).astype(np.float64)
        phi0 = self.fields["phi"]
        self.baseline_dep0 = self._dep(self.fields, 0.0, self.S) > 0.5
        rim = self.rim_amp * np.exp(-np.maximum(-phi0, 0.0) / self.rim_mm)
        self.rim_map = rim.astype(np.float32)

    def _follicles(self, f: dict[str, Any], rng: np.random.Generator) -> None:
        phi = f["phi"]
        hh, ww = phi.shape
        inside = phi > -0.5
        area_mm2 = float(inside.sum()) * self.mpp**2
        density = 1.0 / rng.uniform(3.0, 6.0)  # follicles per mm^2
        n = rng.poisson(area_mm2 * density * (ww * hh) / max(inside.sum(), 1))
        xs = rng.uniform(0, ww - 1, n)
        ys = rng.uniform(0, hh - 1, n)
        keep = inside[ys.astype(int), xs.astype(int)]
        xs, ys = xs[keep].astype(int), ys[keep].astype(int)
        src = np.ones((hh, ww), np.uint8)
        src[ys, xs] = 0
        dist, labels = cv2.distanceTransformWithLabels(
            src, cv2.DIST_L2, 5, labelType=cv2.DIST_LABEL_PIXEL
        )
        nf = len(xs)
        rate = np.exp(rng.normal(0.0, 0.35, nf)).astype(np.float32)
        onset = rng.uniform(0.0, 0.5, nf).astype(np.float32)
        lab_rate = np.zeros(labels.max() + 1, np.float32)
        lab_onset = np.zeros(labels.max() + 1, np.float32)
        lab_rate[labels[ys, xs]] = rate
        lab_onset[labels[ys, xs]] = onset
        bounds = (0.0, 0.0, float(ww), float(hh))
        wobble = 0.12 * _Field(rng, bounds, self.px(0.4)).render(0, 0, ww, hh)  # irregular islands
        f["D"] = (dist * self.mpp + wobble).astype(np.float32)
        f["rate"] = lab_rate[labels]
        f["onset"] = lab_onset[labels]
        self.island_mm = rng.uniform(0.3, 0.5)

    def _satellite(self, f: dict[str, Any], rng: np.random.Generator) -> None:
        phi = f["phi"]
        hh, ww = phi.shape
        a0_px = float((phi > 0).sum())
        r = math.sqrt(rng.uniform(0.05, 0.10) * a0_px / math.pi)
        r_mm = r * self.mpp
        gap = rng.uniform(6.0, 12.0) + r_mm
        cand = np.argwhere((phi < -gap) & (phi > -gap - 3.0))
        # Keep the satellite well inside the canvas.
        m = r + self.px(8.0)
        ok = (cand[:, 0] > m) & (cand[:, 0] < hh - m) & (cand[:, 1] > m) & (cand[:, 1] < ww - m)
        cand = cand[ok]
        if len(cand) == 0:
            f["psi"] = None
            return
        cy, cx = cand[int(rng.integers(0, len(cand)))]
        win = int(math.ceil(1.4 * r)) + 2
        y0, y1 = max(cy - win, 0), min(cy + win + 1, hh)
        x0, x1 = max(cx - win, 0), min(cx + win + 1, ww)
        yy, xx = np.mgrid[y0:y1, x0:x1].astype(np.float32)
        ang = np.arctan2(yy - cy, xx - cx)
        ph1, ph2 = rng.uniform(0, 2 * math.pi, 2)
        wob = 1 + 0.15 * np.sin(3 * ang + ph1) + 0.08 * np.sin(5 * ang + ph2)
        psi = np.full((hh, ww), -50.0, np.float32)
        psi[y0:y1, x0:x1] = r_mm * wob - np.hypot(yy - cy, xx - cx) * self.mpp
        f["psi"] = psi
        f["psi_max"] = float(psi.max())

    def _dep(self, f: dict[str, Any], t: float, s: float) -> np.ndarray:
        """Depigmentation 1 - p on (a view of) the canvas at progress t with strength s."""
        w_edge = self.edge_mm
        phi = f["phi"]
        course = self.course

        def edge(x: np.ndarray) -> np.ndarray:
            return _smoothstep(0.5 + x / w_edge)

        def islands(r_scale: float) -> np.ndarray | float:
            if r_scale <= 0 or t <= 0:
                return 0.0
            ramp = np.clip((t - f["onset"]) / (1.0 - f["onset"]), 0.0, 1.0)
            r = r_scale * f["rate"] * ramp
            return np.where(r > 0, _smoothstep(0.5 + (r - f["D"]) / self.island_mm), 0.0)

        if course == "stable" or (t <= 0 and course != "spreading"):
            return edge(phi)
        if course == "marginal":
            return edge(phi - s * t * f["g"])
        if course == "perifollicular":
            return edge(phi) * (1.0 - islands(s))
        if course == "combined":
            return edge(phi - self.kappa * s * t * f["g"]) * (1.0 - islands(s))
        if course == "diffuse":
            level = np.clip(s + 0.25 * f["nd"], 0.0, 0.9)
            return edge(phi) * (1.0 - t * level)
        # spreading
        dep = edge(phi + s * t * f["g"])
        if f.get("psi") is not None:
            grow = min(max((t - 0.35) / 0.65, 0.0), 1.0) ** 0.6
            if grow > 0:
                dep = np.maximum(dep, edge(f["psi"] - f["psi_max"] * (1.0 - grow)))
        return dep

    def _calibrate(self, target_ratio: float) -> float:
        f = self.fields
        hh, ww = f["phi"].shape
        k = max(1, int(math.sqrt(hh * ww / 4e5)))
        sub = {
            key: (v[::k, ::k] if isinstance(v, np.ndarray) and v.ndim == 2 else v)
            for key, v in f.items()
        }
        a0 = float((self._dep(sub, 0.0, 0.0) > 0.5).sum())
        target = target_ratio * a0

        def area(s: float) -> float:
            return float((self._dep(sub, 1.0, s) > 0.5).sum())

        if self.course == "diffuse":
            lo, hi = -3.0, 3.0  # level offset: more -> less residual
        else:
            lo, hi = 0.0, 4.0
            grow = self.course == "spreading"
            while (area(hi) < target if grow else area(hi) > target) and hi < 200:
                hi *= 2
        decreasing = self.course != "spreading"
        for _ in range(32):
            mid = 0.5 * (lo + hi)
            if (area(mid) > target) == decreasing:
                lo = mid
            else:
                hi = mid
        return 0.5 * (lo + hi)

    def _extent_bbox_local(self) -> tuple[float, float, float, float]:
        p = self._extent_hull_local
        lo, hi = p.min(axis=0), p.max(axis=0)
        return float(lo[0]), float(lo[1]), float(hi[0]), float(hi[1])

    # -- marker ----------------------------------------------------------------------------
    def _marker_geometry(self) -> None:
        spec = self.spec
        self.module_px = self.px(spec.marker_mm / 6.0)
        # White margin around the black square, in modules. With less than about 2.1 the
        # paper's own outline is within cv2.aruco's minMarkerDistanceRate (0.125) of the
        # marker and can win over it, so real stickers with tight margins fail; keep it wider.
        self.quiet_modules = self.rng.uniform(2.2, 2.8)
        self.paper_half = (3.0 + self.quiet_modules) * self.module_px
        self.paper_radius = self.paper_half * math.sqrt(2.0)
        # Half-side that covers the paper under the per-visit rotation jitter (+-6 deg).
        self.paper_hs = self.paper_half * (1.0 + 0.1 * spec.camera_variation)
        self.marker_jitter_px = self.px(3.0) * spec.camera_variation
        self.marker_angle0 = self.rng.uniform(0, 2 * math.pi)

    def _place_marker(self, roi: tuple[float, float, float, float], aw: float, ah: float):
        """Put the marker on normal skin next to the patch extent; return the joint bbox."""
        rng = self.rng
        pts = self._extent_pts_local
        hull = self._extent_hull_local.astype(np.float32)
        centre = self._extent_hull_local.mean(axis=0)
        ca, sa = math.cos(self.marker_angle0), math.sin(self.marker_angle0)
        hs = self.paper_hs
        need = self.marker_jitter_px + self.px(rng.uniform(2.0, 6.0))

        def clearance(c: np.ndarray) -> float:
            d = pts - c
            u = np.abs(d[:, 0] * ca + d[:, 1] * sa) - hs
            v = np.abs(-d[:, 0] * sa + d[:, 1] * ca) - hs
            return float(np.hypot(np.maximum(u, 0), np.maximum(v, 0)).min())

        cands = []
        start = rng.uniform(0, 2 * math.pi)
        step = self.px(0.5)
        corner_uv = np.array([[-1, -1], [1, -1], [1, 1], [-1, 1]], dtype=np.float64)
        rot = np.array([[ca, -sa], [sa, ca]])
        # Random directions plus the four axis directions (stacked / side-by-side layouts).
        angles = [start + j * 2 * math.pi / 24 for j in range(24)]
        angles += [j * math.pi / 2 for j in range(4)]
        for j, ang in enumerate(angles):
            d = np.array([math.cos(ang), math.sin(ang)])
            s = 0.0
            while True:
                c = centre + s * d
                outside = cv2.pointPolygonTest(hull, (float(c[0]), float(c[1])), False) < 0
                cl = clearance(c) if outside else 0.0
                if outside and cl >= need:
                    break
                s += max(step, need - cl)
            corners = c + (corner_uv * (hs + self.marker_jitter_px + self.px(2.0))) @ rot.T
            box = (min(roi[0], corners[:, 0].min()), min(roi[1], corners[:, 1].min()),
                   max(roi[2], corners[:, 0].max()), max(roi[3], corners[:, 1].max()))
            bw, bh = box[2] - box[0], box[3] - box[1]
            cands.append((not (bw <= aw and bh <= ah), bw * bh, j, tuple(c), box))
        cands.sort()
        good = [cd for cd in cands if not cd[0]] or cands[:1]
        _, _, _, c, box = good[int(rng.integers(0, min(3, len(good))))]
        self._marker_local = np.array(c)
        return box

    def _marker_corners_layout(self, centre: np.ndarray, angle: float) -> np.ndarray:
        """Outer corners of the black square: TL, TR, BR, BL in marker orientation."""
        uv = np.array([[-3, -3], [3, -3], [3, 3], [-3, 3]], dtype=np.float64) * self.module_px
        ca, sa = math.cos(angle), math.sin(angle)
        rot = np.array([[ca, -sa], [sa, ca]])
        return centre + uv @ rot.T

    def _paper_corners_layout(self, centre: np.ndarray, angle: float) -> np.ndarray:
        half = 3.0 + self.quiet_modules + 0.5
        uv = np.array([[-1, -1], [1, -1], [1, 1], [-1, 1]], dtype=np.float64)
        uv *= half * self.module_px
        ca, sa = math.cos(angle), math.sin(angle)
        return centre + uv @ np.array([[ca, -sa], [sa, ca]]).T

    # -- camera poses ------------------------------------------------------------------------
    def _sample_pose(self, k: int) -> _Pose:
        rng, spec = self.rng, self.spec
        w, h = self.size
        cv = spec.camera_variation
        if spec.marker:
            if k == 0 or cv == 0:
                mc, ma = self.marker_base_centre.astype(np.float64), self.marker_angle0
            else:
                rr = self.marker_jitter_px * math.sqrt(rng.random())
                aa = rng.uniform(0, 2 * math.pi)
                mc = self.marker_base_centre + rr * np.array([math.cos(aa), math.sin(aa)])
                ma = self.marker_angle0 + math.radians(rng.uniform(-6, 6) * cv)
            pts = np.vstack([self.extent_hull, self._paper_corners_layout(mc, ma)])
        else:
            mc, ma = None, 0.0
            pts = self.extent_hull
        margin = 0.04 * min(w, h)
        f = _FOCAL_PER_DIAG * math.hypot(w, h)
        for attempt in range(400):
            v = cv * 0.85 ** (attempt // 50)
            if attempt == 399 or v < 1e-3:
                v = 0.0
            theta = math.radians(rng.uniform(-20, 20) * v)
            scale = math.exp(rng.uniform(math.log(0.8), math.log(1.2)) * v)
            tilt = math.radians(rng.uniform(0, 10) * v)
            axis = rng.uniform(0, 2 * math.pi)
            dx, dy = rng.uniform(-0.1, 0.1) * v * w, rng.uniform(-0.1, 0.1) * v * h
            hm = _camera_homography(w, h, theta, scale, tilt, axis, dx, dy, f)
            q = _apply_h(hm, pts)
            if (q[:, 0].min() >= margin and q[:, 0].max() <= w - margin
                    and q[:, 1].min() >= margin and q[:, 1].max() <= h - margin):
                break
        jac = _local_scale(hm, w / 2, h / 2)
        return _Pose(hm, mc, ma, jac)

    def pose(self, k: int) -> _Pose:
        return self._poses[k]

    # -- scene extent and texture ---------------------------------------------------------
    def _build_scene_extent(self) -> None:
        w, h = self.size
        corners = np.array([[-1, -1], [w, -1], [w, h], [-1, h]], dtype=np.float64)
        allp = [_apply_h(np.linalg.inv(p.h), corners) for p in self._poses.values()]
        allp = np.vstack(allp)
        pad = 4
        x0, y0 = int(math.floor(allp[:, 0].min())) - pad, int(math.floor(allp[:, 1].min())) - pad
        x1, y1 = int(math.ceil(allp[:, 0].max())) + pad, int(math.ceil(allp[:, 1].max())) + pad
        self.scene_rect = (x0, y0, x1 - x0, y1 - y0)

    def _build_texture(self) -> None:
        rng = self.rng
        sr, cr = self.scene_rect, self.canvas_rect
        bx0, by0 = min(sr[0], cr[0]) - 16, min(sr[1], cr[1]) - 16
        bx1 = max(sr[0] + sr[2], cr[0] + cr[2]) + 16
        by1 = max(sr[1] + sr[3], cr[1] + cr[3]) + 16
        b = (float(bx0), float(by0), float(bx1), float(by1))
        px = self.px
        # Melanin mottling; relative variation shrinks in dark skin, where the same relative
        # change of a large absorbance would look blotchy.
        eu, ph = _MELANIN_BY_TYPE[self.skin_type]
        tex = min(1.0, 1.0 / math.sqrt(eu + ph))
        self.f_mel = [
            (_Field(rng, b, px(s)), a * tex**e)
            for s, a, e in (
                (0.35, 0.05, 0.3), (1.0, 0.07, 0.5), (2.5, 0.06, 0.7), (6.0, 0.05, 1.0),
                (16.0, 0.06, 1.0),
            )
        ]
        # Darker follicular openings (marked in darker skin) and a specular sheen that shows
        # the relief regardless of melanin.
        ti = FITZPATRICK_TYPES.index(self.skin_type)
        self.follicle_mel = rng.uniform(0.3, 0.8) if ti >= 3 else rng.uniform(0.1, 0.4)
        self.spec_gain = rng.uniform(0.06, 0.16)
        self.sheen = rng.uniform(0.002, 0.008)
        self.f_blood = [(_Field(rng, b, px(s)), a) for s, a in ((3.0, 0.07), (12.0, 0.10))]
        self.f_shade = _Field(rng, b, px(25.0))
        # Skin lines: zero crossings of anisotropic noise in two crossing families (the
        # secondary lines, 1-3 mm apart, that form the visible rhomboid grid), plus a few
        # coarser creases along the skin's tension lines.
        a0 = rng.uniform(0, math.pi)
        self.f_lines = [
            _Field(rng, b, px(0.8), aspect=2.5, angle=a0),
            _Field(rng, b, px(0.8), aspect=2.5, angle=a0 + rng.uniform(0.9, 1.4)),
        ]
        self.f_crease = _Field(rng, b, px(3.0), aspect=3.5, angle=a0 + rng.uniform(-0.3, 0.3))
        self.line_width = max(0.10, 0.5 * self.mpp / 0.8)
        self.crease_width = max(0.05, 0.5 * self.mpp / 3.0)
        self.line_depth = rng.uniform(0.4, 0.8)
        self.crease_depth = rng.uniform(0.2, 0.6)
        self.f_fuzz = _Field(rng, b, px(0.25))  # fabric edge fibres / weave irregularity
        self.f_fold = _Field(rng, b, px(12.0), aspect=2.5, angle=rng.uniform(0, math.pi))
        area_mm2 = (bx1 - bx0) * (by1 - by0) * self.mpp**2
        # Pores: (x, y, strength)
        n_p = rng.poisson(area_mm2 * self.pore_density)
        self.pores = np.c_[
            rng.uniform(bx0, bx1, n_p), rng.uniform(by0, by1, n_p), rng.uniform(0.4, 1.0, n_p)
        ].astype(np.float32)
        self.pore_sigma = max(0.6, px(0.06))
        self.pore_depth = rng.uniform(0.25, 0.45)
        self._make_spots(area_mm2, b)
        self._make_hairs(area_mm2, b)

    def _excluded(self, x: float, y: float, r_mm: float) -> bool:
        """True if a mole at (x, y) would touch the patch extent (plus a gap)."""
        cx0, cy0, cw, ch = self.canvas_rect
        ix, iy = int(round(x - cx0)), int(round(y - cy0))
        if 0 <= ix < cw and 0 <= iy < ch:
            return bool(self.dist_out_extent[iy, ix] < 3.0 + r_mm)
        return False

    def _make_spots(self, area_mm2: float, b: tuple[float, float, float, float]) -> None:
        rng = self.rng
        eu_t = _MELANIN_BY_TYPE[self.skin_type][0]
        spots: list[_Spot] = []
        for kind, density in (("freckle", self.freckle_density), ("mole", self.mole_density)):
            for _ in range(rng.poisson(area_mm2 * density)):
                x, y = rng.uniform(b[0], b[2]), rng.uniform(b[1], b[3])
                if kind == "freckle":
                    r_mm = rng.uniform(0.35, 1.2)
                    amount = max(0.6 * eu_t, 0.8) * rng.uniform(0.35, 1.0)
                    soft, raised = rng.uniform(0.9, 1.5), 0.0
                else:
                    r_mm = rng.uniform(0.8, 2.6)
                    amount = 0.8 * eu_t + rng.uniform(1.5, 4.0)
                    soft = rng.uniform(0.12, 0.3)
                    raised = rng.uniform(0.0, 1.0) if rng.random() < 0.4 else 0.0
                if self._excluded(x, y, r_mm):
                    continue
                asp = rng.uniform(1.0, 1.4)
                wob = (0.02, 0.05) if kind == "freckle" else (0.02, 0.07)
                spots.append(_Spot(
                    x, y, self.px(r_mm) * asp, self.px(r_mm) / asp, rng.uniform(0, math.pi),
                    amount, soft, raised,
                    tuple(rng.uniform(0, 2 * math.pi, 2)) + tuple(rng.uniform(*wob, 2)),
                ))
        self.spots = spots

    def _make_hairs(self, area_mm2: float, b: tuple[float, float, float, float]) -> None:
        """Vellus and terminal hairs as short quadratic Bezier curves along a smooth flow."""
        rng = self.rng
        hairs: list[_Hairs] = []
        cx0, cy0, cw, ch = self.canvas_rect
        flow_a = rng.uniform(0, 2 * math.pi, 2)
        flow_l = self.px(rng.uniform(40, 90))
        tt = np.linspace(0, 1, 9)[None, :, None]
        for terminal, density in ((False, self.vellus_density), (True, self.hair_density)):
            n = int(rng.poisson(area_mm2 * density))
            x, y = rng.uniform(b[0], b[2], n), rng.uniform(b[1], b[3], n)
            ang = (self.hair_flow + 0.5 * np.sin(x / flow_l + flow_a[0])
                   + 0.4 * np.sin(y / flow_l + flow_a[1]) + rng.normal(0, 0.3, n))
            if terminal:
                length = self.px(1.0) * rng.uniform(4.0, 14.0, n)
                diam = rng.uniform(0.07, 0.22, n)
                alpha = rng.uniform(0.55, 0.95, n)
            else:
                length = self.px(1.0) * rng.uniform(1.0, 3.5, n)
                diam = rng.uniform(0.02, 0.04, n)
                alpha = rng.uniform(0.10, 0.25, n)
            thick_px = diam / self.mpp
            thickness = np.maximum(1, np.round(thick_px)).astype(int)
            alpha = alpha * np.minimum(1.0, 1.3 * thick_px / thickness)
            bend = rng.normal(0, 0.25, n) * length
            d = np.stack([np.cos(ang), np.sin(ang)], axis=1)
            nrm = np.stack([-d[:, 1], d[:, 0]], axis=1)
            p0 = np.stack([x, y], axis=1)
            p2 = p0 + d * length[:, None]
            p1 = p0 + d * (length / 2)[:, None] + nrm * bend[:, None]
            pts = (1 - tt) ** 2 * p0[:, None] + 2 * (1 - tt) * tt * p1[:, None]
            pts += tt**2 * p2[:, None]
            layer = np.zeros(n, int)
            if terminal:
                # Hairs rooted in the baseline patch are white with some probability.
                ix, iy = np.round(x - cx0).astype(int), np.round(y - cy0).astype(int)
                ok = (ix >= 0) & (ix < cw) & (iy >= 0) & (iy < ch)
                in_patch = np.zeros(n, bool)
                in_patch[ok] = self.baseline_dep0[iy[ok], ix[ok]]
                layer = (in_patch & (rng.random(n) < self.white_hair_fraction)).astype(int)
            hairs.append(_Hairs(pts, thickness, np.round(alpha * 16) / 16, layer,
                                np.concatenate([pts.min(axis=1), pts.max(axis=1)], axis=1)))
        self.hairs = hairs

    # -- rendering layers for a rectangle -------------------------------------------------
    def _layers(self, x0: int, y0: int, w: int, h: int) -> dict[str, Any]:
        """Static skin layers of the layout rectangle (x0, y0, w, h)."""
        halo = 8
        X0, Y0, WW, HH = x0 - halo, y0 - halo, w + 2 * halo, h + 2 * halo
        crop = (slice(halo, halo + h), slice(halo, halo + w))

        mel = np.ones((h, w), np.float32)
        for fld, amp in self.f_mel:
            mel += amp * fld.render(x0, y0, w, h)
        np.clip(mel, 0.6, 1.4, out=mel)
        blood = np.ones((h, w), np.float32)
        for fld, amp in self.f_blood:
            blood += amp * fld.render(x0, y0, w, h)
        np.clip(blood, 0.4, 1.8, out=blood)
        # Perilesional rim (lighter skin around the patch) from the canvas.
        cr = self.canvas_rect
        inter = _intersect((x0, y0, w, h), cr)
        if inter is not None and self.rim_amp > 0:
            ix0, iy0, iw, ih = inter
            sl_r = (slice(iy0 - y0, iy0 - y0 + ih), slice(ix0 - x0, ix0 - x0 + iw))
            sl_c = (slice(iy0 - cr[1], iy0 - cr[1] + ih), slice(ix0 - cr[0], ix0 - cr[0] + iw))
            mel[sl_r] *= 1.0 - self.rim_map[sl_c]

        pores = self._pores(X0, Y0, WW, HH)
        mel *= 1.0 + self.follicle_mel * pores[crop]
        # Relief: skin lines, creases, pores, raised moles -> directional shading + occlusion.
        l1 = self.f_lines[0].render(X0, Y0, WW, HH)
        l2 = self.f_lines[1].render(X0, Y0, WW, HH)
        lines = np.exp(-0.5 * (l1 / self.line_width) ** 2)
        lines += np.exp(-0.5 * (l2 / self.line_width) ** 2)
        lines *= 0.5
        cr_ = self.f_crease.render(X0, Y0, WW, HH)
        crease = np.exp(-0.5 * (cr_ / self.crease_width) ** 2)
        mole = np.zeros((HH, WW), np.float32)
        bump = np.zeros((HH, WW), np.float32)
        self._draw_spots(mole, bump, X0, Y0)
        height = bump - self.line_depth * lines - self.crease_depth * crease - 1.5 * pores
        gx = cv2.Sobel(height, cv2.CV_32F, 1, 0, ksize=3)
        gy = cv2.Sobel(height, cv2.CV_32F, 0, 1, ksize=3)
        k = self.relief_gain * 0.125 * 0.03 / self.mpp  # per-mm slope of ~0.03 mm-deep relief
        directional = k * (math.cos(self.light_dir) * gx + math.sin(self.light_dir) * gy)
        spec = self.spec_gain * np.maximum(directional[crop], 0.0)
        spec += self.sheen * np.maximum(1.0 + self.f_shade.render(x0, y0, w, h), 0.0)
        shade = 1.0 + directional
        shade -= 0.05 * lines + 0.05 * crease + self.pore_depth * pores
        shade = shade[crop]
        np.clip(shade, 0.5, 1.3, out=shade)
        shade *= 1.0 + 0.04 * self.f_shade.render(x0, y0, w, h)
        mole = mole[crop]

        # Hairs on top of the skin.
        hair_a, hair_rgb = self._draw_hairs(X0, Y0, WW, HH)
        over_a, over_rgb = None, None
        if hair_a is not None:
            over_a, over_rgb = hair_a[crop], hair_rgb[crop]
        if self.clutter is not None:
            ca, crgb, shadow = self._clutter(x0, y0, w, h)
            if shadow is not None:
                shade *= shadow
            if ca is not None:
                if over_a is None:
                    over_a, over_rgb = ca, crgb
                else:
                    keep = 1.0 - ca
                    over_rgb = crgb + over_rgb * keep[..., None]
                    over_a = ca + over_a * keep
        return {
            "mel": mel,
            "mole": mole if mole.any() else None,
            "blood": blood,
            "shade": shade.astype(np.float32),
            "spec": spec.astype(np.float32),
            "over_a": over_a,
            "over_rgb": over_rgb,
        }

    def _pores(self, X0: int, Y0: int, WW: int, HH: int) -> np.ndarray:
        p = self.pores
        sel = (p[:, 0] >= X0) & (p[:, 0] < X0 + WW - 1) & (p[:, 1] >= Y0) & (p[:, 1] < Y0 + HH - 1)
        p = p[sel]
        img = np.zeros((HH, WW), np.float32)
        # Bilinear splat keeps sub-pixel positions.
        fx, fy = p[:, 0] - X0, p[:, 1] - Y0
        ix, iy = np.floor(fx).astype(np.int64), np.floor(fy).astype(np.int64)
        ax, ay = fx - ix, fy - iy
        s = p[:, 2]
        flat = img.ravel()
        corners = ((0, 0, (1 - ax) * (1 - ay)), (1, 0, ax * (1 - ay)),
                   (0, 1, (1 - ax) * ay), (1, 1, ax * ay))
        for dx, dy, wgt in corners:
            np.add.at(flat, (iy + dy) * WW + (ix + dx), s * wgt)
        sig = self.pore_sigma
        img = cv2.GaussianBlur(img, (0, 0), sig, borderType=cv2.BORDER_CONSTANT)
        img *= np.float32(2 * math.pi * sig * sig)
        return img

    def _draw_spots(self, mole: np.ndarray, bump: np.ndarray, X0: int, Y0: int) -> None:
        HH, WW = mole.shape
        for s in self.spots:
            r = max(s.a, s.b) * 1.3 + 2
            xa, xb = int(max(s.x - r, X0)), int(min(s.x + r + 1, X0 + WW))
            ya, yb = int(max(s.y - r, Y0)), int(min(s.y + r + 1, Y0 + HH))
            if xa >= xb or ya >= yb:
                continue
            yy, xx = np.mgrid[ya:yb, xa:xb].astype(np.float32)
            dx, dy = xx - s.x, yy - s.y
            ca, sa = math.cos(s.angle), math.sin(s.angle)
            u, v = (ca * dx + sa * dy) / s.a, (-sa * dx + ca * dy) / s.b
            th = np.arctan2(v, u)
            wob = 1 + s.wobble[2] * np.sin(3 * th + s.wobble[0])
            wob += s.wobble[3] * np.sin(5 * th + s.wobble[1])
            rho = np.sqrt(u * u + v * v) * wob
            prof = _smoothstep((1.0 - rho) / s.soft + 0.5)
            mole[ya - Y0:yb - Y0, xa - X0:xb - X0] += s.amount * prof
            if s.raised > 0:
                dome = np.clip(1 - rho * rho, 0, None)
                bump[ya - Y0:yb - Y0, xa - X0:xb - X0] += s.raised * 3.0 * dome

    def _draw_hairs(self, X0: int, Y0: int, WW: int, HH: int):
        layers = [np.zeros((HH, WW), np.uint8), np.zeros((HH, WW), np.uint8)]
        any_hair = False
        shift = 4
        for hs in self.hairs:
            b = hs.bbox
            sel = np.nonzero((b[:, 2] >= X0 - 3) & (b[:, 0] <= X0 + WW + 3)
                             & (b[:, 3] >= Y0 - 3) & (b[:, 1] <= Y0 + HH + 3))[0]
            if len(sel) == 0:
                continue
            any_hair = True
            pts = np.round((hs.pts[sel] - (X0, Y0)) * (1 << shift)).astype(np.int32)
            # Draw in groups of equal (layer, thickness, alpha); the distal third of a hair is
            # thinner and paler.
            a16 = np.round(hs.alpha[sel] * 16).astype(int)
            keys = hs.layer[sel] * 100_000 + hs.thickness[sel] * 100 + a16
            cut = 6
            for key in np.unique(keys):
                idx = np.nonzero(keys == key)[0]
                layer, thick, a16 = key // 100_000, (key // 100) % 1000, key % 100
                col = int(round(255 * a16 / 16))
                cv2.polylines(layers[layer], list(pts[idx, :cut + 1]), False, col, int(thick),
                              cv2.LINE_AA, shift)
                cv2.polylines(layers[layer], list(pts[idx, cut:]), False, int(col * 0.6),
                              max(1, int(thick) - 1), cv2.LINE_AA, shift)
        if not any_hair:
            return None, None
        ad = layers[0].astype(np.float32) * (1 / 255)
        aw = layers[1].astype(np.float32) * (1 / 255)
        a = np.minimum(ad + aw, 1.0)
        rgb = ad[..., None] * self.hair_rgb.astype(np.float32)
        rgb += aw[..., None] * self.white_hair_rgb.astype(np.float32)
        return a, rgb

    def _clutter(self, x0: int, y0: int, w: int, h: int):
        c = self.clutter
        side = c["side"]
        W, H = self.size
        # Signed distance (px) into the cloth, measured across the band.
        if side in ("left", "right"):
            along = np.arange(y0, y0 + h, dtype=np.float32)[:, None]
            across = np.arange(x0, x0 + w, dtype=np.float32)[None, :]
            if side == "right":
                across = W - across
        else:
            along = np.arange(x0, x0 + w, dtype=np.float32)[None, :]
            across = np.arange(y0, y0 + h, dtype=np.float32)[:, None]
            if side == "bottom":
                across = H - across
        (a1, a2), (l1, l2), (p1, p2) = c["amps"], c["lams"], c["phases"]
        line = c["base_px"] + a1 * np.sin(2 * math.pi * along / l1 + p1)
        line = line + a2 * np.sin(2 * math.pi * along / l2 + p2)
        d = line - across
        if float(d.max()) < -self.px(6.0) - 2:
            return None, None, None
        d = np.broadcast_to(d, (h, w)).astype(np.float32)
        d = d + 0.6 * self.f_fuzz.render(x0, y0, w, h)
        alpha = np.clip(d + 0.5, 0.0, 1.0)
        shadow = 1.0 - c["shadow"] * np.exp(np.minimum(d, 0.0) * (self.mpp / 1.2)) * (d < 0.5)
        if float(alpha.max()) <= 0:
            return None, None, shadow.astype(np.float32)
        # Cloth: weave, pattern, folds.
        yy, xx = np.mgrid[y0:y0 + h, x0:x0 + w].astype(np.float32)
        ca, sa = math.cos(c["angle"]), math.sin(c["angle"])
        u = (ca * xx + sa * yy) * self.mpp
        v = (-sa * xx + ca * yy) * self.mpp
        wv = 2 * math.pi / c["weave_mm"]
        weave = 1.0 + 0.16 * np.sin(wv * u) * np.sin(wv * v)
        weave += 0.08 * self.f_fuzz.render(x0, y0, w, h)
        pm = c["pattern_mm"]
        pat = c["pattern"]
        soft = 1.0 / max(self.px(pm), 1.0)
        if pat == "stripes":
            m2 = _smoothstep((c["duty"] - np.abs((u / pm) % 1.0 - 0.5)) / soft)
        elif pat == "checks":
            s1 = _smoothstep((c["duty"] - np.abs((u / pm) % 1.0 - 0.5)) / soft)
            s2 = _smoothstep((c["duty"] - np.abs((v / pm) % 1.0 - 0.5)) / soft)
            m2 = 0.5 * (s1 + s2)
        elif pat == "dots":
            du, dv = (u / pm) % 1.0 - 0.5, (v / pm) % 1.0 - 0.5
            m2 = _smoothstep((0.22 - np.sqrt(du * du + dv * dv)) / soft)
        else:
            m2 = None
        fold = 1.0 + 0.22 * self.f_fold.render(x0, y0, w, h)
        tex = (weave * fold).astype(np.float32)
        if m2 is None:
            rgb = tex[..., None] * c["c1"]
        else:
            m2 = m2.astype(np.float32)[..., None]
            rgb = tex[..., None] * (c["c1"] * (1 - m2) + c["c2"] * m2)
        rgb = np.clip(rgb, 0.0, 1.0) * alpha[..., None]
        return alpha.astype(np.float32), rgb.astype(np.float32), shadow.astype(np.float32)

    def _skin(
        self, melanin: np.ndarray, mole: np.ndarray | None, blood: np.ndarray, shade: np.ndarray
    ) -> np.ndarray:
        """Linear RGB reflectance of skin: per band, the mean over its two halves of
        exp(-(melanin * type mix + mole * eumelanin + blood * haemoglobin))."""
        out = np.empty(melanin.shape + (3,), np.float32)
        for c in range(3):
            bterm = blood * np.float32(_HAEMOGLOBIN[c])
            same = self.a_type[c, 0] == self.a_type[c, 1] and _EUMELANIN[c, 0] == _EUMELANIN[c, 1]
            acc = None
            for j in range(1 if same else 2):
                a = melanin * np.float32(self.a_type[c, j])
                a += bterm
                if mole is not None:
                    a += mole * np.float32(_EUMELANIN[c, j])
                np.negative(a, out=a)
                np.exp(a, out=a)
                acc = a if acc is None else acc + a
            weight = np.float32((1.0 if same else 0.5) * _BASE_REFLECTANCE[c])
            out[..., c] = acc * (shade * weight)
        return out

    def _composite(self, lay: dict[str, Any], p: np.ndarray | None) -> np.ndarray:
        melanin = lay["mel"] if p is None else lay["mel"] * p
        img = self._skin(melanin, lay["mole"], lay["blood"], lay["shade"])
        img += lay["spec"][..., None]  # specular reflection is white and melanin-independent
        if lay["over_a"] is not None:
            img *= (1.0 - lay["over_a"])[..., None]
            img += lay["over_rgb"]
        return img

    def _render_static(self) -> np.ndarray:
        x0, y0, w, h = self.scene_rect
        out = np.empty((h, w, 3), np.uint16)
        rows = max(32, int(1_500_000 // w))
        for r in range(0, h, rows):
            hh = min(rows, h - r)
            img = self._composite(self._layers(x0, y0 + r, w, hh), None)
            out[r:r + hh] = _to_u16(img)
        return out

    # -- per-visit rendering ------------------------------------------------------------------
    def pigment(self, t: float) -> np.ndarray:
        """Pigment map p on the canvas at progress t."""
        return (1.0 - self._dep(self.fields, t, self.S)).astype(np.float32)

    def render(self, k: int, p: np.ndarray) -> np.ndarray:
        """Scene image (linear, uint16) for view k with canvas pigment p.

        Updates the scene buffer in place (canvas and marker) to keep memory low; the result
        is valid until the next call.
        """
        img = self.static
        sr, cr = self.scene_rect, self.canvas_rect
        if self._marker_backup is not None:
            sl, data = self._marker_backup
            img[sl] = data
            self._marker_backup = None
        patch = _to_u16(self._composite(self._canvas_layers, p))
        inter = _intersect(sr, cr)
        if inter is not None:
            ix0, iy0, iw, ih = inter
            img[iy0 - sr[1]:iy0 - sr[1] + ih, ix0 - sr[0]:ix0 - sr[0] + iw] = \
                patch[iy0 - cr[1]:iy0 - cr[1] + ih, ix0 - cr[0]:ix0 - cr[0] + iw]
        pose = self._poses[k]
        if pose.marker_centre is not None:
            self._draw_marker(img, pose.marker_centre, pose.marker_angle)
        return img

    def _draw_marker(self, img: np.ndarray, centre: np.ndarray, angle: float) -> None:
        sr = self.scene_rect
        mp = self.module_px
        qz = self.quiet_modules
        r = self.paper_radius + self.px(1.5) + 2
        x0, x1 = int(math.floor(centre[0] - r)), int(math.ceil(centre[0] + r))
        y0, y1 = int(math.floor(centre[1] - r)), int(math.ceil(centre[1] + r))
        inter = _intersect(sr, (x0, y0, x1 - x0, y1 - y0))
        if inter is None:
            return
        x0, y0, w, h = inter
        sl = (slice(y0 - sr[1], y0 - sr[1] + h), slice(x0 - sr[0], x0 - sr[0] + w))
        self._marker_backup = (sl, img[sl].copy())
        # Warp the pre-rendered (supersampled, pre-filtered) paper into place.
        k, u_min, sheet = self._marker_sheet
        ca, sa = math.cos(angle), math.sin(angle)
        # scene (x, y) -> sheet pixel: j = k mp (u - u_min) - 0.5 with u = R^T (p - c) / mp + 3
        off = (3.0 - u_min) * k * mp - 0.5
        m = np.array([
            [k * ca, k * sa, off + k * (ca * (x0 - centre[0]) + sa * (y0 - centre[1]))],
            [-k * sa, k * ca, off + k * (-sa * (x0 - centre[0]) + ca * (y0 - centre[1]))],
        ])
        warped = cv2.warpAffine(
            sheet, m, (w, h), flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP,
            borderMode=cv2.BORDER_CONSTANT, borderValue=0,
        )
        val, cov = warped[..., 0], warped[..., 1]
        # Soft shadow of the paper's edge on the skin, offset away from the light.
        sx = centre[0] + math.cos(self.light_dir) * self.px(0.3)
        sy = centre[1] + math.sin(self.light_dir) * self.px(0.3)
        cx = np.arange(x0, x0 + w, dtype=np.float32)[None, :] - np.float32(sx)
        cy = np.arange(y0, y0 + h, dtype=np.float32)[:, None] - np.float32(sy)
        pu = np.abs(ca * cx + sa * cy) / mp - (3.0 + qz)
        pv = np.abs(-sa * cx + ca * cy) / mp - (3.0 + qz)
        dist_mm = np.hypot(np.maximum(pu, 0), np.maximum(pv, 0)) * (mp * self.mpp)
        shadow = 1.0 - 0.25 * np.exp(-dist_mm / 0.5)
        region = img[sl].astype(np.float32) * np.float32(1 / 65535)
        region *= (shadow * (1 - cov))[..., None]
        region += val[..., None] * _PAPER_RGB
        img[sl] = _to_u16(region)

    @functools.cached_property
    def _marker_sheet(self) -> tuple[int, float, np.ndarray]:
        """The printed paper, axis aligned, k px per scene px: (k, u_min, [value, coverage])."""
        mp, qz = self.module_px, self.quiet_modules
        k = 4 if mp < 8 else 2
        u_min = -qz - 0.5
        n = int(math.ceil((6 + 2 * qz + 1.0) * k * mp))
        u = u_min + (np.arange(n, dtype=np.float64) + 0.5) / (k * mp)
        paper = (u >= -qz) & (u < 6 + qz)
        cov = (paper[:, None] & paper[None, :]).astype(np.float32)
        ui = np.clip(np.floor(u), 0, 5).astype(np.int64)
        inside = (u >= 0) & (u < 6)
        d = cv2.aruco.getPredefinedDictionary(cv2.aruco.DICT_4X4_50)
        bits = cv2.aruco.generateImageMarker(d, self.marker_id, 6) > 127  # 1 px per module
        white = bits[ui[:, None], ui[None, :]] | ~(inside[:, None] & inside[None, :])
        val = np.where(white, 1.0, _INK / float(_PAPER_RGB.mean())).astype(np.float32) * cov
        sheet = np.dstack([val, cov])
        # Pre-filter to about one scene pixel so the warp does not alias.
        sheet = cv2.GaussianBlur(sheet, (0, 0), 0.45 * k)
        return k, u_min, sheet

    def marker_corners_photo(self, k: int) -> np.ndarray | None:
        pose = self._poses[k]
        if pose.marker_centre is None:
            return None
        return _apply_h(pose.h, self._marker_corners_layout(pose.marker_centre, pose.marker_angle))

    def truth_mask(
        self, p: np.ndarray, h_layout_to_photo: np.ndarray, size: tuple[int, int]
    ) -> np.ndarray:
        """Warp the canvas pigment map into a photo frame and threshold it at 0.5."""
        cr = self.canvas_rect
        hm = h_layout_to_photo @ _translation(cr[0], cr[1])
        warped = cv2.warpPerspective(
            p, hm, size, flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT, borderValue=1.0
        )
        return warped < 0.5


def _render_affine(fld: _Field, m_px_to_domain: np.ndarray, size: int) -> np.ndarray:
    """Render `fld` on a size x size grid whose pixel -> field-domain map is affine."""
    a = np.vstack([fld._affine, [0, 0, 1]]) @ np.vstack([m_px_to_domain, [0, 0, 1]])
    return cv2.warpAffine(
        fld._grid, a[:2], (size, size), flags=cv2.INTER_CUBIC | cv2.WARP_INVERSE_MAP,
        borderMode=cv2.BORDER_REFLECT101,
    )


def _drop_specks(mask: np.ndarray, min_area: float) -> np.ndarray:
    n, labels, stats, _ = cv2.connectedComponentsWithStats(mask.astype(np.uint8), connectivity=8)
    keep = np.zeros(n, bool)
    keep[1:] = stats[1:, cv2.CC_STAT_AREA] >= min_area
    return keep[labels]


def _to_u16(img: np.ndarray) -> np.ndarray:
    return (np.clip(img, 0.0, 1.0) * 65535.0 + 0.5).astype(np.uint16)


def _camera_homography(
    w: int, h: int, theta: float, scale: float, tilt: float, axis: float,
    dx: float, dy: float, f: float,
) -> np.ndarray:
    """Scene (layout) -> photo homography: similarity about the frame centre, then a camera tilt."""
    cx, cy = w / 2.0, h / 2.0
    c, s = math.cos(theta), math.sin(theta)
    a = _translation(cx + dx, cy + dy) @ np.array(
        [[scale * c, -scale * s, 0], [scale * s, scale * c, 0], [0, 0, 1]]
    ) @ _translation(-cx, -cy)
    if tilt == 0:
        return a
    rvec = np.array([math.cos(axis), math.sin(axis), 0.0]) * tilt
    rot, _ = cv2.Rodrigues(rvec)
    k = np.array([[f, 0, cx], [0, f, cy], [0, 0, 1.0]])
    p = k @ rot @ np.linalg.inv(k)
    q = p @ np.array([cx, cy, 1.0])
    q = q[:2] / q[2]
    hm = _translation(cx - q[0], cy - q[1]) @ p @ a
    return hm / hm[2, 2]


def _local_scale(hm: np.ndarray, x: float, y: float) -> float:
    """Photo px per scene px of `hm` around photo point (x, y): sqrt(|det J|)."""
    hinv = np.linalg.inv(hm)
    p = _apply_h(hinv, [[x, y]])[0]
    e = 0.5
    q = _apply_h(hm, [p, p + [e, 0], p + [0, e]])
    j = np.array([q[1] - q[0], q[2] - q[0]]) / e
    return math.sqrt(abs(float(np.linalg.det(j))))
