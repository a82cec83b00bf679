"""Agreement of repigment's masks with hand-drawn outlines on real photos.

The generator's truth shares the method's own assumptions; real photos do not.
This scores :func:`repigment.segment_image` against the outlines of a folder of
real photos in three modes, the same protocol as the project's held-out check:

- **auto**: the whole photo, nothing else;
- **box**: the outline's bounding box, grown by 15 % of its width and height on
  each side and clipped to the photo, as ``roi``;
- **scribbles**: three 5 px strokes inside the outline eroded by 6 px (label 1)
  and three in the ring 10-30 px outside it (label 2), from a fixed seed, as
  ``labels``.

It prints median Dice per mode for all photos and for ``single`` clinical
photos (``photos.csv``), then, for a folder of photos without outlines, how
many get a mask, and writes contact sheets (photo, mask outlined) to look at.

Usage::

    python benchmarks/real_photos.py [FOLDER] [--unlabelled DIR] [--sheet DIR] [--workers N]

FOLDER (default ``../shared/real/labelled``) holds ``images/``, ``masks/``
(0/255 PNG, same names) and ``photos.csv`` (``image,kind``). The photos are
read where they are; nothing derived from them is written into the project
(contact sheets go to ``--sheet``, by default a temporary folder).
"""

from __future__ import annotations

import argparse
import csv
import os
import sys
import tempfile
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_LABELLED = ROOT.parent / "shared" / "real" / "labelled"
DEFAULT_UNLABELLED = ROOT.parent / "shared" / "real" / "unlabelled"
MODES = ("auto", "box", "scribbles")
IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".webp", ".tif", ".tiff"}


def dice(a: np.ndarray, b: np.ndarray) -> float:
    total = int(a.sum()) + int(b.sum())
    return 1.0 if total == 0 else 2.0 * int((a & b).sum()) / total


def grown_box(truth: np.ndarray) -> tuple[int, int, int, int]:
    """The outline's bounding box grown 15 % each side, clipped: (x, y, w, h)."""
    ys, xs = np.nonzero(truth)
    height, width = truth.shape
    x0, x1, y0, y1 = xs.min(), xs.max(), ys.min(), ys.max()
    gx, gy = int(0.15 * (x1 - x0 + 1)), int(0.15 * (y1 - y0 + 1))
    x0, y0 = max(0, x0 - gx), max(0, y0 - gy)
    x1, y1 = min(width - 1, x1 + gx), min(height - 1, y1 + gy)
    return int(x0), int(y0), int(x1 - x0 + 1), int(y1 - y0 + 1)


def scribbles(truth: np.ndarray, seed: int) -> np.ndarray:
    """Three strokes inside the eroded outline (1) and three in the ring outside it (2)."""
    import cv2

    rng = np.random.default_rng(seed)
    kernel = np.ones((3, 3), np.uint8)
    outline = truth.astype(np.uint8)
    inside = cv2.erode(outline, kernel, iterations=6) > 0
    if not inside.any():
        inside = truth
    ring = (cv2.dilate(outline, kernel, iterations=30) > 0) & ~(cv2.dilate(outline, kernel, iterations=10) > 0)
    labels = np.zeros(truth.shape, np.uint8)
    for value, region in ((1, inside), (2, ring)):
        ys, xs = np.nonzero(region)
        if len(ys) == 0:
            continue
        for _ in range(3):
            i, j = rng.integers(len(ys), size=2)
            stroke = np.zeros(truth.shape, np.uint8)
            cv2.line(stroke, (int(xs[i]), int(ys[i])), (int(xs[j]), int(ys[j])), 1, 5)
            labels[(stroke > 0) & region] = value
    return labels


def score_photo(task: tuple[int, str, str, int]) -> tuple[str, dict[str, float], np.ndarray]:
    """Dice of each mode for one labelled photo, and the automatic mask.

    With more than one stroke set, ``scribbles@K`` holds the Dice of the K-th
    set of strokes (seed ``1000 * (K + 1) + index``).
    """
    import cv2

    from repigment import segment_image

    index, image_path, mask_path, stroke_sets = task
    truth = cv2.imread(mask_path, cv2.IMREAD_GRAYSCALE) > 127
    scores: dict[str, float] = {}
    auto_mask = np.zeros(truth.shape, bool)
    for mode in MODES:
        options: dict = {}
        if mode == "box":
            options["roi"] = grown_box(truth)
        elif mode == "scribbles":
            options["labels"] = scribbles(truth, 1000 + index)
        mask = segment_image(image_path, **options).mask
        scores[mode] = dice(mask, truth) if mask.shape == truth.shape else 0.0
        if mode == "auto":
            auto_mask = mask
    for k in range(1, stroke_sets):
        mask = segment_image(image_path, labels=scribbles(truth, 1000 * (k + 1) + index)).mask
        scores[f"scribbles@{k}"] = dice(mask, truth) if mask.shape == truth.shape else 0.0
    return os.path.basename(image_path), scores, auto_mask


def auto_mask(image_path: str) -> tuple[str, np.ndarray | None, str]:
    """The automatic mask of a photo without outline (None when it cannot be read)."""
    from repigment import segment_image
    from repigment.errors import RepigmentError

    try:
        result = segment_image(image_path)
    except RepigmentError as exc:
        return os.path.basename(image_path), None, str(exc)
    return os.path.basename(image_path), result.mask, f"{result.method} {result.confidence:.2f}"


def contact_sheet(items, path: Path, *, tile: int = 200, columns: int = 8, truths=None) -> None:
    """Photos with the mask outlined in magenta (and the hand outline in green)."""
    import cv2

    tiles = []
    for name, mask in items:
        bgr = cv2.imread(str(name[0]))
        if bgr is None:
            continue
        view = bgr.copy()
        for outline, colour in ((mask, (255, 0, 255)), ((truths or {}).get(name[1]), (0, 255, 0))):
            if outline is None or outline.shape != view.shape[:2]:
                continue
            contours, _ = cv2.findContours(outline.astype(np.uint8), cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_NONE)
            cv2.drawContours(view, contours, -1, colour, max(1, max(view.shape[:2]) // 300))
        scale = tile / max(view.shape[:2])
        view = cv2.resize(view, (max(1, int(view.shape[1] * scale)), max(1, int(view.shape[0] * scale))))
        canvas = np.full((tile, tile, 3), 32, np.uint8)
        canvas[: view.shape[0], : view.shape[1]] = view
        cv2.putText(canvas, name[1][:18], (3, tile - 5), cv2.FONT_HERSHEY_SIMPLEX, 0.35, (255, 255, 255), 1)
        tiles.append(canvas)
    if not tiles:
        return
    while len(tiles) % columns:
        tiles.append(np.full_like(tiles[0], 32))
    rows = [np.hstack(tiles[i : i + columns]) for i in range(0, len(tiles), columns)]
    cv2.imwrite(str(path), np.vstack(rows))


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("folder", nargs="?", type=Path, default=DEFAULT_LABELLED,
                        help="folder with images/, masks/ and photos.csv (default ../shared/real/labelled)")
    parser.add_argument("--unlabelled", type=Path, default=DEFAULT_UNLABELLED,
                        help="folder of photos without outlines (default ../shared/real/unlabelled)")
    parser.add_argument("--sheet", type=Path, default=None, help="folder for the contact sheets (default: temporary)")
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--verbose", action="store_true", help="print every photo's Dice")
    parser.add_argument("--stroke-sets", type=int, default=1,
                        help="also score this many other random sets of strokes (how much the figure "
                             "depends on where the strokes fall)")
    args = parser.parse_args(argv)

    images = args.folder / "images"
    if not images.is_dir():
        print(f"error: {images} is not a folder of photos (see --help)", file=sys.stderr)
        return 2
    kinds = {}
    if (args.folder / "photos.csv").is_file():
        with open(args.folder / "photos.csv", newline="") as handle:
            kinds = {row["image"]: row.get("kind", "") for row in csv.DictReader(handle)}
    photos = sorted(p for p in images.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
    tasks = [(i, str(p), str(args.folder / "masks" / (p.stem + ".png")), max(1, args.stroke_sets))
             for i, p in enumerate(photos)
             if (args.folder / "masks" / (p.stem + ".png")).is_file()]
    sheet_dir = args.sheet or Path(tempfile.mkdtemp(prefix="repigment-real-"))
    sheet_dir.mkdir(parents=True, exist_ok=True)

    with ProcessPoolExecutor(max_workers=max(1, args.workers)) as pool:
        results = list(pool.map(score_photo, tasks))
        unlabelled = []
        if args.unlabelled.is_dir():
            paths = sorted(str(p) for p in args.unlabelled.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
            unlabelled = list(pool.map(auto_mask, paths, chunksize=4))

    single = np.array([kinds.get(name) == "single" for name, _, _ in results])
    if args.verbose:
        for name, scores, _ in results:
            print(f"{name:<20} {kinds.get(name, ''):<10} " + "  ".join(f"{m} {scores[m]:.2f}" for m in MODES))
    print(f"real photos with outlines: {len(results)} ({int(single.sum())} single) in {args.folder}")
    for mode in MODES:
        values = np.array([scores[mode] for _, scores, _ in results])
        single_part = f", single {np.median(values[single]):.2f}" if single.any() else ""
        print(f"  {mode:<10} median Dice {np.median(values):.2f}{single_part}  (mean {values.mean():.2f}, "
              f"Dice 0 on {int((values == 0).sum())})")
    if args.stroke_sets > 1:
        sets = ["scribbles"] + [f"scribbles@{k}" for k in range(1, args.stroke_sets)]
        medians = np.array([[np.median([scores[key] for _, scores, _ in results]),
                             np.median([scores[key] for (_, scores, _), s in zip(results, single) if s])]
                            for key in sets])
        print(f"  scribbles over {len(sets)} stroke sets: median Dice {medians[:, 0].mean():.2f} "
              f"(range {medians[:, 0].min():.2f}-{medians[:, 0].max():.2f}), single {medians[:, 1].mean():.2f} "
              f"(range {medians[:, 1].min():.2f}-{medians[:, 1].max():.2f})")
    truths = {name: (__import__("cv2").imread(str(args.folder / "masks" / (Path(name).stem + ".png")), 0) > 127)
              for name, _, _ in results}
    contact_sheet([((images / name, name), mask) for name, _, mask in results], sheet_dir / "labelled_auto.png",
                  truths=truths)
    if unlabelled:
        masked = sum(1 for _, mask, _ in unlabelled if mask is not None and mask.any())
        unreadable = sum(1 for _, mask, _ in unlabelled if mask is None)
        print(f"photos without outlines: {masked} of {len(unlabelled)} get a mask ({unreadable} unreadable) "
              f"in {args.unlabelled}")
        contact_sheet([((args.unlabelled / name, name), mask) for name, mask, _ in unlabelled if mask is not None],
                      sheet_dir / "unlabelled_auto.png", columns=15, tile=160)
    print(f"contact sheets: {sheet_dir}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
