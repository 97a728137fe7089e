"""Base models and their variants, built once and cached on disk by a hash of everything that shapes them.

Cache layout (default ``~/.cache/frugalbench``, or ``$FRUGALBENCH_CACHE``)::

    base/<key>/{net.npz, data.npz, meta.json}
    variants/<key>/{model.onnx, model.tflite, net.npz, meta.json}
    artefacts/<key>/model.blob      (MCU blobs, exported on first use; see produce_artefact)

Directories (and artefact files) are written under a temporary name and renamed, so a killed build
never leaves a half-written entry.

This module is the only producer of what targets load: a target declares its
:class:`~harness.targets.artefact.Artefact` and :func:`produce_artefact` hands it the file.
"""

from __future__ import annotations

import functools
import gzip
import hashlib
import inspect
import json
import os
import shutil
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from .. import __version__
from ..byo.task import build as build_byo
from ..compress.base import COMPRESSORS, make_compressor
from ..errors import CompressionError, FrugalbenchError, ModelError
from ..ir.counts import count_files
from ..ir.data import Dataset
from ..ir.export.onnx_export import network_to_onnx_bytes
from ..ir.export.tflite_export import network_to_tflite
from ..ir.model import Model, Variant, content_key
from ..ir.network import Network
from ..mcu.blob.codec import variant_blob
from ..meters.base import Meter
from ..suite import Task, VariantSpec
from ..targets.artefact import Artefact, ArtefactFile
from .recipes import build_recipe, recipe_source

EXT = {"onnx": "model.onnx", "tflite": "model.tflite", "blob": "model.blob"}


def default_cache_dir() -> Path:
    env = os.environ.get("FRUGALBENCH_CACHE")
    if env:
        return Path(env)
    return Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "frugalbench"


@dataclass
class Base:
    """A task's base model and dataset. ``base_model`` names the recipe (``None`` for a user's model
    file); ``qualify`` is set when the task has several base models, whose variants are then named
    ``<base_model>:<variant>`` so that every variant name stays unique within its task."""

    task: str
    key: str
    model: Model
    data: Dataset
    base_model: str | None = None
    qualify: bool = False

    def variant_name(self, spec_name: str) -> str:
        """The stored name of the variant ``spec_name`` built from this base model."""
        return f"{self.base_model}:{spec_name}" if self.qualify else spec_name


def _save_dataset(path: Path, ds: Dataset) -> None:
    arrays = {k: getattr(ds, k) for k in ("x_eval", "y_eval", "x_calib", "x_train", "y_train")}
    np.savez(path, **{k: v for k, v in arrays.items() if v is not None})


def _load_dataset(path: Path, name: str, meta: dict[str, Any]) -> Dataset:
    z = np.load(path, allow_pickle=False)
    get = lambda k: z[k] if k in z.files else None  # noqa: E731
    return Dataset(
        name,
        z["x_eval"],
        z["y_eval"],
        z["x_calib"],
        get("x_train"),
        get("y_train"),
        n_classes=meta.get("n_classes"),
        meta=meta.get("data_meta", {}),
    )


def _commit_dir(tmp: Path, final: Path) -> None:
    if final.exists():  # another process finished first: keep theirs
        shutil.rmtree(tmp, ignore_errors=True)
        return
    tmp.rename(final)


def load_bases(task: Task, cache: Path) -> list[Base]:
    """Build (or load from cache) every base model of ``task``, in the order the suite names them."""
    return [_load_recipe(task, r, p, cache) if r else load_base(task, cache) for r, p in task.base_models]


def load_base(task: Task, cache: Path) -> Base:
    """Build (or load from cache) the (first) base model of ``task``; see :func:`load_bases`."""
    recipe, params = task.base_models[0]
    if recipe is None:  # user model file + dataset file (bring your own): checked and loaded, not cached
        b = build_byo(task)
        return Base(task.name, b.key, b.model, b.data)
    return _load_recipe(task, recipe, params, cache)


def _load_recipe(task: Task, recipe: str, params: dict[str, Any], cache: Path) -> Base:
    key = content_key("base", recipe, params, task.seed, recipe_source(recipe), __version__)
    d = cache / "base" / key
    if not (d / "meta.json").exists():
        net, ds = build_recipe(recipe, task.seed, params)
        tmp = d.with_name(f".{key}.{os.getpid()}")
        tmp.mkdir(parents=True, exist_ok=True)
        net.save(tmp / "net.npz")
        _save_dataset(tmp / "data.npz", ds)
        (tmp / "meta.json").write_text(
            json.dumps({"n_classes": ds.n_classes, "data_meta": ds.meta}, default=str)
        )
        _commit_dir(tmp, d)
    meta = json.loads((d / "meta.json").read_text())
    net = Network.load(d / "net.npz")
    data = _load_dataset(d / "data.npz", task.name, meta)
    return Base(task.name, key, Model(net=net), data, base_model=recipe, qualify=task.several_bases)


def _finalize(model: Model) -> dict[str, bytes]:
    """Every runnable format we can derive: float exports of the IR unless a step wrote its own.

    A format whose exporter does not cover a layer of the network yet is left out (a target that
    needs it then reports that the variant has no such file); the other formats still run.
    """
    files = dict(model.files)
    if model.net is not None and not any(h.get("technique") == "int8" for h in model.history):
        for fmt, export in (("onnx", network_to_onnx_bytes), ("tflite", network_to_tflite)):
            if fmt not in files:
                try:
                    files[fmt] = export(model.net)
                except NotImplementedError:
                    continue
    return files


def _no_file_reasons(model: Model, files: dict[str, bytes], base: Base) -> dict[str, str]:
    """Why each runnable format (ONNX, TFLite) has no file: the skip reason a target gives for it."""
    have = ", ".join(f".{f}" for f in sorted(files)) or "no file"
    out = {}
    for fmt in ("onnx", "tflite"):
        if fmt in files:
            continue
        if model.net is None:
            why = base.data.meta.get("ir", "no network")
            out[fmt] = (
                f"the model could not be converted to frugalbench's network form ({why}), "
                f"so no .{fmt} file can be exported from it; the variant has {have} only"
            )
        else:
            out[fmt] = f"its last step ({model.technique}) wrote {have} only"
    return out


def _file_counts(files: dict[str, bytes], data: Dataset) -> tuple[int | None, int | None]:
    """Parameters and MACs counted from a model file (a user's model with no IR network), for one
    sample of the dataset's shape fed to the task's input."""
    name = data.meta.get("input")
    shapes = {name: [1, *np.shape(data.x_eval)[1:]]} if isinstance(name, str) else None
    try:
        c = count_files(files, shapes)
    except ModelError:
        return None, None
    return (c.params, c.macs) if c is not None else (None, None)


def _byo_facts(meta: dict[str, Any]) -> dict[str, Any]:
    """What a user's model file says about where it can run (absent for recipe tasks): whether it
    converted to the IR (``ir``, with the reason when not) and whether the file is already int8."""
    out: dict[str, Any] = {}
    if "ir" in meta:
        out["ir"] = meta["ir"]
    if meta.get("quantized"):
        out["int8_file"] = True
    return out


def _describe(model: Model, files: dict[str, bytes], data: Dataset) -> dict[str, Any]:
    net = model.net
    epochs = sum(int(h.get("epochs") or 0) for h in model.history)
    params, macs = (net.n_params(), net.macs()) if net is not None else _file_counts(files, data)
    stages = [h["accuracy_stages"] for h in model.history if h.get("accuracy_stages")]
    extra = {"accuracy_stages": stages[-1]} if stages else {}  # base / projection / fine-tuned accuracy
    return {
        "technique": model.technique,
        "steps": model.history,
        "fine_tuned": model.fine_tuned,
        "epochs": epochs,
        "params": params,
        "macs": macs,
        "architecture": net.describe() if net is not None else None,
        "model_bytes": {fmt: len(b) for fmt, b in files.items()},
        "model_bytes_gz": {fmt: len(gzip.compress(b, 9)) for fmt, b in files.items()},
        **extra,
    }


def build_variant(base: Base, spec: VariantSpec, cache: Path, meter: Meter | None = None) -> Variant:
    """Apply the spec's compression chain to the base model (cached); time and meter the production."""
    chain = spec.chain
    sources = [inspect.getsource(COMPRESSORS.get(t)) for t, _ in chain] + [_code_digest()]
    key = content_key("variant", base.key, chain, sources, __version__)
    d = cache / "variants" / key
    if not (d / "meta.json").exists():
        model = base.model
        t0 = time.perf_counter()
        if meter is not None:
            meter.start()
        try:
            for tech, params in chain:
                comp = make_compressor(tech, params, where=f"variant {spec.name!r}: ")
                if comp.needs_net and model.net is None:
                    why = base.data.meta.get("ir", "no network")
                    raise CompressionError(
                        f"technique {tech!r} rewrites layers, but task {base.task!r} has no convertible "
                        f"network ({why}); use post-training techniques (int8, prune-weights, svd-weights)"
                    )
                if comp.needs_training and base.data.x_train is None:
                    raise CompressionError(
                        f"technique {tech!r} fine-tunes, but task {base.task!r} has no x_train/y_train"
                    )
                model = comp.fit_transform(model, base.data)
        finally:
            trace = meter.stop() if meter is not None else None
        produce_s = time.perf_counter() - t0
        produce_j, produce_class = None, None
        if meter is not None and trace is not None and trace.valid and len(trace.t_s) >= 2:
            from ..meters.energy import window_energy

            produce_j = window_energy(trace, float(trace.t_s[0]), float(trace.t_s[-1]))
            produce_class = meter.info().energy_class
        files = _finalize(model)
        meta = {
            "task": base.task,
            "name": spec.name,
            "base_key": base.key,
            "base_model": base.base_model,
            **_byo_facts(base.data.meta),
            **_describe(model, files, base.data),
            "no_file": _no_file_reasons(model, files, base),
            "produce_s": produce_s,
            "produce_j": produce_j,
            "produce_energy_class": produce_class,
        }
        tmp = d.with_name(f".{key}.{os.getpid()}")
        tmp.mkdir(parents=True, exist_ok=True)
        for fmt, data in files.items():
            (tmp / EXT[fmt]).write_bytes(data)
        if model.net is not None:
            model.net.save(tmp / "net.npz")
        (tmp / "meta.json").write_text(json.dumps(meta, default=_json_default, indent=1))
        _commit_dir(tmp, d)
    return load_variant(d, base.task, base.variant_name(spec.name))


@functools.cache
def _code_digest() -> str:
    """Hash of the code every variant depends on (the IR package and the compressors),
    so that changing any of it rebuilds cached variants instead of reusing stale ones."""
    pkg = Path(__file__).resolve().parents[1]
    files = sorted([*(pkg / "ir").rglob("*.py"), *(pkg / "compress").glob("*.py")])
    return hashlib.sha256(b"".join(p.read_bytes() for p in files if p.exists())).hexdigest()[:16]


def _json_default(o: Any) -> Any:
    if isinstance(o, np.generic):
        return o.item()
    if isinstance(o, np.ndarray):
        return o.tolist()
    return str(o)


def load_variant(d: Path, task: str, name: str) -> Variant:
    meta = json.loads((d / "meta.json").read_text())
    files = {fmt: d / fn for fmt, fn in EXT.items() if (d / fn).exists()}
    net_path = d / "net.npz"
    return Variant(
        task=task,
        name=name,
        key=d.name,
        files=files,
        meta=meta,
        net_path=net_path if net_path.exists() else None,
    )


def produce_artefact(base: Base, variant: Variant, kind: Artefact, cache: Path) -> ArtefactFile:
    """The file of ``kind`` that a target loads for ``variant`` (produced and cached here).

    ONNX and TFLite files are written when the variant is built. The MCU blob is the variant's own
    ``blob`` file if it has one; for a user's full-integer int8 ``.tflite``, that file carried over
    with its own quantisation; else exported from its network as int8, calibrated on the task's
    calibration rows. Exported blobs are cached under ``artefacts/<key>/`` (the key covers the
    variant, the calibration rows and the blob exporter's code).
    """
    if kind is Artefact.MCU_BLOB:
        return ArtefactFile(kind, _mcu_blob(base, variant, cache))
    path = variant.path(kind.value)
    if path is None:
        raise ModelError(
            f"variant {variant.name!r} (technique {variant.meta.get('technique')}) has no .{kind.value} file"
        )
    return ArtefactFile(kind, path)


def _mcu_blob(base: Base, variant: Variant, cache: Path) -> Path:
    own = variant.path(Artefact.MCU_BLOB.value)
    if own is not None:
        variant_blob(variant, None)  # checks that the stored blob parses
        return own
    x_calib = base.data.x_calib
    calib = None if x_calib is None else np.ascontiguousarray(x_calib, dtype=np.float32)
    calib_digest = (
        None if calib is None else hashlib.sha256(calib.tobytes() + str(calib.shape).encode()).hexdigest()
    )
    key = content_key("mcu-blob", variant.key, calib_digest, _blob_code_digest(), __version__)
    final = cache / "artefacts" / key / "model.blob"
    if not final.exists():
        data = variant_blob(variant, calib)
        final.parent.mkdir(parents=True, exist_ok=True)
        tmp = final.with_name(f".{final.name}.{os.getpid()}.{threading.get_ident()}")
        tmp.write_bytes(data)
        os.replace(tmp, final)  # atomic; a concurrent writer wrote the same bytes
    return final


@functools.cache
def _blob_code_digest() -> str:
    """Hash of the MCU blob exporter (and the IR it quantises), so a change re-exports cached blobs."""
    pkg = Path(__file__).resolve().parents[1]
    files = sorted((pkg / "mcu" / "blob").rglob("*.py")) + [pkg / "mcu" / "plan.py"]
    return hashlib.sha256(_code_digest().encode() + b"".join(p.read_bytes() for p in files)).hexdigest()[:16]


__all__ = [
    "Base",
    "FrugalbenchError",
    "build_variant",
    "default_cache_dir",
    "load_base",
    "load_bases",
    "load_variant",
    "produce_artefact",
]
