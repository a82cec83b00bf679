"""Bounds on what repigment will process, each with a clear message when exceeded.

Defaults suit phone photos (12-50 MP). Shells (CLI, app, batch) read overrides
from the environment with :meth:`Limits.from_env`; the library itself never
reads the environment.

============================== ====================================== =========
environment variable           meaning                                default
============================== ====================================== =========
REPIGMENT_MAX_PIXELS           pixels in one photo                    120 M
REPIGMENT_MAX_FILE_MB          bytes of one photo file, MB            200
REPIGMENT_MAX_VISITS           photos in one series                   400
REPIGMENT_MAX_SECONDS_PER_PHOTO analysis time of one photo, seconds    120
============================== ====================================== =========

The app's upload size is Streamlit's own ``server.maxUploadSize`` (50 MB in
``.streamlit/config.toml``; ``STREAMLIT_SERVER_MAX_UPLOAD_SIZE`` overrides it).
"""

from __future__ import annotations

import math
import os
import time
from dataclasses import dataclass, fields
from typing import Mapping

from .errors import InvalidParameterError, ProcessingTimeLimitError

__all__ = ["Limits", "ProcessingTimeLimitError", "Deadline"]


@dataclass(frozen=True)
class Limits:
    """Processing limits.

    Attributes
    ----------
    max_pixels : int
        Largest photo, in pixels (decompression-bomb guard).
    max_file_bytes : int
        Largest photo file, in bytes.
    max_visits : int
        Most photos in one series.
    max_seconds_per_photo : float
        Longest analysis of one photo before it is abandoned with an error.
    """

    max_pixels: int = 120_000_000
    max_file_bytes: int = 200 * 1024**2
    max_visits: int = 400
    max_seconds_per_photo: float = 120.0

    def __post_init__(self) -> None:
        for f in fields(self):
            value = getattr(self, f.name)
            if not (isinstance(value, (int, float)) and value > 0):
                raise InvalidParameterError(f"limit {f.name} must be a positive number, got {value!r}")

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> "Limits":
        """Limits with overrides from ``REPIGMENT_MAX_*`` environment variables.

        Raises
        ------
        InvalidParameterError
            If a variable is set to something that is not a positive number.

        Examples
        --------
        >>> Limits.from_env({"REPIGMENT_MAX_VISITS": "12"}).max_visits
        12
        """
        env = os.environ if environ is None else environ
        defaults = cls()
        spec = {
            "REPIGMENT_MAX_PIXELS": ("max_pixels", int, 1),
            "REPIGMENT_MAX_FILE_MB": ("max_file_bytes", float, 1024**2),
            "REPIGMENT_MAX_VISITS": ("max_visits", int, 1),
            "REPIGMENT_MAX_SECONDS_PER_PHOTO": ("max_seconds_per_photo", float, 1),
        }
        values = {}
        for variable, (name, kind, unit) in spec.items():
            text = env.get(variable)
            if text is None or text.strip() == "":
                continue
            try:
                number = float(text.strip())
            except ValueError:
                raise InvalidParameterError(f"{variable}={text!r} is not a number") from None
            if kind is int and math.isfinite(number):
                if number != int(number):
                    raise InvalidParameterError(f"{variable}={text!r} must be a whole number")
                number = int(number)
            if not (math.isfinite(number) and number > 0):
                raise InvalidParameterError(f"{variable} must be a positive finite number, got {text!r}")
            value = int(number * unit) if name in ("max_file_bytes", "max_pixels") else number
            if value < 1:
                raise InvalidParameterError(f"{variable}={text!r} is too small")
            values[name] = value
        return cls(**{**defaults.__dict__, **values})


class Deadline:
    """The time budget of one photo; :meth:`check` raises once it is spent."""

    def __init__(self, seconds: float):
        self.seconds = seconds
        self._end = time.monotonic() + seconds
        self._paused_at: float | None = None

    def pause(self) -> None:
        """Stop the clock (a prepared photo waiting its turn is not working on its budget)."""
        if self._paused_at is None:
            self._paused_at = time.monotonic()

    def resume(self) -> None:
        """Restart the clock stopped by :meth:`pause`."""
        if self._paused_at is not None:
            self._end += time.monotonic() - self._paused_at
            self._paused_at = None

    def check(self, stage: str) -> None:
        if time.monotonic() > self._end:
            raise ProcessingTimeLimitError(
                f"analysis stopped during {stage} after the {self.seconds:g} s limit per photo "
                "(raise REPIGMENT_MAX_SECONDS_PER_PHOTO, or use a smaller photo)"
            )
