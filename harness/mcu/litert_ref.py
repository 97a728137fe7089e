"""LiteRT's reference kernels as the judge of the MCU's integers.

The interpreter is built with the built-in *reference* op resolver (``BUILTIN_REF``: no XNNPACK
delegate, no optimised kernels) and keeps every intermediate tensor, so a graph's output can be read
before a dropped ``SOFTMAX`` and each tensor compared by name.
"""

from __future__ import annotations

import warnings
from typing import Any

import numpy as np


def reference_interpreter(raw: bytes, x: np.ndarray) -> Any:
    """An ``ai_edge_litert`` interpreter of ``raw`` on reference kernels, already invoked on batch ``x``
    (in the file's input dtype and shape); read tensors with ``get_tensor``."""
    from ai_edge_litert.interpreter import Interpreter, OpResolverType

    with warnings.catch_warnings():  # preserve_all_tensors warns that it is meant for debugging
        warnings.simplefilter("ignore")
        it = Interpreter(
            model_content=raw,
            experimental_op_resolver_type=OpResolverType.BUILTIN_REF,
            experimental_preserve_all_tensors=True,
        )
    d = it.get_input_details()[0]
    it.resize_tensor_input(d["index"], list(x.shape))
    it.allocate_tensors()
    it.set_tensor(d["index"], x)
    it.invoke()
    return it


def tensor_by_name(it: Any, name: str) -> np.ndarray:
    """The values of the tensor called ``name`` after an invoke."""
    index = {t["name"]: t["index"] for t in it.get_tensor_details()}
    return np.asarray(it.get_tensor(index[name]))
