"""Private helpers shared by the reading, writing and location modules.

Holds what more than one of :mod:`repigment.io.reading`,
:mod:`repigment.io.writing` and :mod:`repigment.io.location` needs and that
belongs to none of them in particular, so that they import it from here rather
than from each other.
"""

from __future__ import annotations

import re


def _label(name: str) -> str:
    """How a message names the file: its basename, on one line."""
    if not name:
        return "image data"
    return re.sub(r"[\x00-\x1f\x7f]", "?", name)
