"""Expand a suite into farm jobs: every variant × every board target (``kind = "mcu"``).

Variants are built (or read from the cache) once on this host, exactly as ``frugalbench run`` does,
and each job carries the same job key as the local runner, so the store holds one row per job
whichever place ran it, and a re-run (local or farm) skips finished jobs.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..errors import ConfigError, FrugalbenchError
from ..ir.model import Variant
from ..pipeline.runner import Progress, Runner, host_meter
from ..pipeline.variants import Base, build_variant, load_bases
from ..suite import Suite, validate_target

FARM_KINDS = ("mcu",)


@dataclass
class Job:
    """One (variant, board target) pair; ``attempts`` and ``history`` record where it ran."""

    key: str
    base: Base
    variant: Variant
    tab: dict[str, Any]
    attempts: int = 0
    history: list[str] = field(default_factory=list)

    @property
    def board(self) -> str:
        return str(self.tab["board"])

    @property
    def label(self) -> str:
        return f"{self.variant.task}/{self.variant.name} on {self.tab['name']}"


def board_targets(suite: Suite, progress: Progress | None = None) -> list[dict[str, Any]]:
    """The suite's board targets; other kinds are left out with a note saying how to run them."""
    tabs = []
    for t in suite.targets:
        validate_target(t, where=f"target {t.get('name')}")
        if t.get("kind") not in FARM_KINDS:
            (progress or Progress()).note(
                f"target {t.get('name')!r} ({t.get('kind')}) is not a board target: the farm leaves it out; "
                f"run it with `frugalbench run SUITE --target {t.get('name')}`"
            )
            continue
        if t.get("port"):
            raise ConfigError(
                f"target {t['name']!r} names a local port ({t['port']}); on the farm the place gives the port: "
                "remove 'port' from the target"
            )
        tabs.append(t)
    if not tabs:
        raise ConfigError(
            'the suite has no board target (kind = "mcu") to run on the farm; run it with `frugalbench run SUITE`'
        )
    return tabs


def expand(
    suite: Suite, runner: Runner, run_id: int, cache: Path, progress: Progress | None = None
) -> tuple[list[Job], int]:
    """Build variants and return (pending jobs, number already finished in the store).

    Variants that fail to build are stored as failed once per target (as ``frugalbench run`` does).
    """
    progress = progress or Progress()
    tabs = board_targets(suite, progress)
    done = runner.store.finished_jobs()
    production = host_meter()
    production.open()
    plan: list[tuple[Base, list[Variant], dict[str, str]]] = []
    try:
        progress.phase("models", suite.n_builds())
        for task in suite.tasks:
            for base in load_bases(task, cache):
                progress.advance(f"base {task.name}")
                variants, failed = [], {}
                for spec in suite.variants_for(task.name, base.base_model):
                    name = base.variant_name(spec.name)
                    try:
                        variants.append(build_variant(base, spec, cache, production))
                    except FrugalbenchError as e:
                        failed[name] = str(e)
                        progress.note(f"variant {task.name}/{name} failed: {e}")
                    progress.advance(f"{task.name}/{name}")
                plan.append((base, variants, failed))
    finally:
        production.close()
    jobs: list[Job] = []
    skipped = 0
    for tab in tabs:
        for base, variants, failed in plan:
            for name, reason in failed.items():
                runner.save_failed(run_id, base, name, tab, f"variant build failed: {reason}")
            for v in variants:
                key = runner.job_key(v, tab)
                if key in done:
                    skipped += 1
                else:
                    jobs.append(Job(key, base, v, tab))
    return jobs, skipped
