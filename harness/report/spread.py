"""The spread of one result's per-window median latencies: count, standard deviation, range, outliers.

A result's figures come from several timed windows; each valid window stores the median latency of
its calls. Their spread says how steady the measurement was, beside the CI of the median:

* ``std_s``: sample standard deviation (n − 1 in the denominator); None below 2 windows.
* ``min_s`` / ``max_s``: the lowest and highest window median; None without a window.
* ``outliers``: windows whose median lies outside the Tukey fences, below Q1 − 1.5 × IQR or above
  Q3 + 1.5 × IQR (quartiles interpolated linearly between order statistics, numpy's default); None
  below :data:`OUTLIER_MIN_WINDOWS` windows, where quartiles say nothing.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TypedDict

import numpy as np

OUTLIER_IQR = 1.5
OUTLIER_MIN_WINDOWS = 4
OUTLIER_RULE = (
    f"outliers: windows whose median latency lies below Q1 − {OUTLIER_IQR:g} × IQR or above "
    f"Q3 + {OUTLIER_IQR:g} × IQR of the result's window medians (counted with at least "
    f"{OUTLIER_MIN_WINDOWS} windows)"
)


class WindowSpread(TypedDict):
    """See the module docstring; times in seconds."""

    n: int
    std_s: float | None
    min_s: float | None
    max_s: float | None
    outliers: int | None


def window_spread(medians_s: Sequence[float]) -> WindowSpread:
    """The spread of the valid windows' median latencies (seconds)."""
    v = np.asarray(medians_s, dtype=np.float64)
    n = len(v)
    outliers = None
    if n >= OUTLIER_MIN_WINDOWS:
        q1, q3 = np.percentile(v, [25, 75])
        fence = OUTLIER_IQR * (q3 - q1)
        outliers = int(np.count_nonzero((v < q1 - fence) | (v > q3 + fence)))
    return {
        "n": n,
        "std_s": float(np.std(v, ddof=1)) if n >= 2 else None,
        "min_s": float(v.min()) if n else None,
        "max_s": float(v.max()) if n else None,
        "outliers": outliers,
    }
