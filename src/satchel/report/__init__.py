"""Building blocks for self-contained HTML reports: a page with inline CSS and sections,
tables, and figures drawn by matplotlib as inline SVG. Nothing a page uses is fetched:
a report opens offline, from a file or behind a server with a strict content policy.

Used by ``satchel evaluate --report`` and the registry web UI; anything that shows a
table of figures to a person can reuse it (``html`` for the page, ``svg`` for figures).
"""
