"""``healthstream serve``: a read-only web page over the score history, for the people who
act on the score. The book by zone (``/``), each account with its chart and evidence
(``/accounts/{id}``), the alerts (``/alerts``), and the same data as JSON under ``/api/``.

``store`` reads the history (SQLite or PostgreSQL, read-only); ``book`` holds what the
pages show as plain data; ``pages`` and ``charts`` render it as HTML and inline SVG;
``server`` serves it with aiohttp. See docs/dashboard.md.
"""
