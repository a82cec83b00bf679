"""Checks of the arrays the core stages take, so each stage says the same thing about a wrong one."""

from __future__ import annotations

import numpy as np

from ..errors import InvalidParameterError

__all__ = ["as_rgb"]


def as_rgb(rgb, *, name: str = "rgb") -> np.ndarray:
    """``rgb`` as an array, checked to be an RGB image of shape (H, W, 3) and dtype uint8.

    Parameters
    ----------
    rgb : array_like
        The image.
    name : str, optional
        What the caller calls it, for the message.

    Returns
    -------
    ndarray of uint8, shape (H, W, 3)

    Raises
    ------
    InvalidParameterError
        If it is not such an image (a ``ValueError`` too).

    Examples
    --------
    >>> as_rgb(np.zeros((2, 3, 3), np.uint8)).shape
    (2, 3, 3)
    >>> as_rgb(np.zeros((2, 3), np.uint8))
    Traceback (most recent call last):
    ...
    repigment.errors.InvalidParameterError: rgb must be an (H, W, 3) uint8 array, got shape (2, 3) dtype uint8
    """
    rgb = np.asarray(rgb)
    if rgb.ndim != 3 or rgb.shape[2] != 3 or rgb.dtype != np.uint8:
        raise InvalidParameterError(
            f"{name} must be an (H, W, 3) uint8 array, got shape {rgb.shape} dtype {rgb.dtype}")
    return rgb
