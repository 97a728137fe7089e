"""The task's ``input`` table: how the user's arrays become what the model is fed.

All keys are optional::

    [tasks.input]
    scale = 0.0039215686        # x' = x * scale + offset (scalars, or one value per last-axis channel)
    offset = 0.0
    dtype = "uint8"             # round and clip to this type after scaling (what the device feeds)
    layout = "NHWC->NCHW"       # transpose the arrays (letters name the axes, N first)
    reshape = [64]              # per-sample reshape, applied after the layout transpose
    output = "probabilities"    # the model output to score (default: the first float output)
    constants = { sr = 16000, state = 0.0 }   # fixed values for the model's other inputs (ONNX)
    convert = true              # try to convert the ONNX graph to the trainable IR
    label_column = "target"     # CSV only: the label column (default: the last one)
    n_classes = 10              # override the class count read from the model's output width
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from ..errors import ConfigError


class InputSpec(BaseModel):
    """The task's ``input`` table: layout and preprocessing of the user's data."""

    model_config = ConfigDict(extra="forbid")
    scale: float | list[float] = 1.0
    offset: float | list[float] = 0.0
    dtype: Literal["float32", "float16", "int8", "uint8", "int16", "int32", "int64"] | None = None
    layout: str | None = Field(None, pattern=r"^[A-Za-z]+->[A-Za-z]+$")
    reshape: list[int] | None = None
    output: str | None = None
    constants: dict[str, float | int | list[Any]] = Field(default_factory=dict)
    convert: bool = True
    label_column: str | int | None = None
    n_classes: int | None = Field(None, ge=2)


def parse_input(task_name: str, table: dict[str, Any]) -> InputSpec:
    """The validated ``input`` table, or a ConfigError naming the bad key."""
    try:
        return InputSpec(**table)
    except ValidationError as e:
        err = e.errors()[0]
        key = ".".join(str(p) for p in err["loc"])
        raise ConfigError(
            f"task {task_name!r}: input.{key}: {err['msg']} (see harness/byo/spec.py for the keys)"
        ) from None
