"""The leaderboard as records: JSON (provenance last in each row) and CSV (the leaderboard keys first)."""

from __future__ import annotations

import csv
import io
import json
from typing import Any

from ..results.rank import LEADERBOARD_KEYS


def to_json(board: list[dict[str, Any]], skipped: list[dict[str, Any]]) -> str:
    return json.dumps(
        [{k: v for k, v in r.items() if k != "provenance"} | {"provenance": r["provenance"]} for r in board],
        indent=1,
        default=str,
    )


def to_csv(board: list[dict[str, Any]], skipped: list[dict[str, Any]]) -> str:
    buf = io.StringIO()
    keys = [*LEADERBOARD_KEYS] + [
        k for k in (board[0] if board else {}) if k not in LEADERBOARD_KEYS and k != "provenance"
    ]
    w = csv.DictWriter(buf, fieldnames=keys, extrasaction="ignore", lineterminator="\n")
    w.writeheader()
    for r in board:
        w.writerow(r)
    return buf.getvalue()
