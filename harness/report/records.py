"""The leaderboard as records: JSON (provenance last in each row) and CSV (the leaderboard keys first)."""

from __future__ import annotations

import csv
import io
import json

from ..results.rank import LEADERBOARD_KEYS, BoardRow
from ..results.record import Result


def to_json(board: list[BoardRow], skipped: list[Result]) -> str:
    return json.dumps(
        [{k: v for k, v in r.items() if k != "provenance"} | {"provenance": r["provenance"]} for r in board],
        indent=1,
        default=str,
    )


def to_csv(board: list[BoardRow], skipped: list[Result]) -> str:
    buf = io.StringIO()
    seen = dict.fromkeys(k for r in board for k in r)  # every row's keys, in order of appearance
    keys = [*LEADERBOARD_KEYS] + [k for k in seen if k not in LEADERBOARD_KEYS and k != "provenance"]
    w = csv.DictWriter(buf, fieldnames=keys, extrasaction="ignore", lineterminator="\n")
    w.writeheader()
    for r in board:
        w.writerow(r)
    return buf.getvalue()
