"""What every other module of the store shares.

The vocabularies that patches and their treatment events are described with
(:data:`BODY_REGIONS` and :data:`EVENT_KINDS`, value to label, from
:mod:`repigment.vocabulary`; :data:`DEFAULT_REGIMEN`),
:class:`~repigment.errors.StoreError` (defined with every other exception in
:mod:`repigment.errors`), and the naive-UTC clock that stamps rows. This module
imports nothing else from the store, so that the schema, the records, the file
helpers and :class:`~repigment.store.Store` can all depend on it without a cycle.
"""

from __future__ import annotations

import datetime as _dt

from ..errors import StoreError  # noqa: F401  (the store raises it; re-exported)
from ..vocabulary import BodyRegion, EventKind

#: Body regions of the VASI (Hamzavi et al. 2004), with the face scored apart: stored value -> label.
BODY_REGIONS: dict[str, str] = {region.value: region.label for region in BodyRegion}
DEFAULT_REGIMEN = "ruxolitinib 1.5% cream twice daily"
#: Dated events on a patch's treatment timeline: stored value -> label.
EVENT_KINDS: dict[str, str] = {kind.value: kind.label for kind in EventKind}


def _utcnow() -> _dt.datetime:
    # Naive UTC: portable across SQLite and server databases.
    return _dt.datetime.now(_dt.timezone.utc).replace(tzinfo=None, microsecond=0)
