"""Write the files of ``benches/examples/byo.toml`` into ``benches/examples/data/`` (git-ignored).

* ``digits_mlp.onnx``: a scikit-learn MLP trained on the digits bundled with scikit-learn and
  converted with skl2onnx (``zipmap`` off), standing for "your model";
* ``digits.npz``: its data as a user would keep it, raw 0..16 pixel values as uint8, with a training
  split (so fine-tuned techniques apply);
* ``silero_vad.onnx`` (copied from the silero-vad wheel, ``pip install --no-deps silero-vad==6.2.3``)
  and ``vad.npz``: synthetic voiced frames against noise, 576 samples at 16 kHz, labels 1/0.

Run: ``python benches/examples/make_byo.py`` then ``frugalbench run benches/examples/byo.toml``.
Needs ``pip install 'frugalbench[test]'`` (skl2onnx).
"""

from __future__ import annotations

import importlib.util
import shutil
import warnings
from pathlib import Path

import numpy as np

OUT = Path(__file__).parent / "data"


def vad_frames(n_each: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Harmonic frames shaped by three formants (label 1) and noise of random level (label 0)."""
    rng = np.random.default_rng(seed)
    t = np.arange(576) / 16000
    xs, ys = [], []
    for _ in range(n_each):
        f0, formants = rng.uniform(90, 250), (rng.uniform(300, 800), rng.uniform(900, 2300), 2600.0)
        sig = sum(
            np.sin(2 * np.pi * k * f0 * t) / k * sum(np.exp(-(((k * f0 - f) / 120) ** 2)) for f in formants)
            for k in range(1, 40)
        )
        xs += [
            0.5 * sig / np.abs(sig).max() + 0.05 * rng.standard_normal(576),
            rng.uniform(0.001, 0.3) * rng.standard_normal(576),
        ]
        ys += [1, 0]
    return np.asarray(xs, np.float32), np.asarray(ys)


def main() -> None:
    from skl2onnx import to_onnx
    from sklearn.datasets import load_digits
    from sklearn.neural_network import MLPClassifier
    from threadpoolctl import threadpool_limits

    OUT.mkdir(exist_ok=True)
    x, y = load_digits(return_X_y=True)
    with warnings.catch_warnings(), threadpool_limits(1):  # BLAS threads only slow a model this small
        warnings.simplefilter("ignore")
        clf = MLPClassifier((32,), max_iter=120, random_state=0).fit(x[:1200] / 16, y[:1200])
    onx = to_onnx(clf, (x[:1] / 16).astype(np.float32), options={id(clf): {"zipmap": False}}, target_opset=17)
    (OUT / "digits_mlp.onnx").write_bytes(onx.SerializeToString())
    np.savez_compressed(
        OUT / "digits.npz",
        x_eval=x[1200:].astype(np.uint8),
        y_eval=y[1200:],
        x_train=x[:1200].astype(np.uint8),
        y_train=y[:1200],
    )
    spec = importlib.util.find_spec("silero_vad")
    if spec is None or spec.origin is None:
        print("silero-vad not installed: `pip install --no-deps silero-vad==6.2.3` for the vad task")
    else:
        shutil.copy(Path(spec.origin).parent / "data" / "silero_vad_16k_op15.onnx", OUT / "silero_vad.onnx")
        xv, yv = vad_frames(100)
        np.savez_compressed(OUT / "vad.npz", x_eval=xv, y_eval=yv)
    print(f"wrote {sorted(p.name for p in OUT.iterdir() if p.name != '.gitignore')} in {OUT}")


if __name__ == "__main__":
    main()
