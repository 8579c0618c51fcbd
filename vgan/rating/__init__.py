"""`vgan rate`: human evaluation by two-alternative forced choice, served as a small local web page.

``clips.py`` gathers and re-encodes the clips of both sides, ``session.py`` draws the pairs, records the
answers and scores them (Wilson interval, MLflow), ``server.py`` serves the page (``page.py``).

Imports: ``util``, ``data`` and, inside the function that logs the score, ``tracking``.
"""
