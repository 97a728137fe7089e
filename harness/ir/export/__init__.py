"""Writers from the model IR to runnable files (ONNX, TFLite; the MCU blob lives in ``harness.mcu``)."""
