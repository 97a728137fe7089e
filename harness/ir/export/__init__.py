"""Writers from the model IR to runnable files (ONNX, TFLite) and the graph builders layers write into."""
