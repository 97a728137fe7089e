"""``frugalbench run`` on several emulated cores (benches/cores.toml in miniature): one model's int8
variants ranked across cores within the ``simulated`` class, and a CNN too big for the micro:bit listed
as "does not fit" with the model's and the board's sizes (not skipped) in the leaderboard's per-model
view, in JSON, Markdown and HTML. Two cores (Cortex-M0 microbit, Cortex-M4 mps2-an386), digits MLP and
CNN trained for a few epochs (bit-exactness and sizes do not depend on training)."""

from __future__ import annotations

from pathlib import Path

import pytest
from mcu_support import needs_qemu

from harness.mcu.board import load_board
from harness.pipeline.runner import run_suite
from harness.report.render import render_db
from harness.report.sections import from_db
from harness.results.rank import leaderboard
from harness.results.store import Store
from harness.suite import load_suite

pytestmark = [pytest.mark.slow, needs_qemu]

SUITE = """
[suite]
name = "cores-mini"
[run]
warmup_s = 0.0
window_s = 0.01
min_windows = 2
max_windows = 2
ci_target = 0.9
[meter]
kind = "auto"
[[tasks]]
name = "digits"
recipes = ["digits_mlp", "digits_cnn"]
recipe_params = { digits_mlp = { hidden = [16], max_iter = 60 }, digits_cnn = { epochs = 2 } }
metric = "accuracy"
min_accuracy = 0.3
[[variants]]
name = "int8-static"
technique = "int8"
params = { mode = "static" }
[[targets]]
name = "qemu-m0"
kind = "mcu"
board = "qemu-microbit"
[[targets]]
name = "qemu-m4"
kind = "mcu"
board = "qemu-mps2-an386"
"""
MLP, CNN = "digits_mlp:int8-static", "digits_cnn:int8-static"


@pytest.fixture(scope="module")
def db(tmp_path_factory: pytest.TempPathFactory) -> Path:
    tmp = tmp_path_factory.mktemp("cores")
    (tmp / "s.toml").write_text(SUITE)
    run_suite(load_suite(tmp / "s.toml"), tmp / "r.sqlite", cache=tmp / "cache")
    return tmp / "r.sqlite"


def test_one_models_variants_rank_across_cores_within_the_simulated_class(db: Path) -> None:
    with Store.open(db, create=False) as s:
        results = s.results()
    status = {(r.variant, r.target): r.status for r in results}
    assert status == {(MLP, "qemu-m0"): "done", (MLP, "qemu-m4"): "done",
                      (CNN, "qemu-m0"): "failed", (CNN, "qemu-m4"): "done"}  # fmt: skip
    board = leaderboard(results)
    assert {r["energy_class"] for r in board} == {"simulated"}
    ranked = sorted((r for r in board if r["rank"] is not None), key=lambda r: r["rank"])
    assert {(r["variant"], r["target"]) for r in ranked} == {
        (MLP, "qemu-m0"),
        (MLP, "qemu-m4"),
        (CNN, "qemu-m4"),
    }
    apj = [r["accuracy"] / r["energy_per_inference_j"] for r in ranked]
    assert apj == sorted(apj, reverse=True)  # ranked by accuracy per simulated joule
    mlp = {r["target"]: r for r in board if r["variant"] == MLP}
    # the same int8 blob on both cores: the same integers, so the same accuracy; different cost
    assert mlp["qemu-m0"]["accuracy"] == mlp["qemu-m4"]["accuracy"]
    assert mlp["qemu-m0"]["latency_p50_ms"] != mlp["qemu-m4"]["latency_p50_ms"]
    cnn = next(r for r in board if r["variant"] == CNN)
    assert cnn["ram_bytes"] and cnn["flash_bytes"] and cnn["flash_bytes"] > cnn["model_bytes"]


def test_a_cnn_that_does_not_fit_the_microbit_is_listed_with_sizes(db: Path) -> None:
    m0 = load_board("qemu-microbit").budget
    rows = {(x["variant"], x["target"]): x for x in from_db(db).models if x["task"] == "digits"}
    assert set(rows) == {(MLP, "qemu-m0"), (MLP, "qemu-m4"), (CNN, "qemu-m0"), (CNN, "qemu-m4")}
    for (variant, target), x in rows.items():
        assert (x["board_ram_bytes"], x["board_flash_bytes"]) == (
            (m0.ram_bytes, m0.flash_bytes) if target == "qemu-m0" else (4194304, 4194304)
        )
        assert x["status"] == ("does not fit" if (variant, target) == (CNN, "qemu-m0") else "runs")
    gone = rows[(CNN, "qemu-m0")]
    assert "the model does not fit qemu-microbit" in gone["reason"] and "arena" in gone["reason"]
    # what the CNN needs there (its blob, RAM and flash on that firmware), next to the board's sizes
    assert gone["model_bytes"] == rows[(CNN, "qemu-m4")]["model_bytes"]
    assert gone["ram_bytes"] > 0 and gone["flash_bytes"] > gone["model_bytes"]
    assert gone["latency_p50_ms"] is None and gone["energy_per_inference_j"] is None
    runs = rows[(CNN, "qemu-m4")]
    assert runs["latency_p50_ms"] > 0 and runs["energy_per_inference_j"] > 0 and runs["ram_bytes"] > 0
    md, html = render_db(db, "md"), render_db(db, "html")
    assert "does not fit" in md and "model RAM" in md and "board flash" in md
    assert "does not fit" in html and "model RAM" in html and "board RAM" in html
