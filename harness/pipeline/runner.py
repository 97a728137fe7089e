"""Run a suite: base models → variants → each target: accuracy pass, timed windows with energy → store.

Resumable: each (task, variant, target, meter, rules, gate) job has a key; finished keys are skipped. A
task with several base models (``recipes = [...]``) builds every variant from each of them; their
names carry the base model (``mnist1d_cnn:int8``), and so do their job keys.
The timed windows of a job (idle, warm-up, windows until the median's CI meets the target, invalid
windows re-run) are :func:`harness.pipeline.measure.measure`.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np

from .. import metrics
from ..errors import FrugalbenchError, MeterUnavailable, TargetError
from ..ir.model import Variant, content_key
from ..meters.base import METERS, Meter
from ..registry import load_all
from ..results.carbon import grid_factor
from ..results.record import Carbon, Energy, Latency, ModelFacts, Production, Result, Status, measured
from ..results.store import Store, WindowRow
from ..stats import median_ci, percentiles, rel_half_width
from ..suite import Suite, validate_meter, validate_target
from ..sysinfo import git_revision, host_summary
from ..targets.artefact import Artefact
from ..targets.base import TARGETS, Target
from .measure import measure
from .variants import Base, build_variant, default_cache_dir, load_bases, produce_artefact

log = logging.getLogger(__name__)


class CarbonBudgetExceeded(FrugalbenchError):
    """The suite's carbon budget was exceeded (results are stored; the run is marked over-budget)."""


class Progress:
    """Callbacks the CLI turns into progress bars; the default does nothing."""

    def phase(self, name: str, total: int) -> None: ...
    def advance(self, label: str) -> None: ...
    def note(self, text: str) -> None: ...


def make_meter(table: dict[str, Any], target: Target | None) -> Meter:
    """The suite's meter; ``auto`` = the target's board meter, else RAPL if readable, else an estimate."""
    if table.get("kind", "auto") == "auto":
        board = target.default_meter() if target is not None else None
        if board:
            table = board
        elif METERS.get("rapl").availability() is None:
            table = {"kind": "rapl"}
        else:
            table = {"kind": "estimate"}
    cfg = validate_meter(table, where="meter", registry=METERS)
    return METERS.get(cfg.kind)(cfg)


def host_meter() -> Meter:
    """What measures work done on this host (compression, fine-tuning): RAPL or an estimate."""
    import os

    if METERS.get("rapl").availability() is None:
        return make_meter({"kind": "rapl"}, None)
    m = make_meter({"kind": "estimate", "cores": os.cpu_count() or 1}, None)
    return m


class Runner:
    """Runs one suite into one store."""

    def __init__(
        self,
        suite: Suite,
        store: Store,
        *,
        cache: Path | None = None,
        progress: Progress | None = None,
        targets: list[str] | None = None,
    ) -> None:
        load_all()
        self.suite = suite
        self.store = store
        self.cache = cache or default_cache_dir()
        self.progress = progress or Progress()
        self.only_targets = targets
        fc = suite.carbon
        self.grid = grid_factor(fc.region, fc.grid_factor_g_per_kwh, fc.grid_factor_source)

    # --- the per-job API (used by `frugalbench run` and by the farm, so both share job keys) ---
    def job_key(self, variant: Variant, target_cfg: dict[str, Any]) -> str:
        """Resume key of one (variant, target) job under this suite's meter, run rules and the task's
        gate (metric, metric parameters, minimum): a stored result is reused only if all are the same,
        so an edited minimum or metric is re-measured and gated anew, never ranked with the old one.
        (Re-scoring alone would need the predictions; re-measuring keeps each row one consistent
        measurement.)"""
        r = self.suite.run
        rules = r.model_dump(exclude={"time_budget_s"})
        task = next(t for t in self.suite.tasks if t.name == variant.task)
        gate = {
            "metric": task.metric,
            "metric_params": task.metric_params,
            "min_accuracy": task.min_accuracy,
            "performance_only": task.performance_only,
        }
        return content_key(
            self.suite.suite.name,
            variant.task,
            variant.name,
            variant.key,
            target_cfg,
            self.suite.meter,
            rules,
            gate,
        )

    def run(self) -> int:
        s = self.suite
        run_id = self.store.begin_run(
            s.suite.name,
            str(s.path or ""),
            s.model_dump(mode="json", exclude={"path"}),
            str(host_summary()["host"]),
            git_revision(),
        )
        try:
            self._run(run_id)
            over = self._over_budget(run_id)
        except KeyboardInterrupt:
            self._end_after_error(run_id, "interrupted")
            raise
        except BaseException:
            self._end_after_error(run_id, "failed")
            raise
        self.store.end_run(run_id, "over-budget" if over else "done")
        if over:
            raise CarbonBudgetExceeded(over)
        return run_id

    def _end_after_error(self, run_id: int, status: str) -> None:
        """Mark the run ``status`` while an error propagates; if even that cannot be written (disk full),
        say so in the log and let the first error be the one reported: the next open of the database
        marks the run ``interrupted`` once this process is gone."""
        try:
            self.store.end_run(run_id, status)
        except FrugalbenchError as e:
            log.warning("run %d could not be marked %s: %s", run_id, status, e)

    def _over_budget(self, run_id: int) -> str | None:
        """The suite's carbon budget for the run's measured inferences (all classes summed, as stated)."""
        budget = self.suite.carbon.budget_g
        if budget is None:
            return None
        joules = sum(
            (r.energy.per_inference_j or 0.0) * (r.latency.n_inferences or 0)
            for r in self.store.results(run_id=run_id, status="done")
        )
        grams = joules / 3.6e6 * self.suite.carbon.pue * self.grid.g_per_kwh
        if grams <= budget:
            return None
        return (
            f"carbon budget exceeded: this run's measured inferences emitted {grams:.3g} gCO2e "
            f"(energy of all classes summed) against carbon.budget_g = {budget:g}; results are stored. "
            "Raise the budget or shorten windows / drop variants."
        )

    def _targets(self) -> list[dict[str, Any]]:
        tabs = self.suite.targets
        if self.only_targets:
            names = {t["name"] for t in tabs}
            missing = sorted(set(self.only_targets) - names)
            if missing:
                raise FrugalbenchError(f"no target named {missing} in the suite (targets: {sorted(names)})")
            tabs = [t for t in tabs if t["name"] in self.only_targets]
        return tabs

    def _run(self, run_id: int) -> None:
        s = self.suite
        done = self.store.finished_jobs()
        production = host_meter()
        production.open()
        plan: list[tuple[Base, list[Variant], dict[str, str]]] = []
        self.progress.phase("models", s.n_builds())
        for task in s.tasks:
            for base in load_bases(task, self.cache):
                self.progress.advance(f"base {task.name}")
                variants, failed = [], {}
                for spec in s.variants_for(task.name, base.base_model):
                    name = base.variant_name(spec.name)
                    try:
                        variants.append(build_variant(base, spec, self.cache, production))
                    except FrugalbenchError as e:
                        failed[name] = str(e)
                        self.progress.note(f"variant {task.name}/{name} failed: {e}")
                    self.progress.advance(f"{task.name}/{name}")
                plan.append((base, variants, failed))
        production.close()

        targets = self._targets()
        jobs = sum(len(v) + len(f) for _, v, f in plan) * len(targets)
        self.progress.phase("measure", jobs)
        for tab in targets:
            cfg = validate_target(tab, where=f"target {tab.get('name')}")
            target = TARGETS.get(cfg.kind)(cfg)
            pending = [(b, v) for b, vs, _ in plan for v in vs if self.job_key(v, tab) not in done]
            for base, _vs, failed in plan:
                for name, reason in failed.items():
                    self.save_failed(run_id, base, name, tab, f"variant build failed: {reason}")
                    self.progress.advance(f"{base.task}/{name} on {tab['name']}")
            skipped = sum(len(vs) for _, vs, _ in plan) - len(pending)
            for _ in range(skipped):
                self.progress.advance("already done")
            if not pending:
                continue
            unavailable = TARGETS.get(cfg.kind).availability()
            if unavailable:
                for base, v in pending:
                    self.save_result(run_id, base, v, tab, None, status="skipped", reason=unavailable)
                    self.progress.advance(f"{v.task}/{v.name} on {tab['name']}")
                continue
            try:
                target.open()
            except TargetError as e:
                for base, v in pending:
                    self.save_result(run_id, base, v, tab, None, status="failed", reason=str(e))
                    self.progress.advance(f"{v.task}/{v.name} on {tab['name']}")
                continue
            try:
                meter = make_meter(dict(s.meter), target)
                meter.open()
                try:
                    for base, v in pending:
                        self.progress.advance(f"{v.task}/{v.name} on {tab['name']}")
                        self.measure_job(run_id, base, v, tab, target, meter)
                finally:
                    meter.close()
            finally:
                target.close()

    # --- one job ---
    def measure_job(
        self, run_id: int, base: Base, v: Variant, tab: dict[str, Any], target: Target, meter: Meter
    ) -> None:
        """Measure one variant on an open target and store the result (done, skipped or failed)."""
        why = target.supports(v)
        if why:
            self.save_result(run_id, base, v, tab, target, status="skipped", reason=why)
            return
        task = next(t for t in self.suite.tasks if t.name == v.task)
        try:
            target.load(v, produce_artefact(base, v, target.artefact, self.cache))
            out = target.predict(base.data.x_eval)
            value = metrics.score(task.metric, out, base.data.y_eval, task.metric_params)
            target.set_inputs(base.data.x_eval)
            meter.bind_target(target.info())
            row, windows = self._windows(target, meter)
        except (FrugalbenchError, OSError) as e:  # OSError: serial.SerialException, a dropped socket
            self.save_result(run_id, base, v, tab, target, status="failed", reason=str(e))
            self.progress.note(f"{v.task}/{v.name} on {tab['name']} failed: {e}")
            return
        latency, energy = measured(row)
        self.save_result(
            run_id,
            base,
            v,
            tab,
            target,
            status="done",
            accuracy=value,
            latency=latency,
            energy=energy,
            windows=windows,
        )

    def _windows(self, target: Target, meter: Meter) -> tuple[dict[str, Any], list[WindowRow]]:
        r = self.suite.run
        info = meter.info()
        m = measure(target, meter, r)
        p_idle, rows, ci = m.p_idle_w, m.rows, m.ci_rel
        good = [(w, ew.e_win_j) for w, ew in m.good]
        lat = np.concatenate([g.latencies_s for g, _ in good])
        pct = percentiles(lat)
        n_total = sum(g.n for g, _ in good)
        # Throughput per window from the DUT clock; median over windows.
        thr = float(np.median([g.n / g.dut_s for g, _ in good if g.dut_s > 0]))
        e_per = [e / g.n for g, e in good if e is not None and math.isfinite(e)]  # NaN: energy unknown
        e_med, e_lo, e_hi = median_ci(np.array(e_per), seed=r.seed) if e_per else (None, None, None)
        if info.model_power_w is not None and e_per:
            # a modelled meter prices latency: derive E from the row's own p50 so the two agree exactly
            e_med = info.model_power_w * pct["p50"]
            e_lo, e_hi = (e_med * (1 - ci), e_med * (1 + ci)) if np.isfinite(ci) else (None, None)
        e_dyn = None
        if p_idle is not None and e_per:
            e_dyn = float(
                np.median(
                    [(e - p_idle * g.dut_s) / g.n for g, e in good if e is not None and math.isfinite(e)]
                )
            )
        instr = [g.instr_per_inference for g, _ in good if g.instr_per_inference is not None]
        row = {
            "latency_p50_s": pct["p50"],
            "latency_p90_s": pct["p90"],
            "latency_p99_s": pct["p99"],
            "latency_ci_rel": ci if np.isfinite(ci) else None,
            "throughput_ips": thr,
            "n_windows": len(good),
            "n_inferences": n_total,
            "energy_per_inference_j": e_med,
            "energy_ci_rel": rel_half_width(e_med, e_lo, e_hi)
            if e_med and e_lo is not None and e_hi is not None
            else None,
            "energy_dyn_j": e_dyn,
            "p_idle_w": p_idle,
            "energy_class": info.energy_class,
            "marker_method": info.marker_method,
            "meter": info.model,
            "boundary": info.boundary,
            "instr_per_inference": float(np.median(instr)) if instr else None,
        }
        return row, rows

    def _record(
        self,
        run_id: int,
        job_key: str,
        base: Base,
        variant_name: str,
        tab: dict[str, Any],
        target: Target | None,
        status: Status,
        reason: str | None,
    ) -> Result:
        """The identity, task, carbon factors and provenance of one result (nothing measured yet)."""
        task = next(t for t in self.suite.tasks if t.name == base.task)
        prov: dict[str, Any] = {"target_config": tab, "git_rev": git_revision(), "date": time.time()}
        if task.performance_only:  # the ranking lists such results by latency and energy only
            prov["performance_only"] = True
        if target is not None:
            try:
                prov.update(target.info())
            except FrugalbenchError as e:
                prov["info_error"] = str(e)
        return Result(
            suite=self.suite.suite.name,
            task=base.task,
            base_model=base.base_model,
            variant=variant_name,
            target=tab["name"],
            status=status,
            reason=reason,
            target_kind=tab.get("kind"),
            runtime=tab.get("runtime", prov.get("runtime")),
            metric=task.metric,
            min_accuracy=task.min_accuracy,
            carbon=Carbon(self.suite.carbon.pue, self.grid.g_per_kwh, self.grid.source),
            provenance=prov,
            run_id=run_id,
            job_key=job_key,
        )

    def save_result(
        self,
        run_id: int,
        base: Base,
        v: Variant,
        tab: dict[str, Any],
        target: Target | None,
        *,
        status: Status,
        reason: str | None = None,
        accuracy: float | None = None,
        latency: Latency | None = None,
        energy: Energy | None = None,
        windows: list[WindowRow] | None = None,
    ) -> Result:
        """Store one result (and its windows) of ``v`` on target ``tab`` under its job key; returns it."""
        m = v.meta
        rec = self._record(run_id, self.job_key(v, tab), base, v.name, tab, target, status, reason)
        art = (
            target or TARGETS.get(tab["kind"])(validate_target(tab, where=f"target {tab['name']}"))
        ).artefact
        fmt = art.value
        sizes, gz = m.get("model_bytes", {}), m.get("model_bytes_gz", {})
        rec = replace(
            rec,
            variant_key=v.key,
            technique=m.get("technique"),
            accuracy=accuracy,
            latency=latency or Latency(),
            energy=energy or Energy(),
            model=ModelFacts(
                params=m.get("params"),
                macs=m.get("macs"),
                model_bytes=sizes.get(fmt)
                or rec.provenance.get("model_blob_bytes")
                or next(iter(sizes.values()), None),
                model_bytes_gz=gz.get(fmt)
                if art is Artefact.MCU_BLOB
                else (gz.get(fmt) or next(iter(gz.values()), None)),
                ram_bytes=rec.provenance.get("ram_bytes"),
                flash_bytes=rec.provenance.get("flash_bytes"),
                fine_tuned=bool(m.get("fine_tuned")),
                epochs=m.get("epochs"),
            ),
            production=Production(m.get("produce_s"), m.get("produce_j"), m.get("produce_energy_class")),
            variant_meta=m,
        )
        rec = replace(rec, id=self.store.save_result(rec, windows or []))
        return rec

    def save_failed(self, run_id: int, base: Base, name: str, tab: dict[str, Any], reason: str) -> Result:
        """Store a variant whose build failed, with the reason; returns the stored record."""
        key = content_key(self.suite.suite.name, base.task, name, "failed-build", tab)
        rec = self._record(run_id, key, base, name, tab, None, "failed", reason)
        return replace(rec, id=self.store.save_result(rec, []))


def run_suite(
    suite: Suite,
    db: Path,
    *,
    cache: Path | None = None,
    progress: Progress | None = None,
    targets: list[str] | None = None,
) -> int:
    """Run ``suite`` into the SQLite file ``db``; returns the run id."""
    with Store.open(db) as store:
        return Runner(suite, store, cache=cache, progress=progress, targets=targets).run()


__all__ = ["MeterUnavailable", "Progress", "Runner", "host_meter", "make_meter", "run_suite"]
_ = Callable
