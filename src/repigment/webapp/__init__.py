"""The Streamlit app's pages, over :mod:`repigment.store` and the analysis library.

Layers, top down:

- ``app.py`` (repository root): page config, navigation, mode switch;
- :mod:`repigment.webapp.views`: one render function per page, and
  :mod:`repigment.webapp.pages`: the page scripts ``st.navigation`` runs;
- :mod:`repigment.webapp.caching`: every ``st.cache_data``/``st.cache_resource``;
- the pages' plain helpers, without Streamlit: :mod:`~repigment.webapp.course_data`
  (chart points and tables from a stored analysis), :mod:`~repigment.webapp.charts`
  (Altair charts), :mod:`~repigment.webapp.wording` (the words of each mode),
  :mod:`~repigment.webapp.strokes` (canvas strokes to labels) and
  :mod:`~repigment.webapp.downloads` (the files the pages offer).

What the app does to the store (the demo patient, hand units, analyses) is in
:mod:`repigment.store`.
"""
