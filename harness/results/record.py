"""One typed result record: what a job measured, from the runner through the store to every report.

A :class:`Result` is frozen; figures that were not measured are ``None``, never 0. Its small groups
(:class:`Latency`, :class:`Energy`, :class:`ModelFacts`, :class:`Production`, :class:`Carbon`) keep
related figures together. :data:`COLUMNS` is the one place that maps the record to the flat column
names of the SQLite ``results`` table (and of :func:`Result.columns`, the API's DataFrame, the window
loop's figures); those names never change, so databases written before the record still read.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from typing import Any, Literal, TypeVar, cast, get_args

from ..errors import StoreError

Status = Literal["done", "skipped", "failed"]
STATUSES: tuple[str, ...] = get_args(Status)


@dataclass(frozen=True)
class Latency:
    """Timing of the measured windows (medians over valid windows; CI = relative half-width)."""

    p50_s: float | None = None
    p90_s: float | None = None
    p99_s: float | None = None
    ci_rel: float | None = None
    throughput_ips: float | None = None
    n_windows: int | None = None
    n_inferences: int | None = None
    instr_per_inference: float | None = None


@dataclass(frozen=True)
class Energy:
    """Energy per inference and how it was measured (class, meter, boundary, window markers)."""

    per_inference_j: float | None = None
    ci_rel: float | None = None
    dyn_j: float | None = None
    p_idle_w: float | None = None
    measurement_class: str | None = None
    marker_method: str | None = None
    meter: str | None = None
    boundary: str | None = None


@dataclass(frozen=True)
class ModelFacts:
    """Size and cost of the variant on this target's format."""

    params: int | None = None
    macs: int | None = None
    model_bytes: int | None = None
    model_bytes_gz: int | None = None
    ram_bytes: int | None = None  # MCU: peak RAM (tensor arena + scratch + runtime state)
    flash_bytes: int | None = None  # MCU: flash (weights + kernels used + firmware)
    fine_tuned: bool | None = None
    epochs: int | None = None


@dataclass(frozen=True)
class Production:
    """What producing the variant (compression, fine-tuning) cost on the host, with its energy class."""

    seconds: float | None = None
    joules: float | None = None
    energy_class: str | None = None


@dataclass(frozen=True)
class Carbon:
    """The factors that turn energy into CO2e for this result, with the grid factor's source."""

    pue: float | None = None
    grid_g_per_kwh: float | None = None
    grid_source: str | None = None


@dataclass(frozen=True)
class Result:
    """One (task, variant, target) result: identity, status, quality, measured figures, provenance.

    ``id``, ``run_id``, ``job_key`` and ``created`` say where it is stored; the store fills ``id`` and
    ``created`` when it reads a record back.
    """

    suite: str
    task: str
    variant: str
    target: str
    status: Status
    base_model: str | None = None
    reason: str | None = None
    variant_key: str | None = None
    technique: str | None = None
    target_kind: str | None = None
    runtime: str | None = None
    metric: str | None = None
    min_accuracy: float | None = None
    accuracy: float | None = None
    base_accuracy: float | None = None
    latency: Latency = field(default_factory=Latency)
    energy: Energy = field(default_factory=Energy)
    model: ModelFacts = field(default_factory=ModelFacts)
    production: Production = field(default_factory=Production)
    carbon: Carbon = field(default_factory=Carbon)
    provenance: dict[str, Any] = field(default_factory=dict)
    variant_meta: dict[str, Any] = field(default_factory=dict)
    id: int | None = None
    run_id: int | None = None
    job_key: str | None = None
    created: float | None = None

    def __post_init__(self) -> None:
        if self.status not in STATUSES:
            raise StoreError(f"result status {self.status!r} is not one of {list(STATUSES)}")

    def columns(self) -> dict[str, Any]:
        """The record as flat ``results`` columns (stored-only keys included), in table order."""
        out: dict[str, Any] = {}
        for col, group, name in COLUMNS:
            value = getattr(self if group is None else getattr(self, group), name)
            out[col] = int(value) if col == "fine_tuned" and value is not None else value
        return out

    @classmethod
    def from_columns(cls, cols: Mapping[str, Any]) -> Result:
        """A record from flat column names (a stored row, a fixture); unknown names are an error."""
        unknown = set(cols) - _BY_COLUMN.keys()
        if unknown:
            raise StoreError(f"unknown result fields {sorted(unknown)}")
        top: dict[str, Any] = {}
        for group, kind in _GROUPS.items():
            top[group] = _group(kind, group, cols)
        for col, value in cols.items():
            where, name = _BY_COLUMN[col]
            if where is None:
                top[name] = value
        for k in ("provenance", "variant_meta"):
            if top.get(k) is None:
                top[k] = {}
        return cls(**top)


# (column, group attribute or None for a top-level field, field name): the ONE record <-> column map.
COLUMNS: tuple[tuple[str, str | None, str], ...] = (
    ("id", None, "id"),
    ("job_key", None, "job_key"),
    ("run_id", None, "run_id"),
    ("suite", None, "suite"),
    ("task", None, "task"),
    ("base_model", None, "base_model"),
    ("variant", None, "variant"),
    ("variant_key", None, "variant_key"),
    ("technique", None, "technique"),
    ("target", None, "target"),
    ("target_kind", None, "target_kind"),
    ("runtime", None, "runtime"),
    ("status", None, "status"),
    ("reason", None, "reason"),
    ("metric", None, "metric"),
    ("min_accuracy", None, "min_accuracy"),
    ("accuracy", None, "accuracy"),
    ("base_accuracy", None, "base_accuracy"),
    ("latency_p50_s", "latency", "p50_s"),
    ("latency_p90_s", "latency", "p90_s"),
    ("latency_p99_s", "latency", "p99_s"),
    ("latency_ci_rel", "latency", "ci_rel"),
    ("throughput_ips", "latency", "throughput_ips"),
    ("n_windows", "latency", "n_windows"),
    ("n_inferences", "latency", "n_inferences"),
    ("energy_per_inference_j", "energy", "per_inference_j"),
    ("energy_ci_rel", "energy", "ci_rel"),
    ("energy_dyn_j", "energy", "dyn_j"),
    ("p_idle_w", "energy", "p_idle_w"),
    ("energy_class", "energy", "measurement_class"),
    ("marker_method", "energy", "marker_method"),
    ("meter", "energy", "meter"),
    ("boundary", "energy", "boundary"),
    ("instr_per_inference", "latency", "instr_per_inference"),
    ("params", "model", "params"),
    ("macs", "model", "macs"),
    ("model_bytes", "model", "model_bytes"),
    ("model_bytes_gz", "model", "model_bytes_gz"),
    ("ram_bytes", "model", "ram_bytes"),
    ("flash_bytes", "model", "flash_bytes"),
    ("fine_tuned", "model", "fine_tuned"),
    ("epochs", "model", "epochs"),
    ("produce_s", "production", "seconds"),
    ("produce_j", "production", "joules"),
    ("produce_energy_class", "production", "energy_class"),
    ("pue", "carbon", "pue"),
    ("grid_g_per_kwh", "carbon", "grid_g_per_kwh"),
    ("grid_source", "carbon", "grid_source"),
    ("provenance", None, "provenance"),
    ("variant_meta", None, "variant_meta"),
    ("created", None, "created"),
)
# columns the store writes itself (row id, insert time) or takes as arguments of the insert
STORED_ONLY = ("id", "job_key", "run_id", "created")

_BY_COLUMN = {col: (group, name) for col, group, name in COLUMNS}
_GROUPS: dict[str, type[Any]] = {
    "latency": Latency,
    "energy": Energy,
    "model": ModelFacts,
    "production": Production,
    "carbon": Carbon,
}
G = TypeVar("G")


def _group(kind: type[G], group: str, cols: Mapping[str, Any]) -> G:
    kw = {name: cols[col] for col, g, name in COLUMNS if g == group and col in cols}
    if group == "model" and kw.get("fine_tuned") is not None:
        kw["fine_tuned"] = bool(kw["fine_tuned"])
    return cast(G, kind(**kw))


def measured(cols: Mapping[str, Any]) -> tuple[Latency, Energy]:
    """The latency and energy groups from the window loop's column-named figures."""
    unknown = {c for c in cols if _BY_COLUMN.get(c, (None, ""))[0] not in ("latency", "energy")}
    if unknown:
        raise StoreError(f"not a latency or energy figure: {sorted(unknown)}")
    return _group(Latency, "latency", cols), _group(Energy, "energy", cols)


def _check_map() -> None:
    """Every field of every group appears in :data:`COLUMNS` exactly once (checked at import)."""
    seen = {(g, n) for _, g, n in COLUMNS}
    want = {(None, f.name) for f in fields(Result) if f.name not in _GROUPS} | {
        (g, f.name) for g, kind in _GROUPS.items() for f in fields(kind)
    }
    if seen != want or len(seen) != len(COLUMNS):
        raise AssertionError(f"record/column map out of step: {sorted(map(str, seen ^ want))}")


_check_map()
__all__ = [
    "COLUMNS",
    "STATUSES",
    "Carbon",
    "Energy",
    "Latency",
    "ModelFacts",
    "Production",
    "Result",
    "Status",
    "measured",
]
