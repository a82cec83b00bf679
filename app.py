"""repigment: follow the repigmentation of vitiligo patches from serial photos.

Run with ``make run`` (or ``streamlit run app.py``). This file is the shell:
page config, sign-in, navigation and the clinician/patient switch. The pages live in
``src/repigment/webapp/views``; all analysis is in the ``repigment`` library.
"""

from pathlib import Path

import streamlit as st

from repigment.webapp import shell
from repigment.webapp.wording import words

# A bundled icon: a ":material/...:" page icon makes the browser fetch it from a font CDN.
ICON = Path(shell.__file__).resolve().parent / "static" / "icon.png"
st.set_page_config(page_title="repigment", page_icon=str(ICON), layout="wide")

shell.sign_in()  # with clinic accounts: the sign-in page until someone signs in
patient_mode = shell.mode_switch()
navigation = st.navigation(shell.pages(words(patient_mode)))
shell.sidebar(samples=Path(__file__).resolve().parent / "sample_images")
shell.run(navigation)
