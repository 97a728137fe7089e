"""int8 post-training quantisation.

``mode="static"``: ONNX Runtime static QDQ (S8S8, MinMax or the chosen calibration, per-channel at
opset ≥ 13) calibrated on the task's calibration set, and a full-integer ``.tflite`` from our own
TFLite-spec quantiser (the same arithmetic as the MCU blob). ``mode="dynamic"``: ONNX Runtime dynamic
quantisation (int8 weights, activations quantised at run time) and the same scheme as a
dynamic-range ``.tflite`` (LiteRT's hybrid FULLY_CONNECTED / CONV_2D / DEPTHWISE_CONV_2D kernels).

Convolutional networks: both ONNX paths cover ``Conv`` (static: QDQ around the NCHW ``Conv`` between
the layout ``Transpose`` nodes, per-channel weights; dynamic: ``ConvInteger`` after
``DynamicQuantizeLinear``, which ONNX Runtime's CPU provider runs). A network with BatchNorm is
quantised in its folded form (:func:`harness.ir.export.prepare.quantisable`), and that form becomes
the variant's ``net`` so that ``act_q`` matches its layers (the function is the same).
"""

from __future__ import annotations

import logging
import tempfile
from pathlib import Path
from typing import Literal

import numpy as np
import onnx

from ..errors import CompressionError
from ..ir.data import Dataset
from ..ir.export.onnx_export import network_to_onnx_bytes
from ..ir.export.prepare import quantisable
from ..ir.export.tflite_export import network_to_tflite_dynamic, network_to_tflite_int8
from ..ir.model import Model
from .base import COMPRESSORS, Compressor

log = logging.getLogger(__name__)


class _Reader:
    """``CalibrationDataReader`` over the calibration rows, one row per call."""

    def __init__(self, name: str, x: np.ndarray) -> None:
        self._it = iter([{name: row[None, :].astype(np.float32)} for row in x])

    def get_next(self) -> dict[str, np.ndarray] | None:
        return next(self._it, None)


@COMPRESSORS.register("int8")
class Int8(Compressor):
    """Post-training int8 quantisation (ONNX QDQ static / dynamic, full-integer TFLite)."""

    name = "int8"
    quantizes = True

    def __init__(
        self,
        *,
        mode: Literal["static", "dynamic"] = "static",
        calibration: Literal["minmax", "entropy", "percentile"] = "minmax",
        per_channel: bool = True,
        calib_samples: int = 256,
    ) -> None:
        self.mode = mode
        self.calibration = calibration
        self.per_channel = per_channel
        self.calib_samples = calib_samples

    def fit(self, model: Model, data: Dataset) -> Int8:
        self.x_calib_ = data.x_calib[: self.calib_samples].astype(np.float32)
        self.int8_file_ = bool(data.meta.get("quantized"))
        return self

    def transform(self, model: Model) -> Model:
        from onnxruntime.quantization import (
            CalibrationMethod,
            QuantFormat,
            QuantType,
            quantize_dynamic,
            quantize_static,
        )

        onnx_bytes = model.files.get("onnx")
        if onnx_bytes is None and model.net is not None:
            onnx_bytes = network_to_onnx_bytes(model.net)
        if onnx_bytes is None and getattr(self, "int8_file_", False):
            raise CompressionError(
                "the model file is already int8 (a quantised .tflite), so there is nothing to quantise: "
                'measure it as given with technique = "fp32" (which runs the file unchanged)'
            )
        if onnx_bytes is None:
            raise CompressionError(
                "int8 quantises an ONNX model or a model frugalbench converted; this task gives a .tflite "
                "that did not convert: use technique int8-litert (LiteRT's quantizer) for it"
            )
        files: dict[str, bytes] = {}
        act_q = None
        net = model.net
        with tempfile.TemporaryDirectory() as tmp:
            src, dst = Path(tmp) / "in.onnx", Path(tmp) / "out.onnx"
            m = onnx.load_from_string(onnx_bytes)
            opset = next((o.version for o in m.opset_import if o.domain in ("", "ai.onnx")), 0)
            if opset < 13:  # per-channel QDQ needs DequantizeLinear axis (opset 13)
                m = onnx.version_converter.convert_version(m, 13)
            onnx.save(m, src)
            input_name = m.graph.input[0].name
            root = logging.getLogger()
            level = root.level
            root.setLevel(logging.ERROR)  # the quantiser logs advice through the root logger
            try:
                if self.mode == "static":
                    method = {
                        "minmax": CalibrationMethod.MinMax,
                        "entropy": CalibrationMethod.Entropy,
                        "percentile": CalibrationMethod.Percentile,
                    }[self.calibration]
                    quantize_static(
                        str(src),
                        str(dst),
                        _Reader(input_name, self.x_calib_),
                        quant_format=QuantFormat.QDQ,
                        per_channel=self.per_channel,
                        activation_type=QuantType.QInt8,
                        weight_type=QuantType.QInt8,
                        calibrate_method=method,
                    )
                else:
                    quantize_dynamic(
                        str(src), str(dst), per_channel=self.per_channel, weight_type=QuantType.QInt8
                    )
            except Exception as e:  # onnxruntime raises bare exceptions of many kinds
                raise CompressionError(f"ONNX Runtime could not quantise the model ({self.mode}): {e}") from e
            finally:
                root.setLevel(level)
            files["onnx"] = dst.read_bytes()
        if net is not None:
            try:
                if self.mode == "static":
                    net, act_q = quantisable(net, self.x_calib_)
                    files["tflite"] = network_to_tflite_int8(net, act_q)
                else:
                    files["tflite"] = network_to_tflite_dynamic(net)
            except NotImplementedError as e:  # a layer type without this TFLite form: ONNX only
                log.warning("no int8 .tflite for this model: %s", e)
        return model.with_(
            net=net,
            files=files,
            act_q=act_q,
            history=[*model.history, {"technique": "int8", "params": self.get_params(), "fine_tuned": False}],
        )
