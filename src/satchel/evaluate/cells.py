"""Sums per cell, merged batch by batch: the evaluation's only state.

A cell is an int64 key packed from small fields (scope, true label, predicted label, score
bin, ...; see :class:`Packing`); each cell holds a few float sums (its row count first).
Memory is one row per *occupied* cell, bounded by the product of the fields' ranges, never
by the number of rows — what keeps ``satchel evaluate`` at constant memory.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Packing:
    """Bit widths of a key's fields, first field highest."""

    bits: tuple[int, ...]

    def pack(self, *fields: np.ndarray) -> np.ndarray:
        key = np.zeros(len(fields[0]), dtype=np.int64)
        for width, f in zip(self.bits, fields):
            key = (key << width) | np.asarray(f, dtype=np.int64)
        return key

    def unpack(self, key: np.ndarray) -> list[np.ndarray]:
        out = []
        for width in reversed(self.bits):
            out.append(key & ((1 << width) - 1))
            key = key >> width
        return out[::-1]


class CellTable:
    """Unique keys (in order of first appearance) and, per key, ``width`` float sums."""

    def __init__(self, width: int) -> None:
        self.keys = np.zeros(0, dtype=np.int64)
        self.sums = np.zeros((0, width))

    def add(self, keys: np.ndarray, values: np.ndarray) -> None:
        """Add rows: ``keys`` (n,) and ``values`` (n, width)."""
        if not len(keys):
            return
        # the batch is summed on its own first, so the merge only touches cells
        k, v = merge(keys, values)
        self.keys, self.sums = merge(np.r_[self.keys, k], np.vstack([self.sums, v]))

    def sort(self) -> None:
        """Keys in ascending order: the order draws are made in, so it must not depend on
        how the rows were cut into batches (first appearance does, across tables)."""
        order = np.argsort(self.keys, kind="stable")
        self.keys, self.sums = self.keys[order], self.sums[order]

    def select(self, mask: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        return self.keys[mask], self.sums[mask]


def merge(keys: np.ndarray, values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Rows with the same key summed, keys in order of first appearance. Hash-based
    (``pandas.factorize``): linear in the rows, where sorting them was the largest cost of
    a batch."""
    import pandas as pd

    codes, uniq = pd.factorize(keys)
    out = np.zeros((len(uniq), values.shape[1]))
    for j in range(values.shape[1]):
        out[:, j] = np.bincount(codes, weights=values[:, j], minlength=len(uniq))
    return np.asarray(uniq, dtype=np.int64), out


def regroup(keys: np.ndarray, values: np.ndarray, packing: Packing,
            shift: Sequence[int]) -> tuple[np.ndarray, np.ndarray]:
    """Merge cells after dropping the low ``shift[i]`` bits of field ``i`` (coarser bins)."""
    fields = [f >> s for f, s in zip(packing.unpack(keys), shift)]
    return merge(packing.pack(*fields), values)
