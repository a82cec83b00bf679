"""Exceptions raised by repigment, all of them in this one module.

Every exception carries a one-line message that says what went wrong and what to
do about it; the CLI prints it as is and exits with code 2. The modules that
raise them import them from here (and re-export the ones callers catch by
their module, e.g. ``repigment.store.StoreError``).
"""

from __future__ import annotations


class RepigmentError(Exception):
    """Base class of every error repigment raises on purpose."""


class ImageLoadError(RepigmentError):
    """A photo could not be read."""


class UnsupportedImageError(ImageLoadError):
    """The file is not an image in a format repigment reads."""


class CorruptImageError(ImageLoadError):
    """The file claims to be an image but its data is damaged or truncated."""


class ImageTooLargeError(ImageLoadError):
    """The image has more pixels (or bytes) than the configured limit."""


class ImageTooSmallError(ImageLoadError):
    """The image is too small to analyse."""


class SeriesError(RepigmentError):
    """A series folder, its visits file or a manifest is unusable."""


class MissingDateError(SeriesError):
    """A visit's date could not be found in visits.csv, EXIF or the file name."""


class InvalidParameterError(RepigmentError, ValueError):
    """An argument (ROI, marker size, date...) is out of range or malformed."""


class ProcessingTimeLimitError(RepigmentError):
    """A photo took longer to analyse than the configured limit."""


class HandPhotoError(RepigmentError):
    """A hand photo cannot give a hand unit (no marker, no hand, hand cut off)."""


class StoreError(RepigmentError):
    """The store cannot be opened, or a record is missing or would be a duplicate."""


class AccountError(RepigmentError):
    """A sign-in refused (wrong credentials, too many attempts) or an account that cannot be made."""


class BatchError(RepigmentError):
    """The batch cannot run: the output folder is in use, or the Dask cluster is unreachable."""


class BatchInterrupted(KeyboardInterrupt):
    """A batch run was stopped by SIGTERM; raised like Ctrl-C's KeyboardInterrupt (not a RepigmentError)."""
