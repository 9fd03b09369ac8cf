"""Per-sample activations of the frozen prefix, kept for the epochs that reuse them (see frostline.training.cache)."""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

import numpy as np
import torch


class ActivationStore:
    """Per-sample activations, padded back into batches on demand; memory-mapped beyond a budget.

    Stored in the dtype they were computed in: bfloat16 under bf16 autocast (half of float32's memory; kept as its
    raw 16 bits, as NumPy has no bfloat16), else float32. The array is allocated once, at its final size, when the
    first batch gives the feature shape (``rows``: the total of every sample's length, known from tokenising), so
    building never holds two copies.
    """

    def __init__(self, n: int, budget_bytes: int, rows: int | None = None) -> None:
        self.n = n
        self.budget = budget_bytes
        self.capacity = rows if rows is not None else n
        self.start = np.zeros(n, dtype=np.int64)
        self.length = np.zeros(n, dtype=np.int64)
        self.variable = False
        self.feature: tuple[int, ...] = ()
        self.rows = 0
        self.nbytes = 0
        self.dir: Path | None = None
        self.data: np.ndarray | None = None
        self.dtype = torch.float32

    def _allocate(self, feature: tuple[int, ...], dtype: torch.dtype) -> None:
        self.feature, self.dtype = feature, dtype
        np_dtype = np.uint16 if dtype == torch.bfloat16 else np.float32
        shape = (self.capacity, *feature)
        size = int(np.prod(shape)) * np.dtype(np_dtype).itemsize
        if size > self.budget:
            self.dir = Path(tempfile.mkdtemp(prefix="frostline-cache-"))
            self.data = np.memmap(self.dir / "activations.bin", dtype=np_dtype, mode="w+", shape=shape)
        else:
            self.data = np.empty(shape, dtype=np_dtype)

    def put(self, positions: np.ndarray, acts: torch.Tensor, lengths: np.ndarray | None) -> None:
        """Store ``acts`` (batch first) of the samples at ``positions``; ``lengths`` cut padded sequences."""
        acts = acts.detach()
        dtype = torch.bfloat16 if acts.dtype == torch.bfloat16 else torch.float32
        raw = acts.cpu().view(torch.uint16).numpy() if dtype == torch.bfloat16 else acts.float().cpu().numpy()
        self.variable = lengths is not None
        if self.data is None:
            self._allocate(tuple(raw.shape[2:] if self.variable else raw.shape[1:]), dtype)
        assert self.data is not None
        for i, pos in enumerate(positions):
            rows = raw[i, : lengths[i]] if lengths is not None else raw[i][None]
            if self.rows + len(rows) > len(self.data):  # more rows than counted (no lengths given): grow
                self._grow(max(self.rows + len(rows), 2 * len(self.data)))
            self.start[pos], self.length[pos] = self.rows, len(rows)
            self.data[self.rows : self.rows + len(rows)] = rows
            self.rows += len(rows)
            self.nbytes += rows.nbytes

    def _grow(self, capacity: int) -> None:
        assert self.data is not None
        old, self.capacity = self.data, capacity
        path = self.dir / "activations.bin" if self.dir is not None else None
        if path is not None:
            old.flush()  # type: ignore[attr-defined]
            path.rename(path.with_suffix(".old"))
            old = np.memmap(path.with_suffix(".old"), dtype=old.dtype, mode="r", shape=old.shape)
            self.data = np.memmap(path, dtype=old.dtype, mode="w+", shape=(capacity, *self.feature))
        else:
            self.data = np.empty((capacity, *self.feature), dtype=old.dtype)
        self.data[: len(old)] = old
        if path is not None:
            del old
            path.with_suffix(".old").unlink()

    def finish(self) -> None:
        """Seal the store (a memory map is flushed and reopened read-only)."""
        if self.data is None:
            self.data = np.zeros((0, *self.feature), np.float32)
        elif self.dir is not None:
            self.data.flush()  # type: ignore[attr-defined]
            self.data = np.memmap(self.dir / "activations.bin", dtype=self.data.dtype, mode="r",
                                  shape=(self.rows, *self.feature))
        else:
            self.data = self.data[: self.rows]

    @property
    def on_disk(self) -> bool:
        """True when memory-mapped from a file."""
        return self.dir is not None

    def _tensor(self, arr: np.ndarray) -> torch.Tensor:
        t = torch.from_numpy(arr)
        return t.view(torch.bfloat16) if self.dtype == torch.bfloat16 else t

    def gather(self, positions: np.ndarray, width: int = 0) -> torch.Tensor:
        """The activations of ``positions`` as one batch (sequences zero-padded to the longest, or to ``width``, the
        batch's padded width, where that is more), in their dtype."""
        assert self.data is not None
        if not self.variable:
            return self._tensor(np.stack([self.data[self.start[p]] for p in positions]))
        width = max(int(self.length[positions].max()), width)
        out = np.zeros((len(positions), width, *self.feature), dtype=self.data.dtype)
        for i, p in enumerate(positions):
            out[i, : self.length[p]] = self.data[self.start[p] : self.start[p] + self.length[p]]
        return self._tensor(out)

    def close(self) -> None:
        """Drop the data and its temporary file."""
        self.data = None
        if self.dir is not None:
            shutil.rmtree(self.dir, ignore_errors=True)
            self.dir = None
