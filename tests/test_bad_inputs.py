"""A corpus of bad inputs: each is refused with one line naming the problem, a non-zero exit, no traceback,
and (where a results database is involved) the database unchanged.

The CLI runs in-process (``harness.cli.main.main`` with ``sys.argv`` set), so the ~250 cases stay fast.
Datasets and metrics are also fed straight to :func:`load_arrays` and :func:`score`.
"""

from __future__ import annotations

import hashlib
import shutil
import sys
import zipfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper

from harness.byo import datasets
from harness.byo.datasets import load_arrays
from harness.byo.spec import InputSpec
from harness.cli.main import main
from harness.errors import FrugalbenchError
from harness.ir.export.onnx_export import network_to_onnx_bytes
from harness.ir.layers import Dense
from harness.ir.network import Network
from harness.metrics import score
from harness.suite import load_suite

BASE_DB = Path("/tmp/base/r.sqlite")

# --- running the CLI --------------------------------------------------------------------------------


def cli(args: list[str], capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> tuple[int, str]:
    """Exit status and everything printed (stdout + stderr) of ``frugalbench ARGS``, in-process."""
    monkeypatch.setattr(sys, "argv", ["frugalbench", *args])
    with pytest.raises(SystemExit) as e:
        main()
    cap = capsys.readouterr()
    code = e.value.code
    return (code if isinstance(code, int) else 1), cap.out + cap.err


def refused(rc: int, text: str, *needles: str) -> str:
    """Assert one ``error:`` line naming the problem, a non-zero exit and no traceback; return the line."""
    assert rc != 0, text
    assert "Traceback" not in text, text
    errors = [line for line in text.splitlines() if line.startswith("error:")]
    assert len(errors) == 1, text
    line = errors[0]
    assert "unexpected" not in line, line  # a check named the problem; the last-resort guard did not
    for n in needles:
        assert n.lower() in line.lower(), (n, line)
    return line


def usage_refused(rc: int, text: str, *needles: str) -> None:
    """An option refused by the command-line parser itself (click's usage error, exit 2)."""
    assert rc == 2 and "Traceback" not in text, text
    for n in needles:
        assert n.lower() in text.lower(), (n, text)


def digest(path: Path) -> str | None:
    return hashlib.sha256(path.read_bytes()).hexdigest() if path.is_file() else None


# --- suites -----------------------------------------------------------------------------------------

SUITE = """\
[suite]
name = "bad"

[run]
warmup_s = 0.0
window_s = 0.05
min_windows = 1
max_windows = 2
ci_target = 0.5
time_budget_s = 5
idle_s = 0.0
seed = 0

[[tasks]]
name = "digits"
recipe = "digits_mlp"
recipe_params = { hidden = [8], max_iter = 5 }
metric = "accuracy"
metric_params = {}
min_accuracy = 0.1
seed = 0

[[variants]]
name = "fp32"
technique = "fp32"

[[targets]]
name = "cpu-ort"
kind = "cpu"
runtime = "ort"
threads = 1
batch = 1
"""


def _sub(old: str, new: str) -> Callable[[str], str]:
    def f(text: str) -> str:
        assert old in text, old
        return text.replace(old, new, 1)

    return f


def _add(after: str, line: str) -> Callable[[str], str]:
    return _sub(after, f"{after}\n{line}")


RUN_RULES = [
    ("window_s", v, "window_s") for v in ("inf", "-inf", "nan", "-1.0", "0.0", "1e308", "7200.0", '"1"', "true")
] + [
    ("warmup_s", v, "warmup_s") for v in ("-1.0", "inf", "nan", "1e9")
] + [
    ("min_windows", v, "min_windows") for v in ("0", "-3", "1000000", "1.5")
] + [
    ("max_windows", v, "max_windows") for v in ("0", "-1", "100000")
] + [
    ("ci_target", v, "ci_target") for v in ("0.0", "-0.1", "2.0", "nan", "inf")
] + [
    ("time_budget_s", v, "time_budget_s") for v in ("0.0", "-5.0", "inf", "nan", "1e12")
] + [
    ("idle_s", v, "idle_s") for v in ("-1.0", "inf", "nan")
] + [
    ("seed", v, "seed") for v in ("-1", "4294967296", "1.5", '"x"')
]

_RUN_DEFAULTS = {
    "window_s": "0.05",
    "warmup_s": "0.0",
    "min_windows": "1",
    "max_windows": "2",
    "ci_target": "0.5",
    "time_budget_s": "5",
    "idle_s": "0.0",
    "seed": "0",
}

SUITE_CASES: list[tuple[str, Callable[[str], str], tuple[str, ...]]] = [
    (f"run.{k}={v}", _sub(f"\n{k} = {_RUN_DEFAULTS[k]}\n", f"\n{k} = {v}\n"), (need,)) for k, v, need in RUN_RULES
] + [
    ("run.min>max", _sub("min_windows = 1", "min_windows = 5"), ("max_windows",)),
    ("run.unknown", _add("idle_s = 0.0", "windowz = 3"), ("windowz", "unknown key")),
    ("task.name-empty", _sub('name = "digits"', 'name = ""'), ("name", "empty")),
    ("task.name-blank", _sub('name = "digits"', 'name = "   "'), ("name", "empty")),
    ("task.name-newline", _sub('name = "digits"', 'name = "a\\nb"'), ("control",)),
    ("task.name-tab", _sub('name = "digits"', 'name = "a\\tb"'), ("control",)),
    ("task.name-long", _sub('name = "digits"', f'name = "{"x" * 200}"'), ("100",)),
    ("task.name-int", _sub('name = "digits"', "name = 3"), ("name",)),
    ("task.seed-neg", _sub("\nseed = 0\n\n[[variants]]", "\nseed = -1\n\n[[variants]]"), ("seed",)),
    ("task.seed-huge", _sub("\nseed = 0\n\n[[variants]]", "\nseed = 99999999999\n\n[[variants]]"), ("seed",)),
    ("task.recipe-unknown", _sub('recipe = "digits_mlp"', 'recipe = "nope"'), ("recipe", "nope")),
    ("task.no-source", _sub('recipe = "digits_mlp"\nrecipe_params = { hidden = [8], max_iter = 5 }', ""), ("recipe",)),
    ("task.both-sources", _add('recipe = "digits_mlp"', 'model = "m.onnx"'), ("exactly one",)),
    ("task.model-missing", _sub('recipe = "digits_mlp"\nrecipe_params = { hidden = [8], max_iter = 5 }',
                                'model = "nowhere.onnx"\ndata = "nowhere.npz"'), ("not found",)),
    ("task.model-no-data", _sub('recipe = "digits_mlp"\nrecipe_params = { hidden = [8], max_iter = 5 }',
                                'model = "nowhere.onnx"'), ("data",)),
    ("task.metric-unknown", _sub('metric = "accuracy"', 'metric = "bleu"'), ("metric",)),
    ("task.unknown-key", _add('metric = "accuracy"', "metrik = 1"), ("metrik", "unknown key")),
    ("task.min-missing", _sub("min_accuracy = 0.1\n", ""), ("min_accuracy", "missing")),
    ("task.duplicate", _sub("\n[[variants]]", '\n[[tasks]]\nname = "digits"\nrecipe = "digits_mlp"\n'
                            "min_accuracy = 0.1\n\n[[variants]]"), ("duplicate name 'digits'",)),
    ("task.no-tasks", lambda t: t.split("[[tasks]]")[0] + "[[variants]]" + t.split("[[variants]]")[1],
     ("tasks", "missing")),
] + [
    (f"recipe.hidden={v}", _sub("hidden = [8]", f"hidden = {v}"), ("hidden",))
    for v in ("[0]", "[-5]", '"abc"', "[]", "[1.5]", "[100000]", "[8, 0]", "8", "[true]", '["8"]', "[8, 8, 8, 8, 8, 8, 8, 8, 8, 8, 8, 8, 8, 8, 8, 8, 8]")
] + [
    (f"recipe.max_iter={v}", _sub("max_iter = 5", f"max_iter = {v}"), ("max_iter",))
    for v in ("0", "-1", '"x"', "1e9", "1000000000", "5.5", "true")
] + [
    ("recipe.unknown-param", _sub("max_iter = 5", "max_iter = 5, layers = 3"), ("layers",)),
    ("recipe.typo-param", _sub("max_iter = 5", "max_iters = 5"), ("max_iters",)),
] + [
    (f"metric_params.{name}", fn, need)
    for name, fn, need in [
        ("unknown-key", _sub("metric_params = {}", "metric_params = { kk = 3 }"), ("kk",)),
        ("k-on-accuracy", _sub("metric_params = {}", "metric_params = { k = 3 }"), ("'k'",)),
        ("threshold-nan", _sub("metric_params = {}", "metric_params = { threshold = nan }"), ("threshold",)),
        ("threshold-inf", _sub("metric_params = {}", "metric_params = { threshold = inf }"), ("threshold",)),
        ("threshold-str", _sub("metric_params = {}", 'metric_params = { threshold = "x" }'), ("threshold",)),
        ("threshold-bool", _sub("metric_params = {}", "metric_params = { threshold = true }"), ("threshold",)),
    ]
] + [
    (f"top_k.k={v}", _sub('metric = "accuracy"\nmetric_params = {}', f'metric = "top_k"\nmetric_params = {{ k = {v} }}'), ("k",))
    for v in ("0", "-1", '"5"', "true", "1.5")
] + [
    (f"{m}.any-param", _sub('metric = "accuracy"\nmetric_params = {}', f'metric = "{m}"\nmetric_params = {{ k = 2 }}'), ("'k'",))
    for m in ("auc", "macro_f1", "mae")
] + [
    ("variant.name-empty", _sub('name = "fp32"', 'name = ""'), ("empty",)),
    ("variant.name-newline", _sub('name = "fp32"', 'name = "x\\ny"'), ("control",)),
    ("variant.technique-unknown", _sub('technique = "fp32"', 'technique = "magic"'), ("magic",)),
    ("variant.fp32-params", _add('technique = "fp32"', "params = { bits = 4 }"), ("params",)),
    ("variant.no-technique", _sub('technique = "fp32"', ""), ("technique",)),
    ("variant.unknown-task", _add('technique = "fp32"', 'tasks = ["nope"]'), ("nope",)),
    ("variant.int8-then", _sub('technique = "fp32"', 'steps = [{ technique = "int8" }, { technique = "int8" }]'),
     ("int8",)),
    ("variant.duplicate", _add('technique = "fp32"', '\n[[variants]]\nname = "fp32"\ntechnique = "fp32"'),
     ("duplicate name 'fp32'",)),
] + [
    (f"target.{k}={v}", _sub(f"\n{k} = 1\n", f"\n{k} = {v}\n"), (k,))
    for k in ("threads", "batch")
    for v in ("0", "-1", '"2"', "1.5")
] + [
    (f"target.cores={v}", _add("batch = 1", f"cores = {v}"), ("cores",))
    for v in ("[-1]", "[]", "[99999]", "[0, -2]", '"0"', "-1")
] + [
    ("target.name-empty", _sub('name = "cpu-ort"', 'name = ""'), ("empty",)),
    ("target.name-newline", _sub('name = "cpu-ort"', 'name = "a\\nb"'), ("control",)),
    ("target.kind-unknown", _sub('kind = "cpu"', 'kind = "gpu9000"'), ("gpu9000",)),
    ("target.kind-missing", _sub('kind = "cpu"\n', ""), ("kind",)),
    ("target.runtime-unknown", _sub('runtime = "ort"', 'runtime = "tvm"'), ("runtime",)),
    ("target.unknown-key", _add("batch = 1", "speed = 3"), ("speed", "unknown key")),
    ("target.duplicate", lambda t: t + '\n[[targets]]\nname = "cpu-ort"\nkind = "cpu"\nruntime = "ort"\n',
     ("duplicate target name",)),
    ("target.mcu-bogus-port", lambda t: t + '\n[[targets]]\nname = "m4"\nkind = "mcu"\n'
     'board = "qemu-mps2-an386"\nport = "bogus://x"\n', ("port", "bogus")),
    ("target.mcu-timeout-inf", lambda t: t + '\n[[targets]]\nname = "m4"\nkind = "mcu"\n'
     'board = "qemu-mps2-an386"\ntimeout_s = inf\n', ("timeout_s",)),
    ("target.mcu-timeout-nan", lambda t: t + '\n[[targets]]\nname = "m4"\nkind = "mcu"\n'
     'board = "qemu-mps2-an386"\ntimeout_s = nan\n', ("timeout_s",)),
    ("meter.kind-unknown", _sub("\n[[tasks]]", '\n[meter]\nkind = "wattmeter9"\n\n[[tasks]]'), ("wattmeter9",)),
    ("top.unknown-table", lambda t: t + "\n[extra]\nx = 1\n", ("extra", "unknown key")),
    ("suite.no-name", _sub('name = "bad"\n', ""), ("name", "missing")),
    ("toml.syntax", lambda t: t + "\n[[targets]\n", ("not valid toml",)),
    ("toml.empty", lambda t: "", ("missing",)),
    ("toml.dup-key", _add("idle_s = 0.0", "idle_s = 1.0"), ("not valid toml",)),
]


@pytest.fixture()
def suite_dir(tmp_path: Path) -> Path:
    return tmp_path


@pytest.mark.parametrize("name,mutate,needles", SUITE_CASES, ids=[c[0] for c in SUITE_CASES])
def test_bad_suite_refused_by_run(
    name: str,
    mutate: Callable[[str], str],
    needles: tuple[str, ...],
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    f = tmp_path / "s.toml"
    f.write_text(mutate(SUITE), encoding="utf-8")
    db = tmp_path / "r.sqlite"
    rc, text = cli(["run", str(f), "--db", str(db)], capsys, monkeypatch)
    line = refused(rc, text, *needles)
    assert str(f) in line  # names the file
    assert not db.exists()  # refused before anything was stored


def test_the_base_suite_is_valid(tmp_path: Path) -> None:
    """The corpus mutates a suite that loads: each case fails for its own reason."""
    f = tmp_path / "s.toml"
    f.write_text(SUITE, encoding="utf-8")
    assert load_suite(f).tasks[0].name == "digits"


def test_binary_and_missing_suite_files(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    b = tmp_path / "bin.toml"
    b.write_bytes(bytes(range(256)) * 4)
    refused(*cli(["run", str(b), "--db", str(tmp_path / "r.sqlite")], capsys, monkeypatch), "utf-8")
    refused(*cli(["run", str(tmp_path / "nope.toml")], capsys, monkeypatch), "not found")
    refused(*cli(["run", "no-such-packaged-suite"], capsys, monkeypatch), "packaged suites")
    assert not (tmp_path / "r.sqlite").exists()


def test_error_lines_point_at_the_right_line(tmp_path: Path) -> None:
    text = SUITE + '\n[[variants]]\nname = "int8"\ntechnique = "int8"\n\n[[variants]]\nname = "fp32"\ntechnique = "fp32"\n'
    f = tmp_path / "s.toml"
    f.write_text(text, encoding="utf-8")
    lines = text.splitlines()
    dup = max(i for i, line in enumerate(lines) if line == 'name = "fp32"') + 1
    with pytest.raises(FrugalbenchError, match=rf"s\.toml:{dup}: variants\[2=fp32\]\.name: duplicate name 'fp32'"):
        load_suite(f)
    two = SUITE.replace("threads = 1", "threads = 0") + (
        '\n[[targets]]\nname = "cpu-2"\nkind = "cpu"\nruntime = "ort"\nthreads = 0\n'
    )
    f.write_text(two, encoding="utf-8")
    first = next(i for i, line in enumerate(two.splitlines()) if line == "threads = 0") + 1
    with pytest.raises(FrugalbenchError, match=rf"s\.toml:{first}: targets\[0=cpu-ort\]\.threads"):
        load_suite(f)
    f.write_text(two.replace("threads = 0", "threads = 1", 1), encoding="utf-8")
    second = max(i for i, line in enumerate(two.splitlines()) if line == "threads = 0") + 1
    with pytest.raises(FrugalbenchError, match=rf"s\.toml:{second}: targets\[1=cpu-2\]\.threads"):
        load_suite(f)
    f.write_text(SUITE.replace("max_iter = 5", "max_iter = 0"), encoding="utf-8")
    rp = next(i for i, line in enumerate(SUITE.splitlines()) if line.startswith("recipe_params")) + 1
    with pytest.raises(FrugalbenchError, match=rf"s\.toml:{rp}: tasks\[0=digits\]\.recipe_params"):
        load_suite(f)


MARKUP_NAMES = ["[/]", "[bold red]x", ":x: done", "[link=file:///etc/passwd]y[/link]", "a\\\\[b]"]


@pytest.mark.parametrize("vname", MARKUP_NAMES)
def test_markup_in_names_is_printed_as_written(
    vname: str, tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """A user's name in an error is neither rich markup (a crash, or a style) nor an emoji."""
    dup = f'\n[[variants]]\nname = "{vname}"\ntechnique = "fp32"\n' * 2
    f = tmp_path / "s.toml"
    f.write_text(SUITE + dup, encoding="utf-8")
    rc, text = cli(["run", str(f), "--db", str(tmp_path / "r.sqlite")], capsys, monkeypatch)
    shown = vname.replace("\\\\", "\\")
    line = refused(rc, text, "duplicate name")
    assert repr(shown) in line, line
    assert "❌" not in text


def test_a_run_with_a_markup_variant_name_is_stored(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """A variant named ``[/]`` runs to the end (rich markup in progress labels used to crash ``run``)."""
    f = tmp_path / "s.toml"
    f.write_text(SUITE.replace('name = "fp32"', 'name = "[/]"'), encoding="utf-8")
    db = tmp_path / "r.sqlite"
    rc, text = cli(["run", str(f), "--db", str(db), "--no-report"], capsys, monkeypatch)
    assert rc == 0 and "Traceback" not in text, text
    from harness.results.store import Store

    with Store.open(db, create=False) as s:
        assert [r.variant for r in s.results()] == ["[/]"]


# --- bench --------------------------------------------------------------------------------------------


def _graph_model(path: Path, inputs: list[onnx.ValueInfoProto], nodes: list[onnx.NodeProto],
                 outputs: list[onnx.ValueInfoProto]) -> Path:
    g = helper.make_graph(nodes, "g", inputs, outputs)
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)])
    m.ir_version = 8
    onnx.save(m, str(path))
    return path


@pytest.fixture(scope="module")
def models(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    d = tmp_path_factory.mktemp("models")
    rng = np.random.default_rng(0)
    net = Network([Dense(rng.normal(size=(16, 4)), np.zeros(4))])
    (d / "m.onnx").write_bytes(network_to_onnx_bytes(net))
    out: dict[str, Path] = {"ok": d / "m.onnx"}
    vi = helper.make_tensor_value_info
    out["huge"] = _graph_model(d / "huge.onnx", [vi("x", TensorProto.FLOAT, [1, 100000, 100000])],
                               [helper.make_node("Identity", ["x"], ["y"])], [vi("y", TensorProto.FLOAT, None)])
    out["string"] = _graph_model(d / "s.onnx", [vi("x", TensorProto.STRING, [1, 4])],
                                 [helper.make_node("Identity", ["x"], ["y"])], [vi("y", TensorProto.STRING, [1, 4])])
    out["noinput"] = _graph_model(
        d / "c.onnx", [],
        [helper.make_node("Constant", [], ["y"], value=helper.make_tensor("v", TensorProto.FLOAT, [1], [1.0]))],
        [vi("y", TensorProto.FLOAT, [1])])
    out["dyn"] = _graph_model(d / "dyn.onnx", [vi("x", TensorProto.FLOAT, ["N", "T"])],
                              [helper.make_node("Identity", ["x"], ["y"])], [vi("y", TensorProto.FLOAT, None)])
    (d / "empty.onnx").write_bytes(b"")
    out["empty"] = d / "empty.onnx"
    (d / "junk.onnx").write_bytes(b"\x08\x07garbage" * 50)
    out["junk"] = d / "junk.onnx"
    (d / "junk.tflite").write_bytes(b"\x00" * 64)
    out["junk_tflite"] = d / "junk.tflite"
    (d / "m.bin").write_bytes(b"123")
    out["bin"] = d / "m.bin"
    (d / "folder.onnx").mkdir()
    out["folder"] = d / "folder.onnx"
    out["missing"] = d / "missing.onnx"
    return out


# (model, options, words the error line names)
BENCH_CASES: list[tuple[str, list[str], tuple[str, ...]]] = [
    ("missing", [], ("not found",)),
    ("folder", [], ("not found",)),
    ("empty", [], ("empty",)),
    ("junk", [], ("onnx",)),
    ("junk_tflite", [], ("tflite",)),
    ("bin", [], ("extension",)),
    ("huge", [], ("mib",)),
    ("string", [], ("dtype",)),
    ("noinput", [], ("no inputs",)),
    ("dyn", [], ("--shape",)),
    ("ok", ["--runtime", "tvm"], ("tvm",)),
    ("ok", ["--runtime", "litert"], ("litert",)),
] + [
    ("ok", ["--window-s", v], ("--window-s",)) for v in ("nan", "inf", "-inf", "1e308", "0", "-1", "1e-9", "4000")
] + [
    ("ok", ["--batch", "100000000"], ("--batch",)),
    ("ok", ["--batch", "65537"], ("--batch",)),
    ("ok", ["--threads", "100000"], ("--threads",)),
    ("ok", ["--threads", "1025"], ("--threads",)),
    ("ok", ["--windows", "100000"], ("--windows",)),
] + [
    ("ok", ["--shape", "input" + v], ("--shape",))
    for v in ("=1x-4", "=", "=1x16x3", "=16", "=1x99999999999", "=0x16", "=abc", "=1xx16", "=1x16.5",
              "=1x17", "= ", "=-1x16", "=1x0")
] + [
    ("ok", ["--shape", v], ("name",)) for v in ("=1x16", "x", "nosuch=1x16")
] + [
    ("dyn", ["--shape", v], ("--shape",)) for v in ("x=1x-4", "x=0x16", "x=1", "x=1x2x3", "x=1x99999999999")
] + [
    ("dyn", ["--shape", "x=100000x100000"], ("mib",)),
    ("dyn", ["--shape", "x=2x2", "--shape", "y=1"], ("y",)),
] + [
    ("ok", ["--value", "input" + v], ("--value",)) for v in ("=abc", "=nan", "=inf", "=", "=1e400")
] + [
    ("ok", ["--value", v], ("name",)) for v in ("nosuch=1", "=3", "x")
]


@pytest.mark.parametrize("model,opts,needles", BENCH_CASES, ids=[f"{m}:{' '.join(o)}" for m, o, _ in BENCH_CASES])
def test_bad_bench_refused(
    model: str,
    opts: list[str],
    needles: tuple[str, ...],
    models: dict[str, Path],
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    windows = [] if "--windows" in opts else ["--windows", "1"]
    rc, text = cli(["bench", str(models[model]), *windows, *opts], capsys, monkeypatch)
    refused(rc, text, *needles)


BENCH_USAGE = [["--threads", "0"], ["--batch", "0"], ["--windows", "0"], ["--batch", "-1"], ["--threads", "x"],
               ["--window-s", "abc"], ["--batch", "1.5"], ["--windows", "-2"]]


@pytest.mark.parametrize("opts", BENCH_USAGE, ids=[" ".join(o) for o in BENCH_USAGE])
def test_bench_options_refused_by_the_parser(
    opts: list[str], models: dict[str, Path], capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    rc, text = cli(["bench", str(models["ok"]), *opts], capsys, monkeypatch)
    usage_refused(rc, text, opts[0])


def test_bench_feeds_bool_and_uint16_inputs(tmp_path: Path) -> None:
    """Boolean and uint16 inputs are fed (random 0/1, small integers), not a traceback."""
    from harness.pipeline.bench import bench_model

    vi = helper.make_tensor_value_info
    for dt, name in ((TensorProto.BOOL, "b"), (TensorProto.UINT16, "u")):
        p = _graph_model(tmp_path / f"{name}.onnx", [vi("x", dt, [1, 4])],
                         [helper.make_node("Cast", ["x"], ["y"], to=TensorProto.FLOAT)],
                         [vi("y", TensorProto.FLOAT, [1, 4])])
        r = bench_model(p, window_s=0.01, windows=1, warmup_s=0.0)
        assert r.n_inferences > 0 and r.inputs[0]["shape"] == [1, 4]
        assert r.inputs[0]["fed_dtype"] == {"b": "bool", "u": "uint16"}[name]


# --- report and label -------------------------------------------------------------------------------


@pytest.fixture()
def db(tmp_path: Path) -> Path:
    if not BASE_DB.is_file():
        pytest.skip("no /tmp/base/r.sqlite")
    d = tmp_path / "r.sqlite"
    shutil.copy(BASE_DB, d)
    return d


def _report_cases(tmp: Path) -> list[tuple[list[str], tuple[str, ...]]]:
    (tmp / "adir").mkdir(exist_ok=True)
    (tmp / "junk.sqlite").write_bytes(b"not a database" * 100)
    (tmp / "emb.toml").write_text("[[[\n")
    return [
        (["-o", str(tmp / "missing" / "r.md")], ("does not exist",)),
        (["-o", str(tmp / "adir")], ("folder",)),
        (["-o", str(tmp / "adir"), "-f", "json"], ("folder",)),
        (["-o", str(tmp / "missing" / "deeper" / "r.csv"), "-f", "csv"], ("does not exist",)),
        (["-o", "/dev/full", "-f", "csv"], ("/dev/full",)),
        (["-o", "/dev/full", "-f", "json"], ("/dev/full",)),
        (["-f", "pdf"], ("pdf",)),
        (["-f", ""], ("format",)),
        (["--embodied", str(tmp / "nope.toml")], ("nope.toml",)),
        (["--embodied", str(tmp / "emb.toml")], ("emb.toml",)),
        (["--embodied", str(tmp / "emb.toml"), "--all-runs"], ("--all-runs",)),
    ]


@pytest.mark.parametrize("case", range(11))
def test_bad_report_refused(
    case: int, db: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    args, needles = _report_cases(tmp_path)[case]
    before = digest(db)
    rc, text = cli(["report", "--db", str(db), *args], capsys, monkeypatch)
    refused(rc, text, *needles)
    assert digest(db) == before


@pytest.mark.parametrize("which", ["missing", "folder", "junk"])
def test_report_on_a_bad_database(
    which: str, tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "x.sqlite"
    if which == "folder":
        path.mkdir()
    elif which == "junk":
        path.write_bytes(b"junk" * 1000)
    before = digest(path)
    rc, text = cli(["report", "--db", str(path)], capsys, monkeypatch)
    refused(rc, text)
    assert digest(path) == before and (which != "missing" or not path.exists())


def test_label_onto_an_existing_file(
    db: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    f = tmp_path / "labels.txt"
    f.write_text("keep me")
    before = digest(db)
    rc, text = cli(["label", "--db", str(db), "-o", str(f), "--no-png"], capsys, monkeypatch)
    refused(rc, text, "is a file")
    assert f.read_text() == "keep me" and digest(db) == before


# --- datasets -------------------------------------------------------------------------------------------


def _npz(path: Path, **arrays: Any) -> Path:
    np.savez(path, **arrays)
    return path


X, Y = np.zeros((20, 4), np.float32), np.arange(20) % 2


def _dataset_cases(d: Path) -> list[tuple[str, Path, tuple[str, ...]]]:
    cases: list[tuple[str, Path, tuple[str, ...]]] = []
    (d / "empty.npz").write_bytes(b"")
    cases.append(("empty-npz", d / "empty.npz", ("npz",)))
    good = _npz(d / "good.npz", x_eval=X, y_eval=Y)
    raw = good.read_bytes()
    (d / "trunc.npz").write_bytes(raw[: len(raw) // 2])
    cases.append(("truncated-npz", d / "trunc.npz", ("npz",)))
    bad = bytearray(raw)
    off = raw.index(b"x_eval.npy") + 200  # inside the first member's data
    bad[off] ^= 0xFF
    (d / "crc.npz").write_bytes(bytes(bad))
    cases.append(("bad-crc-npz", d / "crc.npz", ("npz",)))
    (d / "text.npz").write_text("hello")
    cases.append(("text-npz", d / "text.npz", ("npz",)))
    cases.append(("scalar-x", _npz(d / "scalar.npz", x_eval=np.float32(3), y_eval=Y), ("x_eval", "shape")))
    cases.append(("scalar-y", _npz(d / "scalary.npz", x_eval=X, y_eval=np.int64(1)), ("y_eval", "shape")))
    np.savez(d / "obj.npz", x_eval=np.array([{"a": 1}] * 20, dtype=object), y_eval=Y)
    cases.append(("object-x", d / "obj.npz", ("x_eval", "object")))
    cases.append(("string-x", _npz(d / "str.npz", x_eval=np.array([["a"] * 4] * 20), y_eval=Y), ("x_eval",)))
    cases.append(("complex-x", _npz(d / "cx.npz", x_eval=X.astype(np.complex64), y_eval=Y), ("x_eval",)))
    cases.append(("empty-x", _npz(d / "e.npz", x_eval=np.zeros((0, 4)), y_eval=np.zeros(0)), ("x_eval",)))
    cases.append(("nan-x", _npz(d / "nan.npz", x_eval=np.full((20, 4), np.nan), y_eval=Y), ("nan",)))
    cases.append(("inf-y", _npz(d / "inf.npz", x_eval=X, y_eval=np.full(20, np.inf)), ("nan/inf",)))
    cases.append(("rows", _npz(d / "rows.npz", x_eval=X, y_eval=Y[:5]), ("rows",)))
    cases.append(("3d-y", _npz(d / "y3.npz", x_eval=X, y_eval=np.zeros((20, 2, 2))), ("y_eval", "shape")))
    cases.append(("no-y", _npz(d / "noy.npz", x_eval=X), ("missing y_eval",)))
    cases.append(("nothing", _npz(d / "none.npz", other=X), ("missing",)))
    cases.append(("unpaired", _npz(d / "up.npz", x_eval=X, y_eval=Y, x_train=X), ("pair",)))
    cases.append(("train-rows", _npz(d / "tr.npz", x_eval=X, y_eval=Y, x_train=X, y_train=Y[:3]), ("rows",)))
    # a .npy whose header declares far more data than the file holds
    hdr = d / "lie"
    hdr.mkdir()
    with (hdr / "x_eval.npy").open("wb") as f:
        np.lib.format.write_array_header_1_0(f, {"descr": "<f4", "fortran_order": False, "shape": (10**6, 10**6)})
    np.save(hdr / "y_eval.npy", Y)
    cases.append(("npy-huge-header", hdr, ("x_eval", "gib")))
    lie2 = d / "lie2"
    lie2.mkdir()
    with (lie2 / "x_eval.npy").open("wb") as f:
        np.lib.format.write_array_header_1_0(f, {"descr": "<f4", "fortran_order": False, "shape": (1000, 4)})
        f.write(b"\0" * 64)
    np.save(lie2 / "y_eval.npy", Y)
    cases.append(("npy-truncated", lie2, ("truncated",)))
    junk = d / "junknpy"
    junk.mkdir()
    (junk / "x_eval.npy").write_bytes(b"nonsense")
    np.save(junk / "y_eval.npy", Y)
    cases.append(("npy-junk", junk, ("x_eval",)))
    (d / "latin1.csv").write_bytes("a,b,label\n1,2,0\n\xe9,3,1\n".encode("latin-1"))
    cases.append(("csv-latin1", d / "latin1.csv", ("utf-8",)))
    (d / "bin.csv").write_bytes(bytes(range(256)))
    cases.append(("csv-binary", d / "bin.csv", ("utf-8",)))
    (d / "hdr.csv").write_text("a,b,label\n")
    cases.append(("csv-header-only", d / "hdr.csv", ("data row",)))
    (d / "nonnum.csv").write_text("a,b,label\n1,2,0\n1,secret-value,1\n")
    cases.append(("csv-non-numeric", d / "nonnum.csv", ("row 3", "column 2")))
    (d / "ragged.csv").write_text("a,b,label\n1,2,0\n1,1\n")
    cases.append(("csv-ragged", d / "ragged.csv", ("row 3",)))
    (d / "split.csv").write_text("a,label,split\n1,0,train\n2,1,test\n")
    cases.append(("csv-split-value", d / "split.csv", ("split",)))
    (d / "noeval.csv").write_text("a,label,split\n1,0,train\n2,1,train\n")
    cases.append(("csv-no-eval", d / "noeval.csv", ("eval",)))
    (d / "onecol.csv").write_text("label\n1\n0\n")
    cases.append(("csv-no-features", d / "onecol.csv", ("feature",)))
    (d / "nanlabel.csv").write_text("a,label\n1,\n2,1\n")
    cases.append(("csv-empty-label", d / "nanlabel.csv", ("nan",)))
    (d / "data.txt").write_text("1,2")
    cases.append(("unknown-format", d / "data.txt", ("format",)))
    cases.append(("missing", d / "nowhere.npz", ("no such",)))
    link = d / "passwd.csv"
    link.symlink_to("/etc/passwd")
    cases.append(("symlink-passwd", link, ()))
    # sizes refused before anything is allocated: each message names the file, the size and the limit
    with (d / "huge.csv").open("wb") as f:
        f.truncate(datasets.MAX_CSV_BYTES + 1)  # sparse: nothing is written
    cases.append(("csv-huge-file", d / "huge.csv", ("huge.csv", "gib", "limit")))
    (d / "longline.csv").write_text("a,b,label\n" + "1," * (datasets.MAX_CSV_LINE // 2 + 1) + "\n")
    cases.append(("csv-endless-line", d / "longline.csv", ("longline.csv", "line 2", "limit")))
    wide = ",".join(f"c{i}" for i in range(datasets.MAX_CSV_COLUMNS + 1))
    (d / "wide.csv").write_text(wide + "\n" + ",".join("1" * (datasets.MAX_CSV_COLUMNS + 1)) + "\n")
    cases.append(("csv-too-many-columns", d / "wide.csv", ("wide.csv", "10001 columns", "limit")))
    with zipfile.ZipFile(d / "hugedecl.npz", "w") as zf:
        with zf.open("x_eval.npy", "w") as f:
            np.lib.format.write_array_header_1_0(
                f, {"descr": "<f8", "fortran_order": False, "shape": (10**6, 10**6)}
            )
        with zf.open("y_eval.npy", "w") as f:
            np.save(f, Y)
    cases.append(("npz-huge-declared", d / "hugedecl.npz", ("hugedecl.npz", "x_eval", "gib", "limit")))
    return cases


N_DATASET_CASES = 37


def test_csv_with_too_many_values_is_refused_before_allocation(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "many.csv").write_text("a,b,label\n" + "1,2,0\n" * 20)
    assert len(load_arrays(tmp_path / "many.csv", InputSpec())["x_eval"]) == 20
    monkeypatch.setattr(datasets, "MAX_CSV_VALUES", 59)  # 20 rows × 3 columns = 60
    allocated: list[object] = []
    monkeypatch.setattr(datasets.np, "empty", lambda *a, **k: allocated.append(a))
    with pytest.raises(FrugalbenchError, match=r"many\.csv: 20 rows × 3 columns = 60 values \(limit 59\)"):
        load_arrays(tmp_path / "many.csv", InputSpec())
    assert not allocated


@pytest.fixture(scope="module")
def dataset_cases(tmp_path_factory: pytest.TempPathFactory) -> list[tuple[str, Path, tuple[str, ...]]]:
    cases = _dataset_cases(tmp_path_factory.mktemp("data"))
    assert len(cases) == N_DATASET_CASES
    return cases


@pytest.mark.parametrize("case", range(N_DATASET_CASES))
def test_bad_dataset_refused(case: int, dataset_cases: list[tuple[str, Path, tuple[str, ...]]]) -> None:
    name, path, needles = dataset_cases[case]
    with pytest.raises(FrugalbenchError) as e:
        load_arrays(path, InputSpec())
    msg = str(e.value)
    assert "\n" not in msg
    for n in needles:
        assert n.lower() in msg.lower(), (name, msg)
    secret = Path("/etc/passwd").read_text(errors="replace").splitlines()[:3] if name == "symlink-passwd" else []
    for line in secret:  # never a line of the file itself
        assert line.split(":")[0] + ":" not in msg, msg
    assert "secret-value" not in msg


@pytest.mark.parametrize("case", [0, 1, 2, 4, 6, 21, 22, 23, 32])
def test_bad_dataset_refused_by_init_task(
    case: int,
    dataset_cases: list[tuple[str, Path, tuple[str, ...]]],
    models: dict[str, Path],
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    _, path, _ = dataset_cases[case]
    out = tmp_path / "byo.toml"
    rc, text = cli(["init-task", str(models["ok"]), str(path), "-o", str(out)], capsys, monkeypatch)
    refused(rc, text)
    assert not out.exists()
    assert "root:x:" not in text


@pytest.mark.parametrize("model", ["empty", "junk", "junk_tflite", "bin", "missing", "noinput", "string"])
def test_bad_model_refused_by_init_task(
    model: str,
    models: dict[str, Path],
    dataset_cases: list[tuple[str, Path, tuple[str, ...]]],
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    good = dataset_cases[0][1].parent / "good.npz"
    out = tmp_path / "byo.toml"
    rc, text = cli(["init-task", str(models[model]), str(good), "-o", str(out)], capsys, monkeypatch)
    refused(rc, text)
    assert not out.exists()


@pytest.mark.parametrize("opts", [["--metric", "bleu"], ["--name", ""], ["--name", "a\nb"]])
def test_bad_init_task_options(
    opts: list[str],
    models: dict[str, Path],
    dataset_cases: list[tuple[str, Path, tuple[str, ...]]],
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    good = dataset_cases[0][1].parent / "good.npz"
    out = tmp_path / "byo.toml"
    rc, text = cli(["init-task", str(models["ok"]), str(good), "-o", str(out), *opts], capsys, monkeypatch)
    refused(rc, text)
    assert not out.exists()


# --- metrics ---------------------------------------------------------------------------------------------

_rng = np.random.default_rng(0)
OUT10 = _rng.normal(size=(50, 10))
Y10 = np.arange(50) % 10
OUT2 = _rng.normal(size=(50, 2))
METRIC_CASES: list[tuple[str, np.ndarray, np.ndarray, dict[str, Any], str]] = [
    ("top_k", OUT10, Y10, {"k": 99}, "k < 10"),
    ("top_k", OUT10, Y10, {"k": 10}, "k < 10"),
    ("top_k", OUT10, Y10, {"k": 0}, "k = 0"),
    ("top_k", OUT10, Y10, {"k": "3"}, "k = '3'"),
    ("top_k", OUT10, Y10, {"kk": 3}, "no parameter"),
    ("top_k", OUT2, np.arange(50) % 2, {}, "k < 2"),  # the default k = 5 on two classes
    ("auc", OUT10, Y10, {}, "10 classes"),
    ("auc", OUT2, np.zeros(50), {}, "both classes"),
    ("auc", OUT2, np.ones(50), {}, "both classes"),
    ("auc", OUT2, np.arange(50) % 2, {"k": 1}, "no parameter"),
    ("accuracy", OUT10, Y10, {"threshold": float("nan")}, "threshold"),
    ("accuracy", OUT10, Y10, {"treshold": 0.5}, "no parameter"),
    ("macro_f1", OUT10, Y10, {"average": "micro"}, "no parameter"),
    ("mae", OUT10[:, :1], Y10, {"x": 1}, "no parameter"),
    ("mae", np.full((50, 1), np.nan), Y10.astype(float), {}, "nan"),
    ("bleu", OUT10, Y10, {}, "unknown metric"),
    ("top_k", OUT10, Y10 + 20, {"k": 3}, "cannot be computed"),
]


@pytest.mark.parametrize("metric,out,y,params,needle", METRIC_CASES,
                         ids=[f"{c[0]}-{i}" for i, c in enumerate(METRIC_CASES)])
def test_meaningless_metric_refused(
    metric: str, out: np.ndarray, y: np.ndarray, params: dict[str, Any], needle: str
) -> None:
    with pytest.raises(FrugalbenchError) as e:
        score(metric, out, y, params)
    assert needle.lower() in str(e.value).lower()


def test_valid_metrics_still_score() -> None:
    """The checks leave meaningful figures alone (so the refusals above are not blanket ones)."""
    assert 0.0 <= score("top_k", OUT10, Y10, {"k": 3}) <= 1.0
    assert 0.0 <= score("auc", OUT2, np.arange(50) % 2) <= 1.0
    assert score("accuracy", np.eye(10)[Y10], Y10) == 1.0


def test_corpus_size() -> None:
    n = (len(SUITE_CASES) + len(BENCH_CASES) + len(BENCH_USAGE) + 11 + 3 + 1 + N_DATASET_CASES + 9 + 7 + 3
         + len(METRIC_CASES) + len(MARKUP_NAMES) + 3)
    assert n >= 200, n


_ = zipfile  # the .npz cases above damage zip members by hand
