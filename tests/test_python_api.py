"""The Python API (harness.pipeline.api): the README's "Python API" code blocks run as written."""

from __future__ import annotations

import importlib.util
import re
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from harness.errors import ConfigError
from harness.ir.export.onnx_export import network_to_onnx_bytes
from harness.ir.layers import Dense
from harness.ir.network import Network
from harness.pipeline.api import PandasMissing, find_suite, load_results, run_suite, to_dataframe
from harness.results.record import Result

README = Path(__file__).resolve().parents[1] / "README.md"

# stands in for benches/quick.toml (found first in the working directory): one small task, CPU only
TINY = """
[suite]
name = "quick"

[run]
warmup_s = 0.02
window_s = 0.05
min_windows = 2
max_windows = 3
ci_target = 0.5

[[tasks]]
name = "digits"
recipe = "digits_mlp"
recipe_params = { hidden = [16], max_iter = 60 }
min_accuracy = 0.5

[[variants]]
name = "fp32"
technique = "fp32"

[[variants]]
name = "int8-dynamic"
technique = "int8"
params = { mode = "dynamic" }

[[targets]]
name = "cpu-ort"
kind = "cpu"
runtime = "ort"

[[targets]]
name = "cpu-litert"
kind = "cpu"
runtime = "litert"
"""


def readme_blocks() -> list[str]:
    """The ```python blocks of the README's "Python API" section, in order."""
    text = README.read_text(encoding="utf-8")
    section = text.split("\n## Python API\n", 1)[1].split("\n## ", 1)[0]
    return re.findall(r"```python\n(.*?)```", section, flags=re.S)


@pytest.fixture(scope="module")
def workdir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    d = tmp_path_factory.mktemp("api")
    (d / "benches").mkdir()
    (d / "benches" / "quick.toml").write_text(TINY)
    rng = np.random.default_rng(0)
    net = Network([Dense(rng.normal(size=(16, 32)), np.zeros(32), "relu"), Dense(rng.normal(size=(32, 4)), np.zeros(4))])  # fmt: skip
    (d / "model.onnx").write_bytes(network_to_onnx_bytes(net))
    return d


def _run(block: str, cwd: Path, monkeypatch: pytest.MonkeyPatch, ns: dict[str, Any]) -> dict[str, Any]:
    monkeypatch.chdir(cwd)
    monkeypatch.setenv("FRUGALBENCH_CACHE", str(cwd / "cache"))
    exec(compile(block, "README.md", "exec"), ns)
    return ns


def test_readme_has_the_three_examples() -> None:
    blocks = readme_blocks()
    assert len(blocks) == 3
    assert "run_suite(" in blocks[0] and "bench_model(" in blocks[1] and "to_dataframe(" in blocks[2]


def test_readme_run_suite_example(workdir: Path, monkeypatch: pytest.MonkeyPatch, capsys: Any) -> None:
    ns = _run(readme_blocks()[0], workdir, monkeypatch, {})
    results = ns["results"]
    assert results and all(isinstance(r, Result) for r in results)
    assert {(r.variant, r.target) for r in results} == {("fp32", "cpu-ort"), ("int8-dynamic", "cpu-ort")}
    for r in results:  # measured on this machine: every figure present, none invented as 0
        assert r.status == "done" and r.accuracy is not None and 0.5 < r.accuracy <= 1.0
        assert r.latency.p50_s and r.latency.p50_s > 0 and r.latency.n_windows and r.latency.n_windows >= 2
        assert r.energy.per_inference_j and r.energy.measurement_class in ("counter", "estimate")
        assert r.id is not None and r.suite == "quick"
    assert ns["fastest"] in results and "fastest:" in capsys.readouterr().out
    assert load_results(workdir / "results.sqlite") == results
    # resumable: the same call measures nothing again and returns the same stored records
    assert run_suite("quick", db=workdir / "results.sqlite", targets=["cpu-ort"]) == results


def test_readme_bench_model_example(workdir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    ns = _run(readme_blocks()[1], workdir, monkeypatch, {})
    b = ns["b"]
    assert b.params == 16 * 32 + 32 + 32 * 4 + 4 and b.macs == 16 * 32 + 32 * 4
    assert b.runtime == "ort" and 0 < b.latency_ms["p50"] <= b.latency_ms["p99"] and b.n_inferences > 0


def test_readme_dataframe_example(workdir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    if not (workdir / "results.sqlite").exists():
        _run(readme_blocks()[0], workdir, monkeypatch, {})
    if importlib.util.find_spec("pandas") is None:
        with pytest.raises(PandasMissing, match="pip install pandas"):
            _run(readme_blocks()[2], workdir, monkeypatch, {})
        return
    df = _run(readme_blocks()[2], workdir, monkeypatch, {})["df"]
    stored = load_results(workdir / "results.sqlite")
    assert len(df) == len(stored) and list(df["variant"]) == [r.variant for r in stored]
    assert list(df["energy_per_inference_j"]) == [r.energy.per_inference_j for r in stored]
    assert "provenance" in df.columns and "latency_p50_s" in df.columns


def test_to_dataframe_without_pandas_names_the_fix(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "pandas", None)  # makes `import pandas` fail
    with pytest.raises(PandasMissing, match=r"`pip install pandas`"):
        to_dataframe([])


def test_unknown_suite_names_where_it_looked(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    with pytest.raises(ConfigError, match=r"suite 'nosuch' not found .*benches/nosuch.toml"):
        find_suite("nosuch")
    assert find_suite("quick").name == "quick.toml"  # the checkout's benches/quick.toml
