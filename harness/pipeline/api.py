"""The Python API: run a suite, benchmark a model file, read results back, as typed records.

Everything here is a thin, documented front to what the CLI uses (``Runner``, ``bench_model``,
``Store``), so a notebook and ``frugalbench run`` share job keys, databases and figures::

    from harness.pipeline.api import load_results, run_suite, to_dataframe

    results = run_suite("quick", db="results.sqlite", targets=["cpu-ort"])
    best = min((r for r in results if r.energy.per_inference_j), key=lambda r: r.energy.per_inference_j)

Results are :class:`~harness.results.record.Result` records (frozen; ``None`` = not measured).
It lives in ``pipeline/`` because it drives the runner and bench (the layer above ``results/``), and
importing ``harness`` itself stays light: nothing here is imported until this module is.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..errors import ConfigError, FrugalbenchError
from ..results.record import COLUMNS, Result
from ..results.store import Store
from .bench import BenchResult
from .bench import bench_model as _bench_model
from .mcu_bench import McuBenchResult
from .mcu_bench import bench_mcu as _bench_mcu

if TYPE_CHECKING:
    from .runner import Progress

BENCHES = Path(__file__).resolve().parents[2] / "benches"  # the suites of a source checkout


class PandasMissing(FrugalbenchError):
    """``to_dataframe`` needs pandas, which frugalbench does not depend on."""


def find_suite(path_or_name: str | Path) -> Path:
    """A suite file: ``path_or_name`` if it is a file, else ``benches/NAME.toml`` here or in the checkout."""
    p = Path(path_or_name)
    if p.is_file():
        return p
    tried = [p]
    if p.suffix != ".toml" and len(p.parts) == 1:
        for folder in (Path("benches"), BENCHES):
            cand = folder / f"{p.name}.toml"
            if cand.is_file():
                return cand
            tried.append(cand)
    raise ConfigError(
        f"suite {str(path_or_name)!r} not found (looked at {', '.join(map(str, tried))}); "
        "pass a suite file path or the name of one in benches/ (e.g. 'quick')"
    )


def run_suite(
    path_or_name: str | Path,
    db: str | Path = "results.sqlite",
    *,
    targets: list[str] | None = None,
    cache: str | Path | None = None,
    progress: Progress | None = None,
) -> list[Result]:
    """Run a suite into ``db`` (resumable, like ``frugalbench run``) and return its results there.

    ``path_or_name`` is a suite file or the name of one in ``benches/``; ``targets`` limits the run to
    those targets of the suite. The returned records are the suite's results in ``db``: this run's and
    those an earlier, interrupted run already finished (resume never measures them twice).
    """
    from ..suite import load_suite
    from .runner import run_suite as _run

    suite = load_suite(find_suite(path_or_name))
    _run(suite, Path(db), cache=Path(cache) if cache else None, progress=progress, targets=targets)
    return [r for r in load_results(db) if r.suite == suite.suite.name]


def bench_model(path: str | Path, **options: Any) -> BenchResult:
    """Benchmark one .onnx/.tflite file with random inputs (``frugalbench bench``).

    Options: ``runtime`` ("ort" or "litert", else from the extension), ``threads``, ``batch``,
    ``window_s``, ``windows``, ``warmup_s``, ``seed``, ``shapes`` and ``values`` (name -> text, as
    ``--shape``/``--value``). Returns latency percentiles (ms), their CI, throughput, size and cost.
    """
    return _bench_model(Path(path), **options)


def bench_mcu(path: str | Path, **options: Any) -> McuBenchResult:
    """Run one int8 .tflite on an emulated MCU board (``frugalbench bench MODEL --target qemu-m4``).

    Options: ``target`` ("qemu-m4" or an emulated board profile), ``check`` (compare the int8 outputs
    with LiteRT's reference kernels on ``samples`` random inputs), ``samples``, ``seed``. Returns
    instructions per inference, simulated latency and energy at the board's clock, RAM, flash, MACs.
    """
    return _bench_mcu(Path(path), **options)


def load_results(db: str | Path, run_id: int | None = None) -> list[Result]:
    """The results stored in ``db`` (all runs, or run ``run_id``) as records, in insertion order."""
    with Store.open(db, create=False) as store:
        return store.results(run_id=run_id)


def to_dataframe(results: list[Result]) -> Any:
    """A ``pandas.DataFrame``: one row per result, columns named as in the SQLite ``results`` table.

    pandas is not a dependency of frugalbench; without it this raises :class:`PandasMissing`.
    """
    try:
        import pandas as pd
    except ImportError:
        raise PandasMissing("to_dataframe needs pandas: `pip install pandas`") from None
    return pd.DataFrame([r.columns() for r in results], columns=[c for c, _, _ in COLUMNS])


__all__ = [
    "BenchResult",
    "McuBenchResult",
    "Result",
    "bench_mcu",
    "bench_model",
    "find_suite",
    "load_results",
    "run_suite",
    "to_dataframe",
]
