"""``kws_synth_dscnn``: a synthetic keyword-spotting-like task at MLPerf Tiny's KWS input shape, DS-CNN base.

**Synthetic, not speech.** No audio is involved and this is not Google Speech Commands: rows are
49 frames x 10 coefficients shaped like MFCC features, generated offline and deterministically by
:func:`generate` from ``data_seed``. What makes it keyword-spotting-like:

* an inventory of 12 "phoneme" spectra (10 coefficients each, lower coefficients larger, as in MFCCs);
* 10 "keywords", each a fixed sequence of 3 phonemes; keywords share phonemes, so only the order and
  the spectra together tell them apart (the network has to model time, not just average it);
* class 10 "silence" (background only) and class 11 "unknown" (a random phoneme sequence that is no
  keyword), as in MLPerf Tiny's 12 KWS classes;
* per sample: a random onset and length (18-34 frames, so words shift and stretch in time), phoneme
  boundaries jittered, neighbouring phonemes blended (coarticulation), a rise/fall envelope, a random
  gain, a per-sample stationary "channel" spectrum and white noise of random strength.

Balanced classes, 2000 train / 1000 eval rows, standardised with one mean and standard deviation
of the training rows. Network: :func:`harness.ir.architectures.ds_cnn_kws` (MLPerf Tiny's DS-CNN:
24,908 parameters, 2.66 M MACs once BatchNorm is folded), trained with the NumPy trainer (Adam,
cosine schedule, best of ``epochs`` on a 10 % validation split). Measured (seed 0, 4 epochs):
0.79 eval accuracy, where logistic regression on the flat rows gets 0.49 and chance is 0.083.

Training time: 42 s (data generation included) with ``OPENBLAS_NUM_THREADS=1`` on the loaded
2-core CI machine.
"""

from __future__ import annotations

import numpy as np

from harness.ir.architectures import ds_cnn_kws
from harness.ir.data import Dataset
from harness.ir.network import Network
from harness.ir.train import train_network
from harness.pipeline.recipes import RECIPES

FRAMES, COEFS, CLASSES = 49, 10, 12
N_PHONEMES, N_KEYWORDS, WORD_LEN = 12, 10, 3
SILENCE, UNKNOWN = 10, 11


def _vocabulary(rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Phoneme spectra ``(N_PHONEMES, COEFS)`` and keywords ``(N_KEYWORDS, WORD_LEN)`` (distinct sequences)."""
    scale = 1.0 / (1.0 + 0.3 * np.arange(COEFS))  # MFCC-like: energy falls with the coefficient index
    spectra = rng.standard_normal((N_PHONEMES, COEFS)) * scale
    words: set[tuple[int, ...]] = set()
    while len(words) < N_KEYWORDS:
        words.add(tuple(int(p) for p in rng.choice(N_PHONEMES, WORD_LEN, replace=False)))
    return spectra.astype(np.float32), np.array(sorted(words), dtype=np.int64)


def _utterance(
    rng: np.random.Generator, spectra: np.ndarray, phonemes: np.ndarray, gain: float
) -> np.ndarray:
    """A word of random length at a random onset: phoneme spectra blended at jittered boundaries."""
    length = int(rng.integers(18, 35))
    onset = int(rng.integers(0, FRAMES - length + 1))
    cuts = np.sort(rng.uniform(0.2, 0.8, WORD_LEN - 1)) * length  # jittered phoneme boundaries
    t = np.arange(length) + 0.5
    idx = np.searchsorted(cuts, t)
    # coarticulation: blend each frame with its neighbour phoneme near a boundary (2-frame ramp)
    frames = spectra[phonemes[idx]]
    for b, cut in enumerate(cuts):
        w = np.clip(1.0 - np.abs(t - cut) / 2.0, 0.0, 1.0)[:, None] * 0.5
        frames = frames * (1 - w) + w * 0.5 * (spectra[phonemes[b]] + spectra[phonemes[b + 1]])
    envelope = np.sin(np.pi * t / length)[:, None] ** 0.5
    out = np.zeros((FRAMES, COEFS), np.float32)
    out[onset : onset + length] = gain * envelope * frames
    return out


def generate(n: int, seed: int, split: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """``n`` rows of ``FRAMES * COEFS`` features and their labels (balanced): the vocabulary (phonemes,
    keywords) comes from ``seed``, the samples from ``(seed, split)`` (train and eval differ in ``split``)."""
    spectra, words = _vocabulary(np.random.default_rng(seed))
    rng = np.random.default_rng([seed, split + 1])
    y = np.arange(n, dtype=np.int64) % CLASSES
    rng.shuffle(y)
    keyword_set = {tuple(w) for w in words}
    x = np.empty((n, FRAMES, COEFS), np.float32)
    for i, label in enumerate(y):
        channel = rng.standard_normal(COEFS) * 0.3
        noise = rng.standard_normal((FRAMES, COEFS)) * rng.uniform(0.2, 0.6)
        x[i] = channel + noise
        if label == SILENCE:
            continue
        if label == UNKNOWN:
            seq = tuple(int(p) for p in rng.choice(N_PHONEMES, WORD_LEN, replace=False))
            while seq in keyword_set:
                seq = tuple(int(p) for p in rng.choice(N_PHONEMES, WORD_LEN, replace=False))
            phonemes = np.array(seq)
        else:
            phonemes = words[label]
        x[i] += _utterance(rng, spectra, phonemes, float(rng.uniform(0.8, 1.5)))
    return x.reshape(n, FRAMES * COEFS), y


@RECIPES.register("kws_synth_dscnn")
def build(
    seed: int = 0, epochs: int = 4, n_train: int = 2000, n_eval: int = 1000, data_seed: int = 7
) -> tuple[Network, Dataset]:
    """Generate train and eval rows (eval from its own seed), train the DS-CNN (deterministic)."""
    xtr, ytr = generate(n_train, data_seed, split=0)
    xev, yev = generate(n_eval, data_seed, split=1)
    mu, sd = float(xtr.mean()), float(xtr.std()) + 1e-6
    xtr, xev = ((xtr - mu) / sd).astype(np.float32), ((xev - mu) / sd).astype(np.float32)
    net = ds_cnn_kws(input=(FRAMES, COEFS, 1), classes=CLASSES, seed=seed)
    train_network(net, xtr, ytr, seed=seed, epochs=epochs, lr=1e-2, batch_size=32, schedule="cosine")
    ds = Dataset(
        "kws_synth",
        xev,
        yev,
        xtr[:256],
        xtr,
        ytr,
        n_classes=CLASSES,
        meta={
            "source": "synthetic MFCC-like keyword patterns (models/kws_synth.py), not speech",
            "data_seed": data_seed,
        },
    )
    return net, ds
