"""Printed output: the PDF report of a series (:mod:`~repigment.report.pdf`) and the sheet of
scale markers to print (:mod:`~repigment.report.marker_sheet`).
"""
