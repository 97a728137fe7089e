"""Reports of the leaderboard: Markdown, JSON/CSV and HTML writers, the data they show, plots and labels.

Renderers compute nothing: :mod:`.sections` derives every figure from the results database and
:mod:`.render` hands it to the writer of the chosen format.
"""

from .render import FORMATS, render_data, render_db

__all__ = ["FORMATS", "render_data", "render_db"]
