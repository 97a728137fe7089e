"""Each compressor does what it says on a small digits MLP (64-64-64-10, trained once per module)."""

from __future__ import annotations

import gzip

import numpy as np
import onnxruntime as ort
import pytest

from harness.compress.base import COMPRESSORS, make_compressor
from harness.errors import CompressionError, ConfigError
from harness.ir.data import Dataset
from harness.ir.layers import Butterfly, Dense, LowRank, Monarch
from harness.ir.model import Model
from harness.ir.network import Network
from harness.ir.train import accuracy
from harness.pipeline.recipes import build_recipe


@pytest.fixture(scope="module")
def base() -> tuple[Model, Dataset]:
    net, ds = build_recipe("digits_mlp", 0, {"hidden": [64, 64], "max_iter": 200})
    return Model(net=net), ds


def _acc(model: Model, ds: Dataset) -> float:
    assert model.net is not None
    return accuracy(model.net, ds.x_eval, ds.y_eval)


def _onnx_acc(model: Model, ds: Dataset) -> float:
    sess = ort.InferenceSession(model.files["onnx"], providers=["CPUExecutionProvider"])
    out = sess.run(None, {sess.get_inputs()[0].name: ds.x_eval})[0]
    return float((out.argmax(1) == ds.y_eval).mean())


def test_every_technique_is_registered() -> None:
    assert {"prune", "structured", "lowrank", "monarch", "butterfly"} <= set(COMPRESSORS.names())


@pytest.mark.parametrize("sparsity", [0.5, 0.8])
def test_prune_reaches_the_sparsity_and_keeps_it_after_fine_tuning(base, sparsity: float) -> None:  # type: ignore[no-untyped-def]
    model, ds = base
    out = make_compressor("prune", {"sparsity": sparsity, "scope": "layer", "epochs": 6}).fit_transform(
        model, ds
    )
    ws = [layer.w for layer in out.net.layers]  # type: ignore[union-attr, attr-defined]
    reached = sum(int((w == 0).sum()) for w in ws) / sum(w.size for w in ws)
    assert reached == pytest.approx(sparsity, abs=2e-3)
    for w in ws:  # per-layer scope: every layer at the target
        assert (w == 0).mean() == pytest.approx(sparsity, abs=5e-3)
    h = out.history[-1]
    assert h["technique"] == "prune" and h["fine_tuned"] and h["epochs"] == 6
    assert h["sparsity"] == pytest.approx(reached)
    assert h["n_params"] == out.net.n_params() < model.net.n_params()  # type: ignore[union-attr]
    assert h["model_bytes"]["onnx_gzip"] < h["model_bytes"]["onnx"]
    assert h["model_bytes"]["onnx"] == len(out.files["onnx"])
    assert len(gzip.compress(out.files["onnx"])) < len(gzip.compress(model.files.get("onnx") or _fp32(model)))
    assert "size-only" in h["speedup_note"]
    assert _onnx_acc(out, ds) == pytest.approx(_acc(out, ds), abs=0.003)
    if sparsity == 0.5:
        assert _acc(out, ds) > _acc(model, ds) - 0.03


def _fp32(model: Model) -> bytes:
    from harness.ir.export.onnx_export import network_to_onnx_bytes

    return network_to_onnx_bytes(model.net)  # type: ignore[arg-type]


def test_global_pruning_reaches_the_sparsity_overall(base) -> None:  # type: ignore[no-untyped-def]
    model, ds = base
    out = make_compressor("prune", {"sparsity": 0.7, "epochs": 2}).fit_transform(model, ds)
    h = out.history[-1]
    assert h["params"]["scope"] == "global"
    assert h["sparsity"] == pytest.approx(0.7, abs=2e-3)
    assert len(set(np.round(h["sparsity_per_layer"], 2))) > 1  # one threshold, different per-layer sparsity


def test_structured_pruning_gives_a_smaller_dense_network(base) -> None:  # type: ignore[no-untyped-def]
    model, ds = base
    out = make_compressor("structured", {"keep": 0.5, "epochs": 15}).fit_transform(model, ds)
    assert out.net.describe() == "64-dense-32-dense-32-dense-10"  # type: ignore[union-attr]
    assert all(isinstance(layer, Dense) for layer in out.net.layers)  # type: ignore[union-attr]
    h = out.history[-1]
    assert h["macs"] == 64 * 32 + 32 * 32 + 32 * 10 < h["macs_base"]
    assert h["val_acc_finetuned"] >= h["val_acc_removed_only"]
    assert _acc(out, ds) > 0.9


def _projection_and_finetuned(
    model: Model, ds: Dataset, technique: str, params: dict
) -> tuple[Network, Model]:  # type: ignore[type-arg]
    comp = make_compressor(technique, {**params, "epochs": 15})
    tuned = comp.fit_transform(model, ds)
    layers = list(model.net.layers)  # type: ignore[union-attr]
    layers[1] = comp.replace(1, layers[1], explicit=True)  # type: ignore[attr-defined]
    return Network(layers), tuned


@pytest.mark.parametrize(
    ("technique", "params", "cls"),
    [("monarch", {}, Monarch), ("butterfly", {}, Butterfly), ("lowrank", {"match": "butterfly"}, LowRank)],
)
def test_fine_tuning_recovers_accuracy_over_the_projection(base, technique, params, cls) -> None:  # type: ignore[no-untyped-def]
    model, ds = base
    proj, tuned = _projection_and_finetuned(model, ds, technique, params)
    assert [type(layer) for layer in tuned.net.layers] == [Dense, cls, Dense]  # type: ignore[union-attr]
    h = tuned.history[-1]
    assert h["fine_tuned"] is True and h["epochs"] == 15 and h["layers"] == [1]
    assert h["val_acc_finetuned"] > h["val_acc_projection"]
    a_proj, a_tuned = accuracy(proj, ds.x_eval, ds.y_eval), _acc(tuned, ds)
    assert a_tuned > a_proj + 0.01, (a_proj, a_tuned)
    assert a_tuned > 0.9
    assert h["n_params"] < h["n_params_base"] and h["macs"] < h["macs_base"]
    assert _onnx_acc(tuned, ds) == pytest.approx(a_tuned, abs=0.003)


def test_lowrank_matches_the_monarch_parameter_budget(base) -> None:  # type: ignore[no-untyped-def]
    model, ds = base
    mon = make_compressor("monarch", {"nblocks": 8, "epochs": 1}).fit_transform(model, ds)
    low = make_compressor("lowrank", {"match": "monarch", "nblocks": 8, "epochs": 1}).fit_transform(model, ds)
    m_layer, l_layer = mon.net.layers[1], low.net.layers[1]  # type: ignore[union-attr]
    assert m_layer.macs() == 2 * 8 * 64  # type: ignore[union-attr]
    assert l_layer.rank == 8  # type: ignore[union-attr]
    assert l_layer.macs() <= m_layer.macs()  # type: ignore[union-attr]


def test_int8_follows_a_structured_technique(base) -> None:  # type: ignore[no-untyped-def]
    model, ds = base
    mon = make_compressor("monarch", {"epochs": 5}).fit_transform(model, ds)
    q = make_compressor("int8", {}).fit_transform(mon, ds)
    assert q.technique == "monarch+int8"
    assert _onnx_acc(q, ds) > _acc(mon, ds) - 0.03
    assert "tflite" in q.files


def test_same_seed_gives_the_same_variant(base) -> None:  # type: ignore[no-untyped-def]
    model, ds = base
    a = make_compressor("monarch", {"epochs": 2, "seed": 4}).fit_transform(model, ds)
    b = make_compressor("monarch", {"epochs": 2, "seed": 4}).fit_transform(model, ds)
    assert a.net.to_bytes() == b.net.to_bytes()  # type: ignore[union-attr]


def test_techniques_refuse_layers_that_do_not_fit(base) -> None:  # type: ignore[no-untyped-def]
    model, ds = base
    with pytest.raises(
        CompressionError, match=r"layer 1 \(64x64\).*Block counts that work: \[2, 4, 8, 16, 32\]"
    ):
        make_compressor("monarch", {"nblocks": 5}).fit_transform(model, ds)
    with pytest.raises(CompressionError, match=r"layer 0 is 64x64|layer 2 is 64x10"):
        make_compressor("butterfly", {"layers": [2]}).fit_transform(model, ds)
    rng = np.random.default_rng(0)
    odd = Model(
        net=Network(
            [
                Dense(rng.standard_normal((64, 48)), np.zeros(48), "relu"),
                Dense(rng.standard_normal((48, 48)), np.zeros(48), "relu"),
                Dense(rng.standard_normal((48, 10)), np.zeros(10)),
            ]
        )
    )
    with pytest.raises(
        CompressionError, match=r"no layer of 64-dense-48-dense-48-dense-10.*layer 1: 48x48.*power of two"
    ):
        make_compressor("butterfly", {}).fit_transform(odd, ds)


@pytest.mark.parametrize("technique", ["monarch", "butterfly", "lowrank"])
def test_a_projection_alone_is_refused(technique: str) -> None:
    with pytest.raises(ConfigError, match="must fine-tune"):
        make_compressor(technique, {"epochs": 0})


def test_wide_task_recipe_is_registered_and_deterministic() -> None:
    from frugalbench_models import mnist1d_wide

    assert "Minimum acceptable accuracy: 0.70" in (mnist1d_wide.__doc__ or "")
    params = {"hidden": [32], "epochs": 1, "num_samples": 600}
    a, ds = build_recipe("mnist1d_wide", 0, params)
    b, _ = build_recipe("mnist1d_wide", 0, params)
    assert a.to_bytes() == b.to_bytes()
    assert ds.x_train is not None and ds.x_eval.shape[1] == 40 and ds.n_classes == 10


def test_fine_tuning_techniques_need_a_training_split(base) -> None:  # type: ignore[no-untyped-def]
    model, ds = base
    bare = Dataset("bare", ds.x_eval, ds.y_eval, ds.x_calib, n_classes=10)
    with pytest.raises(CompressionError, match="needs a training split"):
        make_compressor("monarch", {}).fit_transform(model, bare)
    with pytest.raises(CompressionError, match="network"):
        make_compressor("prune", {}).fit_transform(Model(files={"onnx": b""}), ds)


@pytest.mark.parametrize(
    ("technique", "params"),
    [
        ("prune", {"epochs": 1}),
        ("structured", {"epochs": 1}),
        ("lowrank", {"rank": 4, "epochs": 1}),
        ("monarch", {"epochs": 1}),
        ("butterfly", {"epochs": 1}),
    ],
)
def test_every_fine_tuning_technique_shares_the_set_up(base, technique: str, params: dict) -> None:  # type: ignore[no-untyped-def, type-arg]
    from harness.compress.finetune import FineTuner

    model, ds = base
    comp = make_compressor(technique, params)
    assert isinstance(comp, FineTuner) and comp.needs_net and comp.needs_training
    with pytest.raises(CompressionError, match=rf"{technique} rewrites the model's network.*bare file"):
        comp.fit(Model(files={"onnx": b""}), ds)
    out = comp.fit_transform(model, ds)
    h = out.history[-1]
    assert h["technique"] == technique and h["fine_tuned"] and h["epochs"] == 1
    assert h["n_params_base"] == model.net.n_params() and h["macs_base"] == model.net.macs()  # type: ignore[union-attr]
    assert h["fit_s"] > 0 and h["n_params"] == out.net.n_params()  # type: ignore[union-attr]
    assert model.net is not out.net and model.net.to_bytes() != out.net.to_bytes()  # type: ignore[union-attr]
