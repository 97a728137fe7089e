"""Importers: ONNX and float TFLite graphs converted into the IR."""
