"""head.flatten_order: a fixed, seeded permutation of the flattened features; an FC layer
with its columns permuted alike computes the same function (the course question)."""

from __future__ import annotations

import torch

from convlab.analysis.common import resolve_model
from convlab.models.cnn import PermuteFeatures


def _build(order: str, seed: int = 0) -> torch.nn.Module:
    torch.manual_seed(1)
    return resolve_model("cnn", (1, 12, 12), 4, [
        "stages=[{channels: 3}]", f"head.flatten_order={order}",
        f"head.flatten_seed={seed}"]).model.eval()


def test_permuted_head_is_the_natural_one_with_permuted_fc_columns() -> None:
    natural, permuted = _build("natural"), _build("permuted")
    perm = permuted.head.permute.perm
    assert sorted(perm.tolist()) == list(range(3 * 6 * 6)) and perm.tolist() != sorted(perm)
    assert torch.equal(perm, _build("permuted").head.permute.perm)  # seeded: every build
    assert not torch.equal(perm, _build("permuted", seed=1).head.permute.perm)
    assert "head.permute.perm" in permuted.state_dict()  # saved with the weights
    x = torch.rand(5, 1, 12, 12)
    with torch.no_grad():
        assert not torch.allclose(natural(x), permuted(x))  # same weights, other order
        # y = W z = W' z[perm] for W'[:, i] = W[:, perm[i]]
        permuted.head.fc_out.weight.copy_(natural.head.fc_out.weight[:, perm])
        assert torch.allclose(natural(x), permuted(x), atol=1e-6)  # same function


def test_permutation_module() -> None:
    p = PermuteFeatures(4, seed=0)
    x = torch.arange(8.0).view(2, 4)
    assert torch.equal(p(x), x[:, p.perm])


def test_a_permuted_linear_cnn_still_collapses_to_one_affine_map() -> None:
    from convlab.analysis.affine import linearize, make_linear_module

    m = linearize(make_linear_module(_build("permuted")), (1, 12, 12))
    assert m.ok and m.A.shape == (4, 144)
