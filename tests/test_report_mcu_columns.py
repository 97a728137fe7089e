"""MCU figures in the reports: instructions per inference, peak RAM and flash appear as leaderboard
columns on boards with an MCU row (– on the other rows there), and not on boards without one."""

from __future__ import annotations

from report_fixtures import record

from harness.report.cells import cell
from harness.report.columns import LEGEND, NO_EXTRAS, board_columns
from harness.results.rank import leaderboard


def test_mcu_columns_only_where_a_row_has_mcu_figures() -> None:
    cpu = record("kws", "fp32", "fp32", "cpu-ort")
    mcu = record(
        "kws",
        "int8",
        "int8",
        "qemu-m4",
        cls="simulated",
        instr_per_inference=4_967_720.0,
        ram_bytes=119_892,
        flash_bytes=90_652,
    )
    rows = leaderboard([cpu, mcu])
    cols = board_columns(rows)
    keys = [c.key for c in cols]
    assert keys.index("bytes") + 1 == keys.index("instr") and keys[
        keys.index("instr") : keys.index("instr") + 3
    ] == [
        "instr",
        "ram",
        "flash",
    ]
    by_target = {r["target"]: r for r in rows}
    ram = next(c for c in cols if c.key == "ram")
    assert ram.cell(by_target["qemu-m4"], NO_EXTRAS).value == 119_892
    assert ram.cell(by_target["cpu-ort"], NO_EXTRAS).text == cell(None)  # not measured off the MCU
    assert not {"instr", "ram", "flash"} & {c.key for c in board_columns(leaderboard([cpu]))}
    assert {h for h, _ in LEGEND} >= {"instr/inf", "RAM", "flash"}
