"""The app's pages, one script each.

``st.navigation`` runs these files as scripts (``__name__ == "__main__"``), so
each ends by calling its ``render()``; importing them draws nothing. They
import only absolutely (``from repigment.webapp import ...``).
"""
