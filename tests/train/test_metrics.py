"""Top-k accuracy and the on-device accumulator, checked on hand-made logits."""

from __future__ import annotations

import pytest
import torch

from convlab.train.metrics import Accumulator, metric_ks, topk_correct


def test_topk_correct_by_hand() -> None:
    logits = torch.tensor([
        [0.1, 0.9, 0.0, 0.0, 0.0, 0.0],  # target 1: top-1 hit
        [0.5, 0.4, 0.3, 0.2, 0.1, 0.0],  # target 4: rank 5 -> top-5 hit only
        [0.5, 0.4, 0.3, 0.2, 0.1, 0.0],  # target 5: rank 6 -> miss both
    ])
    target = torch.tensor([1, 4, 5])
    assert topk_correct(logits, target, (1, 5)).tolist() == [1, 2]


def test_metric_ks_only_top1_for_few_classes() -> None:
    assert metric_ks(10) == (1, 5) and metric_ks(5) == (1,) and metric_ks(2) == (1,)


def test_accumulator_weights_by_batch_size() -> None:
    acc = Accumulator((1,), torch.device("cpu"))
    # batch of 3 with mean loss 1.0 and 3 hits, batch of 1 with loss 5.0 and 0 hits:
    # epoch loss (3*1 + 1*5) / 4 = 2.0, top1 3/4
    acc.add(torch.tensor(1.0), torch.eye(3), torch.tensor([0, 1, 2]))
    acc.add(torch.tensor(5.0), torch.tensor([[1.0, 0.0, 0.0]]), torch.tensor([2]))
    assert acc.result() == pytest.approx({"loss": 2.0, "top1": 0.75})
