"""Public entry points of the synthetic-series generator: generate and write a series.

`generate_series` builds the scene of a `SeriesSpec` (and another one per wrong-place
visit), photographs it at every visit and records the exact ground truth;
`write_series` stores the result as JPEG photos, ``visits.csv``, truth masks and
``truth.json``.
"""

from __future__ import annotations

import csv
import datetime
import json
import math
import os
from pathlib import Path
from typing import Any

import numpy as np
from PIL import ExifTags, Image

from .camera import LIGHT_CASTS, _photograph
from .fields import _progress, _quad_area
from .scene import _Scene
from .spec import SeriesSpec, SyntheticSeries, SyntheticVisit

# ---------------------------------------------------------------------------------------------
# Public entry points


def generate_series(spec: SeriesSpec) -> SyntheticSeries:
    """Generate a synthetic photo series with exact ground truth.

    Parameters
    ----------
    spec : SeriesSpec
        What to generate; the same spec always gives the same pixels.

    Returns
    -------
    SyntheticSeries
        One `SyntheticVisit` per entry of ``spec.weeks``.

    Raises
    ------
    TypeError
        If `spec` is not a `SeriesSpec`.

    Notes
    -----
    Progress runs from 0 at baseline to 1 at the last visit as ``(dw / dw_last) ** 1.3`` (slow
    start). Courses:

    - perifollicular: pigment islands (one follicle per 3-6 mm^2, staggered onsets, varied
      speeds) grow and merge inside the patch;
    - marginal: the border advances inward along the signed distance, irregularly;
    - combined: both;
    - stable: the same pigment map at every visit;
    - spreading: the border moves outward and a satellite patch appears outside the baseline
      footprint from progress 0.35 on;
    - diffuse: pigment rises across the whole patch (to ~0.6 on average), unevenly.

    The strength of each course is calibrated so the last visit's depigmented area is
    ``final_residual`` x baseline (or the growth factor for spreading) to within a few
    percent. Wrong-place visits show another scene (new seed, same skin type, same course
    progress); their ``truth_mask_baseline`` is all False.

    Examples
    --------
    >>> series = generate_series(SeriesSpec(seed=1, image_size=(320, 240), weeks=(0, 24)))
    >>> [v.image.shape for v in series.visits]
    [(240, 320, 3), (240, 320, 3)]
    >>> round(series.truth_repigmentation_pct(1)) in range(60, 81)
    True
    """
    if not isinstance(spec, SeriesSpec):
        raise TypeError(f"spec must be a SeriesSpec, got {type(spec).__name__}")
    rng = np.random.default_rng(spec.seed)
    scene_rng, camera_rng, wrong_rng = rng.spawn(3)
    n = len(spec.weeks)
    progress = _progress(spec.weeks)
    wrong = set(spec.wrong_place_visits)
    main = _Scene(scene_rng, spec, [k for k in range(n) if k not in wrong])
    visit_rngs = camera_rng.spawn(n)
    # Strong lights come from a stream of their own: light_casts=0 leaves every photo as it was.
    cast_rng = np.random.default_rng([spec.seed, 0x11647])
    casts = [None] + [
        str(cast_rng.choice(sorted(LIGHT_CASTS))) if cast_rng.random() < spec.light_casts else None
        for _ in range(n - 1)
    ]
    wrong_seeds = wrong_rng.integers(0, 2**63 - 1, n)
    size = spec.image_size
    h0 = main.pose(0).h
    area_px = main.mpp**2
    visits: list[SyntheticVisit] = []
    for k, week in enumerate(spec.weeks):
        t = float(progress[k])
        if k in wrong:
            # Another body site of the same patient, with the clinic's same marker.
            scene = _Scene(np.random.default_rng(int(wrong_seeds[k])), spec, [k], main.marker_id)
        else:
            scene = main
        pose = scene.pose(k)
        p = scene.pigment(t)
        image = _photograph(scene, scene.render(k, p), pose, visit_rngs[k], spec, light=casts[k])
        mask_photo = scene.truth_mask(p, pose.h, size)
        if k in wrong:
            mask_base = np.zeros((size[1], size[0]), bool)
        elif k == 0:
            mask_base = mask_photo.copy()
        else:
            mask_base = scene.truth_mask(p, h0, size)
        q_lo, q_hi = spec.jpeg_quality
        quality = int(visit_rngs[k].integers(q_lo, q_hi + 1))
        visits.append(SyntheticVisit(
            week=float(week),
            date=spec.treatment_start + datetime.timedelta(days=round(7 * week)),
            image=image,
            truth_mask_photo=mask_photo,
            truth_mask_baseline=mask_base,
            scene_to_photo=pose.h.copy(),
            wrong_place=k in wrong,
            jpeg_quality=quality,
            marker_corners=scene.marker_corners_photo(k),
            truth_area_mm2=float(np.count_nonzero(p < 0.5)) * area_px,
            light=casts[k],
        ))
    baseline_mm_per_px = None
    if spec.marker:
        baseline_mm_per_px = spec.marker_mm / math.sqrt(_quad_area(visits[0].marker_corners))
    return SyntheticSeries(
        spec=spec,
        visits=visits,
        mm_per_scene_px=main.mpp,
        baseline_mm_per_px=baseline_mm_per_px,
        marker_id=main.marker_id,
    )


def _visit_stem(k: int, visit: SyntheticVisit) -> str:
    return f"visit_{k:02d}_{visit.date.isoformat()}"


def write_series(series: SyntheticSeries, directory: str | os.PathLike) -> Path:
    """Write a series as JPEG photos, a visits file and the ground truth.

    Parameters
    ----------
    series : SyntheticSeries
        Output of `generate_series`.
    directory : str or os.PathLike
        Folder to write into; created if missing, existing files are overwritten.

    Returns
    -------
    pathlib.Path
        The folder, holding ``visit_{k:02d}_{YYYY-MM-DD}.jpg`` per visit (EXIF
        DateTimeOriginal when ``spec.exif_dates``), ``visits.csv`` (``date,image``),
        ``truth/{stem}_baseline.png`` and ``truth/{stem}_photo.png`` (uint8 0/255) and
        ``truth.json``.

    Notes
    -----
    In ``truth.json`` the baseline-frame figures (``truth_area_px``,
    ``truth_repigmentation_pct``) of a wrong-place visit are null.
    """
    out = Path(directory)
    (out / "truth").mkdir(parents=True, exist_ok=True)
    spec = series.spec
    rows = []
    visits_json = []
    for k, v in enumerate(series.visits):
        stem = _visit_stem(k, v)
        name = f"{stem}.jpg"
        kwargs: dict[str, Any] = {"quality": int(v.jpeg_quality)}
        if spec.exif_dates:
            exif = Image.Exif()
            stamp = f"{v.date:%Y:%m:%d} 10:{(7 * k) % 60:02d}:00"
            exif[ExifTags.Base.DateTime] = stamp
            exif[ExifTags.Base.Software] = "repigment.synthetic"
            exif.get_ifd(ExifTags.IFD.Exif)[ExifTags.Base.DateTimeOriginal] = stamp
            kwargs["exif"] = exif.tobytes()
        Image.fromarray(v.image, "RGB").save(out / name, "JPEG", **kwargs)
        for which, mask in (("baseline", v.truth_mask_baseline), ("photo", v.truth_mask_photo)):
            png = Image.fromarray(mask.astype(np.uint8) * 255, "L")
            png.save(out / "truth" / f"{stem}_{which}.png")
        rows.append((v.date.isoformat(), name))
        pct = series.truth_repigmentation_pct(k)
        visits_json.append({
            "image": name,
            "date": v.date.isoformat(),
            "week": v.week,
            "wrong_place": v.wrong_place,
            "truth_area_px": None if v.wrong_place else series.truth_area_px(k),
            "truth_repigmentation_pct": None if v.wrong_place or math.isnan(pct) else pct,
            "truth_area_cm2": series.truth_area_cm2(k),
            "jpeg_quality": v.jpeg_quality,
            "light": v.light,
            "scene_to_photo": v.scene_to_photo.tolist(),
            "marker_corners": None if v.marker_corners is None else v.marker_corners.tolist(),
            "truth_mask_baseline": f"truth/{stem}_baseline.png",
            "truth_mask_photo": f"truth/{stem}_photo.png",
        })
    with open(out / "visits.csv", "w", newline="", encoding="utf-8") as fh:
        writer = csv.writer(fh)
        writer.writerow(["date", "image"])
        writer.writerows(rows)
    doc = {
        "generator": "repigment.synthetic",
        "truth_definition": "depigmented = pigment < 0.5 (1 = normal pigment, 0 = none)",
        "spec": spec.to_dict(),
        "mm_per_scene_px": series.mm_per_scene_px,
        "baseline_mm_per_px": series.baseline_mm_per_px,
        "marker_id": series.marker_id,
        "treatment_start": spec.treatment_start.isoformat(),
        "visits": visits_json,
    }
    with open(out / "truth.json", "w", encoding="utf-8") as fh:
        json.dump(doc, fh, indent=2)
        fh.write("\n")
    return out
