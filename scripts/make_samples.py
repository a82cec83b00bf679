"""Regenerate the bundled sample series in sample_images/ (deterministic).

Usage: python scripts/make_samples.py
"""

from __future__ import annotations

import shutil
from pathlib import Path

from repigment.synthetic import SeriesSpec, generate_series, write_series

ROOT = Path(__file__).resolve().parents[1] / "sample_images"

SAMPLES = {
    # A typical responder on the face: perifollicular islands and a receding border.
    "series_a": SeriesSpec(seed=101, skin_type="III", course="combined", final_residual=0.25, jpeg_quality=(85, 90)),
    # Dark skin, islands of repigmentation, background cloth in the frame.
    "series_b": SeriesSpec(seed=202, skin_type="VI", course="perifollicular", final_residual=0.4, clutter=True,
                           jpeg_quality=(85, 90)),
    # Very light skin (lowest contrast), marginal response, no scale marker (areas in px only),
    # and one photo of a different place that must be flagged.
    "series_c": SeriesSpec(seed=303, skin_type="I", course="marginal", final_residual=0.5, marker=False,
                           wrong_place_visits=(3,), jpeg_quality=(85, 90)),
    # A patch that spreads (disease activity), dates in EXIF.
    "series_d": SeriesSpec(seed=404, skin_type="IV", course="spreading", final_residual=1.4, exif_dates=True,
                           jpeg_quality=(85, 90)),
}


def main() -> None:
    for name, spec in SAMPLES.items():
        target = ROOT / name
        if target.exists():
            shutil.rmtree(target)
        write_series(generate_series(spec), target)
        size = sum(p.stat().st_size for p in target.rglob("*") if p.is_file())
        print(f"{name}: {spec.skin_type} {spec.course}, {size / 1e6:.1f} MB")


if __name__ == "__main__":
    main()
