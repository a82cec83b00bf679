"""Register a visit photo onto the baseline photo.

The patch itself changes between visits (its border moves as it repigments), so
alignment must not lean on it: features are taken only from skin *outside* the
patch and away from the re-stuck scale marker. SIFT keypoints on a contrast-
normalised grey image (robust to lighting) are matched with Lowe's ratio test and
a homography is fitted with USAC-MAGSAC, which covers rotation, scale and
perspective tilt of a roughly flat skin area.

A registration that cannot be trusted is returned with ``ok=False`` and a
reason instead of raising: too few consistent matches, an implausible
transform (mirror, extreme scale or shear), matches bunched in one corner, or
an aligned pair whose fine skin texture does not agree (a photo of another
place).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .arrays import as_rgb

__all__ = [
    "REGISTRATION_METHOD",
    "Registration",
    "ImageFeatures",
    "image_features",
    "register_to_baseline",
    "warp_to_baseline",
    "compose_scaling",
    "visible_in_baseline",
]

#: Identifies this registration in every saved record; bump when results would change. (The
#: name is the method's, not a module path: it keeps the spelling of the records already saved.)
REGISTRATION_METHOD = "repigment.registration.register_to_baseline/sift-magsac-v2"

_RATIO = 0.8
_MIN_INLIERS = 25
_MIN_INLIER_RATIO = 0.15
_MIN_SPREAD = 0.04
_MIN_TEXTURE_AGREEMENT = 0.25
_RANSAC_PX = 3.0
# The strongest keypoints kept per photo. Matching cost grows with the square
# of this; skin photos give hundreds of inliers at 1,000 (25 are required).
_MAX_FEATURES = 1000
# SIFT runs on a copy this much smaller than the working image.
_FEATURE_SCALE = 0.4


@dataclass(frozen=True)
class Registration:
    """Result of :func:`register_to_baseline`.

    Attributes
    ----------
    ok : bool
        Whether the alignment can be trusted.
    homography : ndarray of float, shape (3, 3) or None
        Maps moving-image pixels (x, y, 1) to baseline pixels.
    score : float
        Quality in [0, 1]: agreement of fine skin texture after alignment
        (normalised cross-correlation of band-passed grey images on skin
        outside the patch). Wrong-place photos score near 0.
    reason : str or None
        Why the registration failed (``None`` when ``ok``).
    n_matches, n_inliers : int
        Ratio-test matches and homography inliers.
    residual_px : float
        Median reprojection error of the inliers, baseline pixels.
    code : str or None
        Machine-readable kind of failure: ``"no_texture"``, ``"few_matches"``,
        ``"few_inliers"``, ``"implausible"``, ``"narrow"`` (matches bunched in a
        corner) or ``"texture_mismatch"`` (aligned, but not the same skin).
    """

    ok: bool
    homography: np.ndarray | None
    score: float
    reason: str | None
    n_matches: int = 0
    n_inliers: int = 0
    residual_px: float = float("nan")
    code: str | None = None

    def __bool__(self) -> bool:
        return self.ok


def _prepare(rgb: np.ndarray) -> np.ndarray:
    """Grey image with local contrast normalised (CLAHE) so lighting matters less."""
    import cv2

    grey = cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY)
    clahe = cv2.createCLAHE(clipLimit=3.0, tileGridSize=(8, 8))
    return clahe.apply(grey)


@dataclass(frozen=True)
class ImageFeatures:
    """SIFT keypoints of a photo, computed once and reused for every visit.

    Attributes
    ----------
    grey : ndarray of uint8, shape (H, W)
        Contrast-normalised grey image.
    points : ndarray of float32, shape (N, 2)
        Keypoint positions (x, y).
    descriptors : ndarray of float32, shape (N, 128) or None
    mask : ndarray of bool or None
        Where features were allowed.
    texture : ndarray of float32, shape (H, W), optional
        The grey image's fine texture (band-passed), compared after
        alignment; computed from ``grey`` when not given.
    """

    grey: np.ndarray
    points: np.ndarray
    descriptors: np.ndarray | None
    mask: np.ndarray | None
    texture: np.ndarray | None = None

    def __post_init__(self):
        if self.texture is None:
            object.__setattr__(self, "texture", _band_pass(self.grey))


def image_features(rgb: np.ndarray, mask: np.ndarray | None = None) -> ImageFeatures:
    """Detect the features :func:`register_to_baseline` aligns on.

    Parameters
    ----------
    rgb : ndarray of uint8, shape (H, W, 3)
    mask : ndarray of bool, shape (H, W), optional
        Where features may be taken (skin outside the patch, away from the marker).

    Returns
    -------
    ImageFeatures
    """
    import cv2

    rgb = as_rgb(rgb)
    grey = _prepare(rgb)
    # SIFT doubles its input for the first octave, so a reduced copy still
    # reaches near the working resolution's finest scale, at a fraction of the cost.
    height, width = grey.shape
    small_size = (max(1, round(width * _FEATURE_SCALE)), max(1, round(height * _FEATURE_SCALE)))
    small = cv2.resize(grey, small_size, interpolation=cv2.INTER_AREA)
    small_mask = None if mask is None else cv2.resize(
        mask.astype(np.uint8) * 255, small_size, interpolation=cv2.INTER_NEAREST)
    sift = cv2.SIFT_create(contrastThreshold=0.02)
    # SIFT's own nfeatures cap would keep the strongest keypoints of the whole
    # photo *before* applying the mask, and the marker's corners or the patch's
    # border can take them all: keep the strongest allowed ones instead.
    keypoints = sift.detect(small, small_mask)
    if len(keypoints) > _MAX_FEATURES:
        order = sorted(range(len(keypoints)), key=lambda i: -keypoints[i].response)  # stable: deterministic
        keypoints = [keypoints[i] for i in order[:_MAX_FEATURES]]
    keypoints, descriptors = sift.compute(small, keypoints)
    points = np.float32([k.pt for k in keypoints]).reshape(-1, 2)
    points = (points + 0.5) * np.float32([width / small_size[0], height / small_size[1]]) - 0.5
    return ImageFeatures(grey=grey, points=points, descriptors=descriptors, mask=mask)


def _failed(code: str, reason: str, **kwargs) -> Registration:
    return Registration(ok=False, homography=kwargs.pop("homography", None), score=kwargs.pop("score", 0.0),
                        reason=reason, code=code, **kwargs)


def register_to_baseline(
    baseline_rgb: np.ndarray | None,
    moving_rgb: np.ndarray,
    *,
    baseline_mask: np.ndarray | None = None,
    moving_mask: np.ndarray | None = None,
    min_score: float = _MIN_TEXTURE_AGREEMENT,
    baseline_features: ImageFeatures | None = None,
    verify_masks: tuple[np.ndarray | None, np.ndarray | None] | None = None,
    moving_features: ImageFeatures | None = None,
) -> Registration:
    """Align a visit photo to the baseline photo.

    Parameters
    ----------
    baseline_rgb, moving_rgb : ndarray of uint8, shape (H, W, 3)
        The baseline and visit photos (working resolution; sizes may differ).
    baseline_mask, moving_mask : ndarray of bool, optional
        Where features may be taken in each photo: skin outside the patch and
        away from the marker. ``None`` uses the whole photo.
    min_score : float, optional
        Smallest texture agreement accepted after alignment.
    baseline_features : ImageFeatures, optional
        The baseline's features from :func:`image_features`, so a series
        computes them once; ``baseline_rgb`` and ``baseline_mask`` are then
        ignored (pass ``None``).
    verify_masks : tuple of (ndarray or None, ndarray or None), optional
        Baseline and moving masks on which the texture agreement is checked,
        when they differ from the feature masks (for example features taken
        from the whole frame but agreement required on skin).
    moving_features : ImageFeatures, optional
        The visit's features from :func:`image_features` (``moving_mask`` is
        then ignored), for instance computed ahead in another thread.

    Returns
    -------
    Registration
        ``ok`` with the homography and a quality score, or failed with a reason.

    Examples
    --------
    >>> import numpy as np, cv2
    >>> rng = np.random.default_rng(0)
    >>> texture = cv2.GaussianBlur(rng.integers(0, 255, (400, 400), dtype=np.uint8), (0, 0), 2)
    >>> base = cv2.cvtColor(cv2.equalizeHist(texture), cv2.COLOR_GRAY2RGB)
    >>> shift = np.float32([[1, 0, 12], [0, 1, -7]])
    >>> moved = cv2.warpAffine(base, shift, (400, 400))
    >>> reg = register_to_baseline(base, moved)
    >>> reg.ok, np.round(np.linalg.inv(reg.homography)[:2, 2]).tolist()
    (True, [12.0, -7.0])
    """
    import cv2

    if baseline_features is None:
        if baseline_rgb is None:
            raise ValueError("pass baseline_rgb or baseline_features")
        baseline_features = image_features(baseline_rgb, baseline_mask)
    moving = moving_features if moving_features is not None else image_features(moving_rgb, moving_mask)
    moving_mask = moving.mask
    base_grey = baseline_features.grey
    baseline_mask = baseline_features.mask
    des_b, des_m = baseline_features.descriptors, moving.descriptors
    n_features = min(len(baseline_features.points), len(moving.points))
    if des_b is None or des_m is None or n_features < _MIN_INLIERS:
        return _failed(
            "no_texture",
            f"too little skin texture to align on ({n_features} features); "
            "retake the photo in focus and with more normal skin around the patch"
        )
    matcher = cv2.BFMatcher(cv2.NORM_L2)
    pairs = matcher.knnMatch(des_m, des_b, k=2)
    good = [p[0] for p in pairs if len(p) == 2 and p[0].distance < _RATIO * p[1].distance]
    if len(good) < _MIN_INLIERS:
        return _failed(
            "few_matches",
            f"only {len(good)} skin features match the baseline; is this the same patch?",
            n_matches=len(good),
        )
    src = moving.points[[m.queryIdx for m in good]]
    dst = baseline_features.points[[m.trainIdx for m in good]]
    homography, inlier_flags = cv2.findHomography(
        src, dst, cv2.USAC_MAGSAC, _RANSAC_PX, maxIters=10000, confidence=0.999
    )
    if homography is None or inlier_flags is None:
        return _failed("few_inliers", "no consistent alignment to the baseline was found; is this the same patch?",
                       n_matches=len(good))
    inliers = inlier_flags.ravel().astype(bool)
    n_inliers = int(inliers.sum())
    projected = cv2.perspectiveTransform(src[inliers][None], homography)[0]
    residual = float(np.median(np.linalg.norm(projected - dst[inliers], axis=1))) if n_inliers else float("nan")
    stats = dict(n_matches=len(good), n_inliers=n_inliers, residual_px=residual)
    if n_inliers < _MIN_INLIERS or n_inliers < _MIN_INLIER_RATIO * len(good):
        return _failed(
            "few_inliers",
            f"only {n_inliers} of {len(good)} matched features agree on one alignment; is this the same patch?",
            **stats,
        )
    problem = _implausible(homography, moving_rgb.shape[:2])
    if problem:
        return _failed("implausible",
                       f"the alignment found is implausible ({problem}); retake from the baseline's distance and angle",
                       **stats)
    hull = cv2.convexHull(dst[inliers].reshape(-1, 1, 2))
    spread = cv2.contourArea(hull) / float(base_grey.shape[0] * base_grey.shape[1])
    if spread < _MIN_SPREAD:
        return _failed(
            "narrow",
            f"matching features cover only {spread:.0%} of the photo; frame the patch as at baseline",
            **stats,
        )
    check_base, check_moving = verify_masks if verify_masks is not None else (baseline_mask, moving_mask)
    score = _texture_agreement(baseline_features, moving, homography, check_base, check_moving)
    if score < min_score:
        return _failed(
            "texture_mismatch",
            f"after alignment the skin texture does not match the baseline (agreement {score:.2f}); "
            "this looks like a different place",
            homography=homography, score=score, **stats,
        )
    return Registration(ok=True, homography=homography, score=score, reason=None, **stats)


def _implausible(homography: np.ndarray, moving_shape: tuple[int, int]) -> str | None:
    """Reject mirrors, extreme zoom, shear and perspective a hand-held retake cannot produce."""
    h = homography / homography[2, 2]
    affine = h[:2, :2]
    det = float(np.linalg.det(affine))
    if det <= 0:
        return "mirror image"
    singular = np.linalg.svd(affine, compute_uv=False)
    scale = float(np.sqrt(det))
    if not 0.5 <= scale <= 2.0:
        return f"zoom x{scale:.2f}"
    if singular[0] / singular[1] > 1.6:
        return "strong shear"
    height, width = moving_shape
    if abs(h[2, 0]) * width + abs(h[2, 1]) * height > 0.6:
        return "extreme perspective"
    return None


def _band_pass(grey: np.ndarray) -> np.ndarray:
    import cv2

    g = grey.astype(np.float32)
    return cv2.GaussianBlur(g, (0, 0), 1.0) - cv2.GaussianBlur(g, (0, 0), 4.0)


def _texture_agreement(base: ImageFeatures, moving: ImageFeatures, homography, baseline_mask, moving_mask) -> float:
    """Normalised cross-correlation of band-passed texture on commonly visible skin."""
    import cv2

    height, width = base.grey.shape
    warped = cv2.warpPerspective(moving.texture, homography, (width, height), flags=cv2.INTER_LINEAR)
    valid_src = np.ones(moving.grey.shape, np.uint8) if moving_mask is None else moving_mask.astype(np.uint8)
    valid = cv2.warpPerspective(valid_src, homography, (width, height), flags=cv2.INTER_NEAREST).astype(bool)
    if baseline_mask is not None:
        valid &= baseline_mask
    valid = cv2.erode(valid.astype(np.uint8), np.ones((9, 9), np.uint8)).astype(bool)
    if valid.sum() < 500:
        return 0.0
    a = base.texture[valid]
    b = warped[valid]
    a = a - a.mean()
    b = b - b.mean()
    denom = float(np.sqrt((a * a).sum() * (b * b).sum()))
    return float(max(0.0, (a * b).sum() / denom)) if denom > 0 else 0.0


def compose_scaling(homography: np.ndarray, *, moving_scale: float, baseline_scale: float) -> np.ndarray:
    """Re-express a working-resolution homography between other resolutions.

    Parameters
    ----------
    homography : ndarray, shape (3, 3)
        Maps moving working pixels to baseline working pixels.
    moving_scale, baseline_scale : float
        Factor from the wanted moving/baseline pixel frames to the working
        frames (working = scale x wanted).

    Returns
    -------
    ndarray, shape (3, 3)
        Maps wanted-frame moving pixels to wanted-frame baseline pixels.
    """
    to_work = np.diag([moving_scale, moving_scale, 1.0])
    from_work = np.diag([1.0 / baseline_scale, 1.0 / baseline_scale, 1.0])
    return from_work @ homography @ to_work


def warp_to_baseline(mask: np.ndarray, homography: np.ndarray, baseline_shape: tuple[int, int]) -> np.ndarray:
    """Map a visit's boolean mask into the baseline frame.

    Parameters
    ----------
    mask : ndarray of bool, shape (H, W)
        Mask in the visit photo's frame.
    homography : ndarray, shape (3, 3)
        Visit pixels -> baseline pixels (of the wanted output resolution).
    baseline_shape : tuple of int
        ``(H0, W0)`` of the output.

    Returns
    -------
    ndarray of bool, shape (H0, W0)
        The mask resampled with linear interpolation and cut at one half, so
        an upsampled mask gets smooth, not blocky, borders.
    """
    import cv2

    height, width = baseline_shape
    # 0/255 in 8 bits: a quarter of the memory traffic of float, the same cut.
    warped = cv2.warpPerspective(
        np.where(mask, np.uint8(255), np.uint8(0)), homography, (width, height),
        flags=cv2.INTER_LINEAR, borderValue=0,
    )
    # Cut at one half (>= 128) straight into 0/1 bytes, viewed as bool.
    return cv2.threshold(warped, 127, 1, cv2.THRESH_BINARY)[1].view(bool)


def visible_in_baseline(moving_shape: tuple[int, int], homography: np.ndarray, baseline_shape: tuple[int, int]) -> np.ndarray:
    """Baseline pixels that the visit photo covers."""
    import cv2

    height, width = baseline_shape
    ones = np.ones(moving_shape, np.uint8)
    return cv2.warpPerspective(ones, homography, (width, height), flags=cv2.INTER_NEAREST).astype(bool)
