"""What a scored series means clinically: VASI (:mod:`~repigment.clinical.vasi`), hand units
from a palm photo (:mod:`~repigment.clinical.hand_units`), patterns of repigmentation and
spreading (:mod:`~repigment.clinical.patterns`), and the summary with its checkpoints and
wording (:mod:`~repigment.clinical.summary`).
"""
