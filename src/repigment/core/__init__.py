"""The core stages: pure functions from arrays to typed results, one module each.

:mod:`~repigment.core.calibration` (scale marker), :mod:`~repigment.core.color`,
:mod:`~repigment.core.registration`, :mod:`~repigment.core.segmentation` (with
:mod:`~repigment.core.skin`, :mod:`~repigment.core.guided` and
:mod:`~repigment.core.regions`), :mod:`~repigment.core.scoring`,
:mod:`~repigment.core.quality` and :mod:`~repigment.core.visualize`. Nothing here
reads files, prints or keeps state (see ``docs/architecture.md``).
"""
