"""Bring your own model and dataset (a task with ``model`` and ``data`` instead of a recipe).

One job per module, imports pointing down:

* :mod:`.spec`: the task's ``input`` table (preprocessing keys);
* :mod:`.inspect`: a model file's inputs, outputs and dtypes, and which of them the task uses;
* :mod:`.datasets`: the three dataset formats (``.npz``, folder of ``.npy``, ``.csv``) as raw arrays;
* :mod:`.preprocess`: arrays to model inputs, and the shape and label checks;
* :mod:`.execute`: the model file's own outputs (ONNX Runtime, LiteRT);
* :mod:`.prepare`: ONNX graph rewrites and conversion to the IR;
* :mod:`.task`: :func:`.task.build`, a task's checked base model and dataset (used by
  :mod:`harness.pipeline.variants`);
* :mod:`.starter`: the starter suite of ``frugalbench init-task``.
"""
