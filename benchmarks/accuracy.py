"""Accuracy of repigment on generated series whose truth is known.

Generates series covering all six Fitzpatrick skin types and the
perifollicular, marginal, combined, stable and spreading courses (a scale
marker in most, cloth or background in some, a photo of a different place in
some), runs ``repigment.analyze_series`` on the written JPEGs exactly as a user
would, and compares with the truth.

Usage::

    python benchmarks/accuracy.py                 # 24 series, the issue's figures
    python benchmarks/accuracy.py --series 30 --seed-offset 7000   # held-out seeds
    python benchmarks/accuracy.py --quick          # 6 series, for a fast check
    python benchmarks/accuracy.py --patch-share 0.3,0.6 --no-marker   # large patches, cut by the frame
    python benchmarks/accuracy.py --series 12 --image-size 4000x3000  # 12 MP photos, as phones take them

A quarter of the follow-up visits are photographed under a strong light of their
own (tungsten, fluorescent, shade, flash, washed-out, +-1.5 EV; ``--light-casts``).

Prints median Dice of the masks, mean absolute error of repigmentation %
(points), the largest |repigmentation %| on stable series, the registration
success rate, the share of wrong-place photos flagged, how many visits are more
than 5 points off without a "needs review" flag, and Dice by skin tone, each
against its target.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np

COURSES = ("perifollicular", "marginal", "combined", "stable", "spreading")
TYPES = ("I", "II", "III", "IV", "V", "VI")


@dataclass
class VisitOutcome:
    series: str
    skin_type: str
    course: str
    image: str
    week: float
    wrong_place: bool
    flagged: bool  # registration failed or visit error
    dice: float | None
    truth_pct: float | None
    measured_pct: float | None
    error: str | None
    interval: tuple[float, float] | None = None
    registered: bool | None = None  # None: the series itself could not be scored
    doubted: bool = False  # scored, but with a note that the figures are in doubt
    needs_review: bool = False  # scored, but flagged: evidence contradicts the figure
    light: str | None = None  # the strong light the photo was taken under, if any
    evidence_residual: float | None = None  # the footprint-contrast self-check's estimate
    residual: float | None = None  # the mask's share of the baseline patch still depigmented


def series_specs(count: int, seed_offset: int, light_casts: float = 0.25,
                 patch_share: tuple[float, float] = (0.08, 0.20), marker: bool = True,
                 image_size: tuple[int, int] = (1200, 900)):
    from repigment.synthetic import SeriesSpec

    rng = np.random.default_rng(seed_offset)
    specs = []
    for i in range(count):
        course = COURSES[i % len(COURSES)]
        final = 1.4 if course == "spreading" else (1.0 if course == "stable" else float(rng.uniform(0.1, 0.6)))
        specs.append(
            SeriesSpec(
                seed=seed_offset + i,
                skin_type=TYPES[i % len(TYPES)],
                course=course,
                marker=marker and (i % 6 != 5),
                clutter=(i % 3 == 0),
                final_residual=final,
                wrong_place_visits=(3,) if i % 4 == 1 else (),
                light_casts=light_casts,
                patch_share=patch_share,
                image_size=image_size,
            )
        )
    return specs


def _dice(a: np.ndarray, b: np.ndarray) -> float:
    total = int(a.sum()) + int(b.sum())
    return 1.0 if total == 0 else 2.0 * int((a & b).sum()) / total


def run_series(spec, workdir: str) -> list[VisitOutcome]:
    import cv2

    from repigment import analyze_series
    from repigment.errors import RepigmentError
    from repigment.series.results import MaskWriter, write_results
    from repigment.synthetic import generate_series, write_series

    name = f"s{spec.seed}_{spec.skin_type}_{spec.course}"
    series_dir = Path(workdir) / name
    write_series(generate_series(spec), series_dir)
    truth = json.loads((series_dir / "truth.json").read_text())
    out_dir = Path(workdir) / f"{name}_out"
    outcomes = []
    try:
        result = analyze_series(series_dir, mask_writer=MaskWriter(out_dir))
        write_results(result, out_dir)
    except RepigmentError as exc:
        for t in truth["visits"]:
            outcomes.append(VisitOutcome(name, spec.skin_type, spec.course, t["image"], t["week"], t["wrong_place"],
                                         True, None, t["truth_repigmentation_pct"], None, f"series failed: {exc}"))
        return outcomes
    by_image = {v.image: v for v in result.visits}
    for t in truth["visits"]:
        visit = by_image[t["image"]]
        stem = Path(t["image"]).stem
        dice = None
        if visit.ok and not t["wrong_place"]:
            measured = cv2.imread(str(out_dir / visit.mask_path), cv2.IMREAD_GRAYSCALE) > 0
            expected = cv2.imread(str(series_dir / "truth" / f"{stem}_baseline.png"), cv2.IMREAD_GRAYSCALE) > 0
            dice = _dice(measured, expected)
        outcomes.append(
            VisitOutcome(
                series=name,
                skin_type=spec.skin_type,
                course=spec.course,
                image=t["image"],
                week=t["week"],
                wrong_place=t["wrong_place"],
                flagged=not visit.ok,
                dice=dice,
                truth_pct=t["truth_repigmentation_pct"],
                measured_pct=visit.score.repigmentation_pct if visit.ok and visit.score else None,
                error=visit.error,
                interval=visit.intervals.get("repigmentation_pct") if visit.ok else None,
                registered=visit.registration is not None and visit.registration.ok,
                doubted=visit.ok and any(_DOUBT in note for note in visit.notes),
                needs_review=visit.ok and visit.needs_review,
                light=t.get("light"),
                evidence_residual=visit.evidence_residual if visit.ok else None,
                residual=visit.score.residual_fraction if visit.ok and visit.score else None,
            )
        )
    return outcomes


# The pipeline's notes that tell the user not to trust a visit's figures.
_DOUBT = "before trusting these figures"


def summarize(outcomes: list[VisitOutcome]) -> tuple[list[tuple[str, str, str, bool]], dict]:
    right_place = [o for o in outcomes if not o.wrong_place]
    followups = [o for o in right_place if o.week > 0]
    dices = [o.dice for o in right_place if o.dice is not None]
    errors = [abs(o.measured_pct - o.truth_pct) for o in followups if o.measured_pct is not None]
    stable = [abs(o.measured_pct) for o in followups if o.course == "stable" and o.measured_pct is not None]
    registered = [o.registered for o in followups if o.registered is not None]
    series_failed = sorted({o.series for o in outcomes if o.registered is None})
    wrong = [o.flagged for o in outcomes if o.wrong_place]
    by_type = {}
    for t in TYPES:
        values = [o.dice for o in right_place if o.skin_type == t and o.dice is not None]
        by_type[t] = statistics.median(values) if values else float("nan")
    covered = [o.interval[0] <= o.truth_pct <= o.interval[1] for o in followups if o.interval is not None]
    doubted = [o for o in followups if o.measured_pct is not None and o.doubted]
    trusted_errors = [abs(o.measured_pct - o.truth_pct) for o in followups if o.measured_pct is not None
                      and not o.doubted and not o.needs_review]
    off = [o for o in followups if o.measured_pct is not None and abs(o.measured_pct - o.truth_pct) > 5]
    unflagged_off = [o for o in off if not (o.needs_review or o.doubted)]
    figures = {
        "visits_off_by_over_5": len(off),
        "visits_off_by_over_5_unflagged": len(unflagged_off),
        "unflagged_share_of_off": len(unflagged_off) / len(off) if off else 0.0,
        "visits_needs_review": sum(o.needs_review for o in followups),
        "interval_coverage": float(np.mean(covered)) if covered else float("nan"),
        "visits_doubted": len(doubted),
        "visits_doubted_off_by_over_10": sum(abs(o.measured_pct - o.truth_pct) > 10 for o in doubted),
        "mae_pct_points_not_doubted": float(np.mean(trusted_errors)) if trusted_errors else float("nan"),
        "median_dice": statistics.median(dices) if dices else float("nan"),
        "mae_pct_points": float(np.mean(errors)) if errors else float("nan"),
        "max_abs_stable_pct": max(stable) if stable else float("nan"),
        "registration_success": float(np.mean(registered)) if registered else float("nan"),
        "wrong_place_flagged": float(np.mean(wrong)) if wrong else float("nan"),
        "dice_by_skin_type": by_type,
        "visits": len(outcomes),
        "series_not_scored": series_failed,
        "series": len({o.series for o in outcomes}),
    }
    rows = [
        ("median Dice (masks vs truth)", f"{figures['median_dice']:.3f}", ">= 0.95", figures["median_dice"] >= 0.95),
        ("MAE repigmentation %", f"{figures['mae_pct_points']:.2f} points", "<= 2", figures["mae_pct_points"] <= 2),
        ("max |repigmentation %| on stable", f"{figures['max_abs_stable_pct']:.2f} points", "<= 1.5",
         figures["max_abs_stable_pct"] <= 1.5),
        ("visits > 5 points off without a flag", f"{len(unflagged_off)} of {len(off)}", "0",
         not unflagged_off),
        ("registration success", f"{figures['registration_success']:.1%}", ">= 95%",
         figures["registration_success"] >= 0.95),
        ("series not scored (baseline refused)", f"{len(series_failed)} of {figures['series']}", "0",
         not series_failed),
        ("wrong-place photos flagged", f"{figures['wrong_place_flagged']:.0%} of {len(wrong)}", "100%",
         figures["wrong_place_flagged"] == 1.0),
    ]
    rows.append(("visits flagged needs review", str(figures["visits_needs_review"]), "(info)", True))
    rows.append(("truth inside repigmentation % interval", f"{figures['interval_coverage']:.0%}", "(info)", True))
    rows.append(("visits scored with a doubt note (off by >10)",
                 f"{len(doubted)} ({figures['visits_doubted_off_by_over_10']})", "(info)", True))
    rows.append(("MAE repigmentation %, visits without a note or flag",
                 f"{figures['mae_pct_points_not_doubted']:.2f} points",
                 "(info)", True))
    for t in TYPES:
        rows.append((f"median Dice, skin type {t}", f"{by_type[t]:.3f}", ">= 0.90", by_type[t] >= 0.90))
    return rows, figures


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--series", type=int, default=24, help="number of generated series (default 24)")
    parser.add_argument("--seed-offset", type=int, default=1000, help="first seed (use another for held-out series)")
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--quick", action="store_true", help="6 series only")
    parser.add_argument("--light-casts", type=float, default=0.25,
                        help="chance that a follow-up visit is photographed under a strong light (default 0.25)")
    parser.add_argument("--patch-share", default="0.08,0.20", metavar="LOW,HIGH",
                        help="range of the baseline patch's share of the frame, up to 0.6 (default 0.08,0.20)")
    parser.add_argument("--no-marker", action="store_true",
                        help="no scale marker in any photo (a large patch then may run past the frame)")
    parser.add_argument("--image-size", default="1200x900", metavar="WxH",
                        help="size of the generated photos (default 1200x900; 4000x3000 is 12 MP, minutes a series)")
    parser.add_argument("--json", type=Path, help="also write the figures and per-visit outcomes here")
    parser.add_argument("--verbose", action="store_true", help="print every visit")
    args = parser.parse_args(argv)
    count = 6 if args.quick else args.series
    try:
        low, high = (float(part) for part in args.patch_share.split(","))
    except ValueError:
        parser.error(f"--patch-share must be LOW,HIGH, got {args.patch_share!r}")
    try:
        width, height = (int(part) for part in args.image_size.lower().split("x"))
    except ValueError:
        parser.error(f"--image-size must be WIDTHxHEIGHT, got {args.image_size!r}")
    try:
        specs = series_specs(count, args.seed_offset, args.light_casts, (low, high), marker=not args.no_marker,
                             image_size=(width, height))
    except ValueError as exc:  # the spec's own check, e.g. a share over 0.6
        parser.error(str(exc))
    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="repigment-bench-") as workdir:
        with ProcessPoolExecutor(max_workers=args.workers) as pool:
            chunks = list(pool.map(run_series, specs, [workdir] * len(specs)))
    elapsed = time.perf_counter() - started
    outcomes = [o for chunk in chunks for o in chunk]
    if args.verbose:
        for o in outcomes:
            measured = "—" if o.measured_pct is None else f"{o.measured_pct:6.1f}"
            dice = "—" if o.dice is None else f"{o.dice:.3f}"
            truth = "—" if o.truth_pct is None else f"{o.truth_pct:6.1f}"
            print(f"{o.series:28s} {o.image:26s} wk{o.week:5.1f} truth {truth} "
                  f"measured {measured} dice {dice} {'WRONG-PLACE ' if o.wrong_place else ''}"
                  f"{'[' + o.light + '] ' if o.light else ''}{'REVIEW ' if o.needs_review else ''}{o.error or ''}")
    rows, figures = summarize(outcomes)
    print(f"repigment accuracy on {figures['series']} generated series, {figures['visits']} photos "
          f"(seeds {args.seed_offset}..{args.seed_offset + count - 1}, {elapsed:.0f} s)")
    width = max(len(r[0]) for r in rows)
    for label, value, target, met in rows:
        print(f"  {label:<{width}}  {value:>16}   target {target:<8} {'ok' if met else 'MISSED'}")
    if args.json:
        args.json.write_text(json.dumps({"figures": figures, "outcomes": [o.__dict__ for o in outcomes]}, indent=1))
    return 0 if all(r[3] for r in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
