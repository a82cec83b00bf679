"""A series of visit photos scored against its baseline.

:mod:`~repigment.series.pipeline` runs it (``analyze_series``, ``analyze_photos``,
``segment_image``) over :mod:`~repigment.series.photos`, :mod:`~repigment.series.visit`,
:mod:`~repigment.series.footprint`, :mod:`~repigment.series.intervals` and
:mod:`~repigment.series.selfcheck`; :mod:`~repigment.series.results` holds what it
returns and writes; :mod:`~repigment.series.discovery` finds a folder's photos and
dates, and :mod:`~repigment.series.intake` checks photos as they are uploaded.
"""
