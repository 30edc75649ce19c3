"""Exit rules on hand-made entropy / confidence sequences, and the float routines."""
import numpy as np
import pytest
import torch

from beexgen.core.artifact import Policy
from beexgen.train import fmath
from beexgen.train.exits import decide, exit_stats


def H(*rows):
    return np.array(rows, dtype=np.float32)


def test_entropy_rule_picks_first_block_whose_reduction_is_below_tau():
    ent = H([0.69, 0.30, 0.28, 0.10],   # 1->2: -57 %, 2->3: -6.7 % < 10 % -> exit at 3
            [0.69, 0.68, 0.10, 0.05],   # 1->2: -1.4 % < 10 % -> exit at 2
            [0.69, 0.40, 0.20, 0.10],   # always halves: runs to the end
            [0.50, 0.60, 0.70, 0.80])   # entropy grows: reduction negative -> exit at 2
    conf = np.zeros_like(ent)
    assert decide(Policy.ENTROPY, [0.1], conf, ent).tolist() == [3, 2, 4, 2]
    # tau = 0 exits only where entropy does not fall at all; a huge tau exits at depth 2
    assert decide(Policy.ENTROPY, [0.0], conf, ent).tolist() == [4, 4, 4, 2]
    assert decide(Policy.ENTROPY, [10.0], conf, ent).tolist() == [2, 2, 2, 2]


def test_confidence_rule_and_none():
    conf = H([0.95, 0.99, 0.99], [0.6, 0.7, 0.8], [0.6, 0.91, 0.5])
    ent = np.zeros_like(conf)
    assert decide(Policy.CONFIDENCE, [0.9, 0.9], conf, ent).tolist() == [1, 3, 2]
    assert decide(Policy.BUDGET, [0.5, 0.5], conf, ent).tolist() == [1, 1, 1]
    assert decide(Policy.NONE, [], conf, ent).tolist() == [3, 3, 3]
    with pytest.raises(ValueError):
        decide(Policy.CONFIDENCE, [0.9], conf, ent)


def test_exit_stats_match_float64_softmax():
    torch.manual_seed(0)
    logits = torch.randn(500, 3, 6) * 4
    cls, conf, ent = exit_stats(logits)
    p = torch.softmax(logits.double(), -1)
    assert np.array_equal(cls, logits.argmax(-1).numpy())
    assert np.allclose(conf, p.max(-1).values.numpy(), atol=1e-6)
    assert np.allclose(ent, -(p * p.log()).sum(-1).numpy(), atol=1e-5)


def test_project_exp_and_log_are_accurate():
    x = torch.linspace(-87, 88, 200001)
    rel = ((fmath.bx_exp(x).double() - torch.exp(x.double())) / torch.exp(x.double())).abs().max()
    assert rel < 2e-7
    y = torch.logspace(-37, 38, 200001)
    assert (fmath.bx_log(y).double() - torch.log(y.double())).abs().max() < 1e-5


def test_sqrt_rn_is_correctly_rounded():
    x = torch.rand(100000) * 100
    assert np.array_equal(fmath.sqrt_rn(x).numpy(), np.sqrt(x.numpy()))


def test_patience_leaves_once_the_class_has_held_for_t_exits():
    """PABEE's rule: the streak of exits agreeing with the one before reaches t."""
    cls = np.array([[0, 0, 0, 1], [0, 1, 1, 1], [2, 1, 0, 2], [1, 1, 1, 1]])
    conf = ent = np.zeros(cls.shape, np.float32)
    assert decide(Policy.PATIENCE, [0], conf, ent, cls=cls).tolist() == [1, 1, 1, 1]
    assert decide(Policy.PATIENCE, [1], conf, ent, cls=cls).tolist() == [2, 3, 4, 2]
    assert decide(Policy.PATIENCE, [2], conf, ent, cls=cls, first_exit=0).tolist() == [2, 3, 3, 2]
    assert decide(Policy.PATIENCE, [3], conf, ent, cls=cls).tolist() == [4, 4, 4, 4]
    with pytest.raises(ValueError, match="needs each exit's class"):
        decide(Policy.PATIENCE, [1], conf, ent)
