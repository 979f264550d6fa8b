"""Batch collation for packed rows and for plain padded batches.

`PackedCollator` pads rows to the longest in the batch; the padding forms one more "sample"
(positions restart at 0, labels IGNORE_INDEX), so with position-id packing it needs no
attention mask at all. `PaddedCollator` is the classic one-example-per-row batch with a 2D
attention mask: the reference the throughput benchmark compares packing against.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch

from codebench.train.data import IGNORE_INDEX
from codebench.train.packing import Row, block_diagonal_mask


def _pad_len(n: int, multiple: int | None) -> int:
    return n if not multiple else -(-n // multiple) * multiple


@dataclass
class PackedCollator:
    """Collate packed `Row`s: input_ids, labels, position_ids (+ a 4D mask in '4d' mode).

    mode: 'position_ids' / 'varlen' (no mask: the model separates samples by their restarting
    position ids) or '4d'; mask_dtype: None for a boolean 4D mask (sdpa), a float
    dtype for an additive one (eager attention).
    """

    pad_token_id: int
    mode: str = "position_ids"
    mask_dtype: torch.dtype | None = None
    pad_to_multiple_of: int | None = None

    def __call__(self, rows: Sequence[Row]) -> dict[str, torch.Tensor]:
        length = _pad_len(max(len(r) for r in rows), self.pad_to_multiple_of)
        ids, labels, pos = [], [], []
        for r in rows:
            pad = length - len(r)
            ids.append(r.input_ids + [self.pad_token_id] * pad)
            labels.append(r.labels + [IGNORE_INDEX] * pad)
            pos.append(r.position_ids + list(range(pad)))
        batch = {
            "input_ids": torch.tensor(ids, dtype=torch.long),
            "labels": torch.tensor(labels, dtype=torch.long),
            "position_ids": torch.tensor(pos, dtype=torch.long),
        }
        if self.mode == "4d":
            batch["attention_mask"] = block_diagonal_mask(
                batch["position_ids"], additive_dtype=self.mask_dtype
            )
        return batch


@dataclass
class PaddedCollator:
    """Collate one example per row, right-padded, with a 2D attention mask."""

    pad_token_id: int
    pad_to_multiple_of: int | None = None

    def __call__(self, rows: Sequence[Row]) -> dict[str, torch.Tensor]:
        length = _pad_len(max(len(r) for r in rows), self.pad_to_multiple_of)
        ids, labels, mask = [], [], []
        for r in rows:
            pad = length - len(r)
            ids.append(r.input_ids + [self.pad_token_id] * pad)
            labels.append(r.labels + [IGNORE_INDEX] * pad)
            mask.append([1] * len(r) + [0] * pad)
        return {
            "input_ids": torch.tensor(ids, dtype=torch.long),
            "labels": torch.tensor(labels, dtype=torch.long),
            "attention_mask": torch.tensor(mask, dtype=torch.long),
        }


class RowDataset(torch.utils.data.Dataset):
    """A list of rows as a map-style dataset (the Trainer shuffles it with its seed)."""

    def __init__(self, rows: Sequence[Row]):
        self.rows = list(rows)
        self.tokens_served = 0  # real (non-pad) tokens handed out, for tokens/s

    def __len__(self) -> int:
        return len(self.rows)

    def __getitem__(self, i: int) -> Row:
        row = self.rows[i]
        self.tokens_served += len(row)
        return row
