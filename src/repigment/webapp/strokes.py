"""A clinician's strokes drawn on a canvas in the app, turned into labels for the library.

No Streamlit here: the Review page draws, this converts, and
:func:`repigment.core.segmentation.depigmented_mask` learns from the result.
"""

from __future__ import annotations

import numpy as np

from ..core.segmentation import LABEL_DEPIGMENTED, LABEL_NORMAL_SKIN, LABEL_NOT_SKIN, resize_labels

__all__ = ["STROKE_CLASSES", "labels_from_canvas", "labels_at_size", "add_strokes", "paint_strokes"]

#: What a stroke marks, and the colour it is drawn in (hex, then RGB).
STROKE_CLASSES: dict[str, tuple[int, str, tuple[int, int, int]]] = {
    "Depigmented skin": (LABEL_DEPIGMENTED, "#ff00ff", (255, 0, 255)),
    "Normal skin": (LABEL_NORMAL_SKIN, "#00c000", (0, 192, 0)),
    "Not skin (background, clothes, hair, eyes)": (LABEL_NOT_SKIN, "#0060ff", (0, 96, 255)),
}


def labels_from_canvas(rgba: np.ndarray | None) -> np.ndarray | None:
    """Labels (0-3) from a canvas image of strokes in the colours of :data:`STROKE_CLASSES`.

    Each painted pixel takes the class of the nearest stroke colour; ``None``
    without any stroke.

    Examples
    --------
    >>> import numpy as np
    >>> canvas = np.zeros((4, 4, 4), np.uint8)
    >>> canvas[1, :] = (255, 0, 255, 255); canvas[3, :2] = (0, 190, 3, 255)
    >>> labels_from_canvas(canvas)[[1, 3, 0], [0, 0, 0]].tolist()
    [1, 2, 0]
    """
    if rgba is None:
        return None
    rgba = np.asarray(rgba)
    painted = rgba[..., 3] > 127
    if not painted.any():
        return None
    values = np.array([value for value, _, _ in STROKE_CLASSES.values()], np.uint8)
    colours = np.array([rgb for _, _, rgb in STROKE_CLASSES.values()], np.float32)
    pixels = rgba[painted][:, :3].astype(np.float32)
    nearest = np.argmin(((pixels[:, None, :] - colours[None]) ** 2).sum(axis=2), axis=1)
    labels = np.zeros(rgba.shape[:2], np.uint8)
    labels[painted] = values[nearest]
    return labels


def labels_at_size(labels: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """Strokes drawn on a smaller canvas, at the photo's ``(H, W)`` (each stroke kept)."""
    import cv2

    if labels.shape == tuple(shape):
        return labels
    if labels.shape[0] >= shape[0]:
        return resize_labels(labels, shape)
    return cv2.resize(labels, (shape[1], shape[0]), interpolation=cv2.INTER_NEAREST)


def add_strokes(saved: np.ndarray | None, drawn: np.ndarray) -> np.ndarray:
    """Strokes just drawn added to the saved ones (same shape): a new stroke wins where they cross.

    Examples
    --------
    >>> import numpy as np
    >>> saved = np.array([[1, 1, 0]], np.uint8); drawn = np.array([[0, 2, 3]], np.uint8)
    >>> add_strokes(saved, drawn).tolist()
    [[1, 2, 3]]
    """
    if saved is None:
        return drawn
    if saved.shape != drawn.shape:
        raise ValueError(f"saved strokes are {saved.shape}, drawn ones {drawn.shape}; bring them to one size first")
    return np.where(drawn > 0, drawn, saved).astype(np.uint8)


def paint_strokes(rgb: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """``rgb`` with each labelled pixel in its stroke's colour, so that saved strokes show under new ones.

    ``labels`` may be any size: it is brought to the photo's (each stroke kept).

    Examples
    --------
    >>> import numpy as np
    >>> rgb = np.zeros((2, 2, 3), np.uint8); labels = np.array([[1, 0], [0, 3]], np.uint8)
    >>> paint_strokes(rgb, labels)[[0, 1], [0, 1]].tolist()
    [[255, 0, 255], [0, 96, 255]]
    """
    labels = labels_at_size(labels, rgb.shape[:2])
    painted = rgb.copy()
    for value, _, colour in STROKE_CLASSES.values():
        painted[labels == value] = colour
    return painted
