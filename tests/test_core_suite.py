"""Suite validation: bad input names the file, the line, the key and what is expected."""

from __future__ import annotations

from pathlib import Path

import pytest

from harness.errors import ConfigError
from harness.suite import load_suite

ROOT = Path(__file__).resolve().parents[1]
GOOD = """
[suite]
name = "t"

[[tasks]]
name = "digits"
recipe = "digits_mlp"
min_accuracy = 0.9

[[variants]]
name = "fp32"
technique = "fp32"

[[variants]]
name = "q"
technique = "int8"
params = { mode = "static" }

[[targets]]
name = "cpu"
kind = "cpu"
runtime = "ort"
"""


def _write(tmp_path: Path, text: str) -> Path:
    p = tmp_path / "s.toml"
    p.write_text(text)
    return p


@pytest.mark.parametrize(
    "name", ["quick.toml", "default.toml", "conv.toml", "cores.toml", "examples/conv-mcu.toml"]
)
def test_shipped_suites_load(name: str) -> None:
    if not (ROOT / "benches" / name).exists():
        pytest.skip(f"benches/{name} not written yet")
    s = load_suite(ROOT / "benches" / name)
    assert s.tasks and s.variants and s.targets
    assert all(t.performance_only or (t.min_accuracy or 0) > 0 for t in s.tasks)
    assert all(t.why_min for t in s.tasks)


def test_good_suite(tmp_path: Path) -> None:
    s = load_suite(_write(tmp_path, GOOD))
    assert [v.chain for v in s.variants] == [[], [("int8", {"mode": "static"})]]


@pytest.mark.parametrize(
    ("old", "new", "expect"),
    [
        (
            "min_accuracy = 0.9",
            "min_acuracy = 0.9",
            ["s.toml:", "tasks[0=digits]", "min_acuracy", "unknown key"],
        ),
        ("min_accuracy = 0.9", 'min_accuracy = "high"', ["tasks[0=digits].min_accuracy", "number"]),
        ('runtime = "ort"', 'runtime = "tvm"', ["targets[0=cpu].runtime", "'ort' or 'litert'"]),
        ('kind = "cpu"', 'kind = "fpga"', ["unknown target kind 'fpga'", "cpu"]),
        ('technique = "int8"', 'technique = "int4"', ["unknown technique 'int4'", "int8"]),
        ('params = { mode = "static" }', 'params = { mod = "static" }', ["has no parameter 'mod'", "mode"]),
        ('params = { mode = "static" }', 'params = { mode = "fast" }', ["parameter mode", "static"]),
        ('recipe = "digits_mlp"', 'recipe = "nope"', ["tasks[0=digits].recipe", "unknown recipe 'nope'"]),
        (
            'recipe = "digits_mlp"',
            'model = "missing.onnx"\ndata = "d.npz"',
            ["file", "missing.onnx", "not found"],
        ),
        (
            'name = "t"',
            'name = "t"\n[run]\nmin_windows = 5\nmax_windows = 2',
            ["max_windows must be >= min_windows"],
        ),
    ],
)
def test_bad_suite_errors_name_the_problem(tmp_path: Path, old: str, new: str, expect: list[str]) -> None:
    assert old in GOOD
    with pytest.raises(ConfigError) as e:
        load_suite(_write(tmp_path, GOOD.replace(old, new, 1)))
    for part in expect:
        assert part in str(e.value), str(e.value)


def test_error_names_the_line(tmp_path: Path) -> None:
    text = GOOD.replace("min_accuracy = 0.9", "min_acuracy = 0.9")
    with pytest.raises(ConfigError) as e:
        load_suite(_write(tmp_path, text))
    line = text.splitlines().index("min_acuracy = 0.9") + 1
    assert f"s.toml:{line}:" in str(e.value)


def test_not_toml_and_missing_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="not valid TOML"):
        load_suite(_write(tmp_path, "[suite\nname="))
    with pytest.raises(ConfigError, match="not found"):
        load_suite(tmp_path / "nope.toml")


def test_int8_must_be_last(tmp_path: Path) -> None:
    text = GOOD + '\n[[variants]]\nname = "bad"\nsteps = [{technique = "int8"}, {technique = "int8"}]\n'
    with pytest.raises(ConfigError, match="int8 must be the last step"):
        load_suite(_write(tmp_path, text))


@pytest.mark.parametrize(
    ("old", "new", "expect"),
    [
        ("min_accuracy = 0.9", "min_accuracy = nan", ["tasks[0=digits].min_accuracy", "finite"]),
        ("min_accuracy = 0.9", "min_accuracy = -inf", ["tasks[0=digits].min_accuracy", "finite"]),
        ("min_accuracy = 0.9", "min_accuracy = inf", ["tasks[0=digits].min_accuracy", "finite"]),
        ("min_accuracy = 0.9", "min_accuracy = 90.0", ["between 0 and 1", "not a percentage"]),
        ("min_accuracy = 0.9", "min_accuracy = -0.1", ["between 0 and 1"]),
        ('name = "t"', 'name = "t"\n[run]\nwindow_s = inf', ["run.window_s", "finite"]),
        ('name = "t"', 'name = "t"\n[run]\nci_target = nan', ["run.ci_target", "finite"]),
        ('name = "t"', 'name = "t"\n[carbon]\nbudget_g = inf', ["carbon.budget_g", "finite"]),
    ],
)
def test_suite_numbers_are_finite_and_in_range(tmp_path: Path, old: str, new: str, expect: list[str]) -> None:
    with pytest.raises(ConfigError) as e:
        load_suite(_write(tmp_path, GOOD.replace(old, new, 1)))
    for part in expect:
        assert part in str(e.value), str(e.value)


def test_mae_minimum_is_an_error_bound(tmp_path: Path) -> None:
    text = GOOD.replace("min_accuracy = 0.9", 'metric = "mae"\nmin_accuracy = 2.5', 1)
    assert load_suite(_write(tmp_path, text)).tasks[0].min_accuracy == 2.5
    with pytest.raises(ConfigError, match="mae"):
        load_suite(_write(tmp_path, text.replace("min_accuracy = 2.5", "min_accuracy = -1.0")))
