"""A fine-tuned variant's validation accuracy of the base, the projection and the fine-tuned model
reaches the per-technique tables (issue: fine-tuning can silently collapse; the reports must explain it)."""

from __future__ import annotations

from pathlib import Path

from report_fixtures import _row, make_db

from harness.report.render import render_db
from harness.results.rank import leaderboard
from harness.results.record import Result

STAGES = {"base": 0.951, "projection": 0.412, "fine_tuned": 0.938, "rows": 100}


def _rows() -> list[dict]:
    return [
        _row("digits", "fp32", "fp32", "cpu-ort", e=2.3e-4, lat=9.6e-6, acc=0.951),
        _row("digits", "prune-80", "prune", "cpu-ort", e=2.0e-4, lat=9.0e-6, acc=0.94, fine_tuned=1,
             variant_meta={"technique": "prune", "accuracy_stages": STAGES}),
    ]  # fmt: skip


def test_stages_are_leaderboard_keys_of_fine_tuned_rows_only() -> None:
    board = leaderboard([Result.from_columns(r | {"job_key": str(i)}) for i, r in enumerate(_rows())])
    by = {r["variant"]: r for r in board}
    assert "val_accuracy_base" not in by["fp32"]
    pr = by["prune-80"]
    assert (pr["val_accuracy_base"], pr["val_accuracy_projection"], pr["val_accuracy_finetuned"]) == (
        0.951,
        0.412,
        0.938,
    )


def test_markdown_and_html_show_base_projection_fine_tuned(tmp_path: Path) -> None:
    db = make_db(tmp_path / "r.sqlite", _rows())
    md = render_db(db, "md")
    assert "validation: base → projection → fine-tuned" in md and "0.951 → 0.412 → 0.938" in md
    html = render_db(db, "html")
    assert "0.951 → 0.412 → 0.938" in html
