"""The leaderboard's columns, defined once: header, what the column means, and how a cell reads.

The Markdown and the HTML report both draw their tables from :data:`BOARD_COLUMNS` and print
:data:`LEGEND` (every column's definition, and the rules behind grades and flags), so the two formats
show the same columns with the same meaning. A cell is computed from one leaderboard row and its
:class:`RowExtras` (the facts that live outside the row: budget verdict, window count, CI target).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypedDict

from ..results.rank import BoardRow
from .cells import cell, count_text, energy_text, ms_text, percent_text

FLAG = "⚠"
GRADE_MIN_ROWS = 5
GRADE_MIN_SPREAD = 2.0


class RowExtras(TypedDict):
    """What a leaderboard row's cells need beyond the row: budget verdict, window count, CI target."""

    fits: bool | None
    n_windows: int | None
    ci_target: float | None


NO_EXTRAS: RowExtras = {"fits": None, "n_windows": None, "ci_target": None}


@dataclass(frozen=True)
class Cell:
    """One cell: its text, the raw value it sorts by, and a style (``yes``, ``no``, ``miss`` or '')."""

    text: str
    value: Any
    style: str = ""
    parts: tuple[tuple[str, str], ...] = ()  # (text, style) pieces joined by " / ", styled one by one


@dataclass(frozen=True)
class Column:
    """A leaderboard column: key (HTML ``data-key``), header, definition, numeric or not, its cell."""

    key: str
    header: str
    legend: str
    numeric: bool
    cell: Callable[[BoardRow, RowExtras], Cell]


def ci_missed(rel: float | None, target: float | None) -> bool:
    """Whether a relative CI half-width is above the run's target (False when either is unknown)."""
    return rel is not None and target is not None and rel > target


def _plain(key: str, spec: str = "") -> Callable[[BoardRow, RowExtras], Cell]:
    def f(r: BoardRow, x: RowExtras) -> Cell:
        v = r[key]  # type: ignore[literal-required]
        return Cell(cell(v, spec) if spec else cell(v), v)

    return f


def _fits(r: BoardRow, x: RowExtras) -> Cell:
    f = x["fits"]
    return Cell(cell(f), None if f is None else int(f), "" if f is None else ("yes" if f else "no"))


def _ci(r: BoardRow, x: RowExtras) -> Cell:
    parts = []
    for rel in (r["latency_ci_rel"], r["energy_ci_rel"]):
        m = ci_missed(rel, x["ci_target"])
        parts.append((percent_text(rel) + (f" {FLAG}" if m else ""), "miss" if m else ""))
    known = [v for v in (r["latency_ci_rel"], r["energy_ci_rel"]) if v is not None]
    text = " / ".join(t for t, _ in parts)
    return Cell(text, max(known) if known else None, parts=tuple(parts))


def _meter(r: BoardRow, x: RowExtras) -> Cell:
    m, how = r["meter"], r["marker_method"]
    text = "–" if m is None else m + (f"; markers: {how}" if how else "")
    return Cell(text, text if m is not None else None)


BOARD_COLUMNS: tuple[Column, ...] = (
    Column("rank", "rank", "position by quality per joule among the rows of this task and measurement "
           "class that meet the task's minimum; – when below the minimum (not ranked)", True, _plain("rank")),
    Column("variant", "variant", "the model variant (base model after the suite's compression steps)",
           False, _plain("variant")),
    Column("technique", "technique", "the compression technique of the variant", False, _plain("technique")),
    Column("target", "target", "where the variant ran (a target of the suite)", False, _plain("target")),
    Column("runtime", "runtime", "the inference engine on the target", False, _plain("runtime")),
    Column("class", "class", "measurement class of the energy figure: external (a meter on the supply), "
           "counter (on-chip energy counter), simulated (instruction-count model), estimate (modelled "
           "from latency, not a measurement); rows of different classes are never ranked against each other",
           False, lambda r, x: Cell(r["energy_class"] or "none", r["energy_class"] or "")),
    Column("accuracy", "quality", "the task's metric on its evaluation set", True,
           lambda r, x: Cell(cell(r["accuracy"]), r["accuracy"])),
    Column("qpj", "quality/J", "quality ÷ energy per inference (– for metrics where lower is better)", True,
           lambda r, x: Cell(cell(r["accuracy_per_joule"], ".4g"), r["accuracy_per_joule"])),
    Column("e", "E/inference", "energy per inference: window energy ÷ inferences in the window, median "
           "over the valid windows", True,
           lambda r, x: Cell(energy_text(r["energy_per_inference_j"]), r["energy_per_inference_j"])),
    Column("p50", "p50", "median time of one inference call, over all calls of all valid windows", True,
           lambda r, x: Cell(ms_text(r["latency_p50_ms"]), r["latency_p50_ms"])),
    Column("p99", "p99", "99th percentile of the same call times", True,
           lambda r, x: Cell(ms_text(r["latency_p99_ms"]), r["latency_p99_ms"])),
    Column("ips", "inf/s", "throughput: inferences ÷ wall time of the window on the target's clock, median "
           "over the valid windows; it includes the per-call overhead (feeding the input, the loop) and "
           "the whole spread of call times, so it need not equal 1/p50", True,
           lambda r, x: Cell(count_text(r["throughput_ips"]), r["throughput_ips"])),
    Column("co2", "gCO2e/1000", "grams CO2e per 1000 inferences: E/inference × 1000 × PUE × grid factor "
           "(factor and its source below the tables)", True,
           lambda r, x: Cell(cell(r["co2e_g_per_1000"], ".3g"), r["co2e_g_per_1000"])),
    Column("budget", "fits budget", "whether gCO2e/1000 is within the task's carbon budget; – when the "
           "task declares none", False, _fits),
    Column("params", "params", "parameters of the network (– when unknown)", True, _plain("params")),
    Column("macs", "MACs", "multiply-accumulates per inference (– when unknown)", True, _plain("macs")),
    Column("bytes", "bytes", "size of the model file this runtime loads", True, _plain("model_bytes")),
    Column("breakeven", "break-even inf.", "inferences after which the energy spent producing the variant "
           "(compression, fine-tuning) is repaid by its saving per inference against fp32 on the same "
           "target; only when both are in the same measurement class and the variant saves energy", True,
           lambda r, x: Cell(count_text(r["breakeven_inferences"]), r["breakeven_inferences"])),
    Column("windows", "windows", "valid measurement windows the figures come from", True,
           lambda r, x: Cell(cell(x["n_windows"]), x["n_windows"])),
    Column("ci", "CI ± (p50 / E)", "half-width of the 95 % confidence interval of the median latency and "
           f"of the median energy per inference, relative; {FLAG} marks a CI wider than the run's target "
           "(the run stopped at its window or time limit before reaching it)", True, _ci),
    Column("meter", "meter (markers)", "where the energy figure comes from, and how the start and end of "
           "each window were marked", False, _meter),
)  # fmt: skip

GRADE_RULE = (
    f"Energy grades A (best) to E: five equal bands of log10(energy per inference) within one task and "
    f"measurement class, given only where that class has at least {GRADE_MIN_ROWS} rows and its largest "
    f"energy per inference is at least {GRADE_MIN_SPREAD:g} × its smallest (otherwise the bands would "
    "be narrower than the measurement's spread, and the grade reads –)."
)


def _base_model(r: BoardRow, x: RowExtras) -> Cell:
    v = r.get("base_model")
    return Cell(cell(v), v or "")


BASE_MODEL = Column(
    "base",
    "base model",
    "the base model (architecture) the variant derives from; shown "
    "where a task has several, which then rank together under the task's one minimum",
    False,
    _base_model,
)


# Microcontroller figures, shown where any row of a board has one (– on other rows)
MCU_COLUMNS: tuple[Column, ...] = (
    Column("instr", "instr/inf", "instructions per inference counted by the emulator (QEMU -icount) on "
           "an MCU target; the simulated latency and energy are this × CPI ÷ the board's clock", True,
           lambda r, x: Cell(count_text(r["instr_per_inference"]), r["instr_per_inference"])),
    Column("ram", "RAM", "an MCU model's peak RAM in bytes: tensor arena + scratch + runtime state",
           True, _plain("ram_bytes")),
    Column("flash", "flash", "an MCU model's flash in bytes: weights + kernels used + firmware", True,
           _plain("flash_bytes")),
)  # fmt: skip


def board_columns(rows: list[BoardRow]) -> tuple[Column, ...]:
    """The columns of one board: :data:`BOARD_COLUMNS`, with the base model after the rank where any
    row names one (a task with several base models), and :data:`MCU_COLUMNS` after the model size
    where any row has an MCU figure."""
    cols = BOARD_COLUMNS
    if any(r.get("instr_per_inference") or r.get("ram_bytes") or r.get("flash_bytes") for r in rows):
        at = next(i for i, c in enumerate(cols) if c.key == "bytes") + 1
        cols = (*cols[:at], *MCU_COLUMNS, *cols[at:])
    if any(r.get("base_model") for r in rows):
        return (cols[0], BASE_MODEL, *cols[1:])
    return cols


LEGEND: tuple[tuple[str, str], ...] = tuple(
    (c.header, c.legend) for c in (BOARD_COLUMNS[0], BASE_MODEL, *BOARD_COLUMNS[1:], *MCU_COLUMNS)
)
