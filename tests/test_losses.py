import math

import pytest
import torch

from bsr_lightning.reward.losses import BradleyTerry, BradleyTerryDR, BradleyTerryMargin, Hinge

C = torch.tensor([1.0, 0.0])
R = torch.tensor([0.0, 0.0])
LOGITS = C - R


def nll(x: float) -> float:
    return math.log1p(math.exp(-x))


def test_bradley_terry_by_hand():
    assert BradleyTerry()(LOGITS, C, R).tolist() == pytest.approx([nll(1.0), math.log(2.0)])


def test_margin_constant_and_per_pair():
    assert BradleyTerryMargin(0.5)(LOGITS, C, R).tolist() == pytest.approx([nll(0.5), nll(-0.5)])
    per_pair = BradleyTerryMargin(0.5)(LOGITS, C, R, margin=torch.tensor([1.0, 0.0]))
    assert per_pair.tolist() == pytest.approx([math.log(2.0), math.log(2.0)])


def test_hinge_by_hand():
    assert Hinge(1.0)(torch.tensor([2.0, 0.25, -1.0]), C, R).tolist() == pytest.approx([0.0, 0.75, 2.0])


def test_bt_dr_by_hand():
    c, r = torch.tensor([1.0]), torch.tensor([-2.0])
    expected = nll(3.0) + nll(1.0) + nll(2.0)
    assert BradleyTerryDR()(c - r, c, r).item() == pytest.approx(expected)


def test_margins_default_to_zero_as_in_the_papers_code():
    assert BradleyTerryMargin().margin == 0.0 and Hinge().margin == 0.0
    assert BradleyTerryMargin()(LOGITS, C, R).tolist() == BradleyTerry()(LOGITS, C, R).tolist()
    assert Hinge()(torch.tensor([2.0, -1.0]), C, R).tolist() == [0.0, 1.0]
