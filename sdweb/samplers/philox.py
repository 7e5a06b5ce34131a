"""CUDA's default normal generator on the CPU: Philox4x32-10 counters + Box–Muller, as torch.randn on an
NVIDIA GPU produces it (A1111's "NV" noise source, a1111.md §10).

How torch draws ``randn(n)`` on CUDA for a generator seeded with ``seed`` and its ``offset``-th call: element
``i`` uses the Philox4x32 block with key = the 64-bit seed (low word, high word) and counter =
(offset, 0, i, 0); of the four 32-bit outputs the first two become uniforms u, v in (0, 1] and the element is
``sqrt(-2 ln u) * sin(2 pi v)``, all in float32. Each call of :meth:`Generator.randn` advances the offset by one.
Philox constants from Salmon et al., "Parallel random numbers: as easy as 1, 2, 3" (SC 2011).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

PHILOX_M = (np.uint64(0xD2511F53), np.uint64(0xCD9E8D57))
PHILOX_W = (np.uint32(0x9E3779B9), np.uint32(0xBB67AE85))
ROUNDS = 10
_TWO_POW32_INV = np.float32(2.3283064e-10)
_TWO_POW32_INV_2PI = np.float32(2.3283064e-10 * 6.2831855)


def _mulhilo(a: np.ndarray, b: np.uint64) -> tuple[np.ndarray, np.ndarray]:
    product = a.astype(np.uint64) * b
    return (product >> np.uint64(32)).astype(np.uint32), (product & np.uint64(0xFFFFFFFF)).astype(np.uint32)


def philox4x32(counter: np.ndarray, key: np.ndarray) -> np.ndarray:
    """Philox4x32-10 on (4, n) uint32 counters with (2, n) uint32 keys; returns the (4, n) outputs."""
    c0, c1, c2, c3 = (row.copy() for row in counter)
    k0, k1 = key[0].copy(), key[1].copy()
    for round_index in range(ROUNDS):
        hi0, lo0 = _mulhilo(c0, PHILOX_M[0])
        hi1, lo1 = _mulhilo(c2, PHILOX_M[1])
        c0, c1, c2, c3 = hi1 ^ c1 ^ k0, lo1, hi0 ^ c3 ^ k1, lo0
        if round_index < ROUNDS - 1:
            k0 = k0 + PHILOX_W[0]
            k1 = k1 + PHILOX_W[1]
    return np.stack([c0, c1, c2, c3])


def box_muller(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """The first of the two normals Box–Muller makes from two uint32 draws. The float32 constants are applied
    in float64 and the result rounded to float32, as A1111's NV source does (within an ulp of CUDA's float32)."""
    scale, scale_2pi = np.float64(_TWO_POW32_INV), np.float64(_TWO_POW32_INV_2PI)
    u = x.astype(np.float64) * scale + scale / 2
    v = y.astype(np.float64) * scale_2pi + scale_2pi / 2
    return (np.sqrt(-2.0 * np.log(u)) * np.sin(v)).astype(np.float32)


class Generator:
    """Draws what ``torch.randn(shape, generator=torch.Generator('cuda').manual_seed(seed))`` would, call
    after call (each call one Philox offset)."""

    def __init__(self, seed: int) -> None:
        self.seed = int(seed)
        self.offset = 0

    def randn(self, shape: Sequence[int]) -> np.ndarray:
        count = int(np.prod(shape)) if len(shape) else 1
        counter = np.zeros((4, count), dtype=np.uint32)
        counter[0] = self.offset
        counter[2] = np.arange(count, dtype=np.uint32)
        self.offset += 1
        seed = self.seed & 0xFFFFFFFFFFFFFFFF
        key = np.empty((2, count), dtype=np.uint32)
        key[0] = seed & 0xFFFFFFFF
        key[1] = seed >> 32
        out = philox4x32(counter, key)
        return box_muller(out[0], out[1]).reshape(tuple(shape))
