"""Padding arithmetic and vectorised im2col / col2im on NHWC batches (loops over kernel taps only).

Padding follows TFLite (and TensorFlow): ``"valid"`` gives ``out = (n - k) // s + 1``; ``"same"``
gives ``out = ceil(n / s)`` with ``total = max((out - 1) * s + k - n, 0)`` padded values, ``total // 2``
before and the rest after (ONNX's ``SAME_UPPER``).
"""

from __future__ import annotations

import numpy as np

PADDINGS = ("same", "valid")


def check_padding(kind: str, padding: str) -> str:
    if padding not in PADDINGS:
        raise ValueError(f"{kind}: padding {padding!r} is not one of {PADDINGS}")
    return padding


def out_len(n: int, k: int, s: int, padding: str) -> int:
    """Output length along one axis of size ``n`` for kernel ``k`` and stride ``s``."""
    if padding == "same":
        return -(-n // s)
    if n < k:
        raise ValueError(f"a valid-padded window of {k} does not fit an axis of {n}")
    return (n - k) // s + 1


def pads(n: int, k: int, s: int, padding: str) -> tuple[int, int]:
    """``(before, after)`` padding along one axis (TFLite's SAME convention)."""
    if padding == "valid":
        return 0, 0
    total = max((out_len(n, k, s, padding) - 1) * s + k - n, 0)
    return total // 2, total - total // 2


Geometry = tuple[int, int, int, int, tuple[int, int], tuple[int, int]]


def window_geometry(
    hw: tuple[int, int], k: tuple[int, int], stride: tuple[int, int], padding: str
) -> Geometry:
    """``(kh, kw, ho, wo, pad_h, pad_w)`` of a ``k`` window sliding over an ``hw`` input."""
    (h, w), (kh, kw), (sh, sw) = hw, k, stride
    return (
        kh,
        kw,
        out_len(h, kh, sh, padding),
        out_len(w, kw, sw, padding),
        pads(h, kh, sh, padding),
        pads(w, kw, sw, padding),
    )


def pad_hw(x: np.ndarray, ph: tuple[int, int], pw: tuple[int, int], value: float = 0.0) -> np.ndarray:
    """Pad the H and W axes of an NHWC batch (no copy when there is nothing to pad)."""
    if ph == (0, 0) and pw == (0, 0):
        return x
    return np.pad(x, ((0, 0), ph, pw, (0, 0)), constant_values=value)


def taps(
    xp: np.ndarray, kh: int, kw: int, sh: int, sw: int, ho: int, wo: int
) -> list[tuple[int, int, np.ndarray]]:
    """``(i, j, view)`` for every kernel tap: the strided ``(B, ho, wo, C)`` view of the padded input."""
    return [
        (i, j, xp[:, i : i + sh * (ho - 1) + 1 : sh, j : j + sw * (wo - 1) + 1 : sw, :])
        for i in range(kh)
        for j in range(kw)
    ]


def im2col(xp: np.ndarray, kh: int, kw: int, sh: int, sw: int, ho: int, wo: int) -> np.ndarray:
    """Patches of a padded NHWC batch as rows ``(B * ho * wo, kh * kw * C)`` in (kh, kw, C) order."""
    b, c = xp.shape[0], xp.shape[3]
    cols = np.empty((b, ho, wo, kh, kw, c), dtype=xp.dtype)
    for i, j, view in taps(xp, kh, kw, sh, sw, ho, wo):
        cols[:, :, :, i, j, :] = view
    return cols.reshape(b * ho * wo, kh * kw * c)


def col2im(
    dcols: np.ndarray, padded_shape: tuple[int, ...], kh: int, kw: int, sh: int, sw: int, ho: int, wo: int
) -> np.ndarray:
    """Adjoint of :func:`im2col`: sum patch gradients back into a padded NHWC gradient."""
    b, c = padded_shape[0], padded_shape[3]
    d = dcols.reshape(b, ho, wo, kh, kw, c)
    dxp = np.zeros(padded_shape, dtype=dcols.dtype)
    for i, j, view in taps(dxp, kh, kw, sh, sw, ho, wo):
        view += d[:, :, :, i, j, :]
    return dxp


def unpad_hw(dxp: np.ndarray, ph: tuple[int, int], pw: tuple[int, int]) -> np.ndarray:
    """Crop the padding of :func:`pad_hw` from a gradient."""
    h, w = dxp.shape[1], dxp.shape[2]
    return dxp[:, ph[0] : h - ph[1], pw[0] : w - pw[1], :]
