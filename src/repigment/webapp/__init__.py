"""The Streamlit app's pages, over :mod:`repigment.store` and the analysis library.

Layers, top down:

- ``app.py`` (repository root): page config, navigation, mode switch;
- :mod:`repigment.webapp.views`: one render function per page, and
  :mod:`repigment.webapp.pages`: the page scripts ``st.navigation`` runs;
- :mod:`repigment.webapp.caching`: every ``st.cache_data``/``st.cache_resource``;
- no Streamlit below this line: :mod:`~repigment.webapp.demo` (the demo patient),
  :mod:`~repigment.webapp.charts` (Altair charts), :mod:`~repigment.webapp.wording`
  (the words of each mode).
"""
