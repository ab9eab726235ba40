"""Optimizers by class path and the warmup schedules, by hand."""

import warnings

import pytest
import torch

from bsr_lightning.args import Optimization
from bsr_lightning.training.optim import build_optimizer, warmup_lambda


def model() -> torch.nn.Module:
    torch.manual_seed(0)
    return torch.nn.Sequential(torch.nn.Linear(64, 512), torch.nn.LayerNorm(512), torch.nn.Linear(512, 1))


def test_adamw_by_default_with_no_decay_on_biases_and_norms():
    out = build_optimizer(model(), Optimization(lr=1e-3, weight_decay=0.1), total_steps=10)
    optimizer = out["optimizer"]
    assert type(optimizer) is torch.optim.AdamW and out["lr_scheduler"]["interval"] == "step"
    decay, no_decay = optimizer.param_groups
    assert decay["weight_decay"] == 0.1 and all(p.ndim == 2 for p in decay["params"])
    assert no_decay["weight_decay"] == 0.0 and all(p.ndim == 1 for p in no_decay["params"])


def test_paged_adamw_8bit_keeps_one_byte_moments_as_plan_counts():
    net = model()
    optimizer = build_optimizer(net, Optimization(optimizer="bitsandbytes.optim.PagedAdamW8bit", lr=1e-3), 10)[
        "optimizer"]
    net(torch.randn(4, 64)).pow(2).mean().backward()
    before = net[0].weight.detach().clone()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # "paged optimizers are not supported on CPU": the 8-bit states still are
        optimizer.step()
    assert not torch.equal(before, net[0].weight)
    state = optimizer.state[net[0].weight]
    assert state["state1"].dtype == torch.uint8 and state["state2"].dtype == torch.uint8
    assert state["absmax1"].numel() * 256 == net[0].weight.numel()  # one float32 scale per 256 values


def test_an_optimizer_path_that_is_not_an_optimizer_is_refused():
    with pytest.raises(ValueError, match=r"optimization.optimizer: 'torch.nn.Linear' is not a subclass"):
        build_optimizer(model(), Optimization(optimizer="torch.nn.Linear"), 10)
    with pytest.raises(ValueError, match=r"optimization.optimizer: cannot import 'no_such.Adam'"):
        build_optimizer(model(), Optimization(optimizer="no_such.Adam"), 10)


def test_warmup_then_linear_or_cosine_decay_by_hand():
    linear = warmup_lambda(warmup_steps=4, total_steps=12, schedule="linear")
    assert [linear(s) for s in (0, 3)] == [1 / 5, 4 / 5]  # (step + 1) / (warmup + 1)
    assert [linear(s) for s in (4, 8, 12)] == [1.0, 0.5, 0.0]
    cosine = warmup_lambda(0, 10, "cosine")
    assert cosine(5) == pytest.approx(0.5) and cosine(10) == pytest.approx(0.0)
    assert warmup_lambda(2, 10, "constant")(9) == 1.0


def test_fused_adamw_by_default_on_plain_parameters_with_the_same_steps():
    fused = build_optimizer(net_a := model(), Optimization(lr=1e-2), 10)["optimizer"]
    loop = build_optimizer(net_b := model(), Optimization(lr=1e-2, fused=False), 10)["optimizer"]
    assert fused.defaults["fused"] is True and not loop.defaults["fused"]
    start = [p.detach().clone() for p in net_a.parameters()]
    x = torch.randn(8, 64)
    for net, optimizer in ((net_a, fused), (net_b, loop)):
        for _ in range(3):
            net(x).pow(2).mean().backward()
            optimizer.step()
            optimizer.zero_grad()
    # Compare the updates, not the weights, relative to their size: Adam moves each weight by about lr per step,
    # and the fused and loop kernels round differently from one CPU to another (2.2e-6 apart on AMD Zen, 0 on
    # Intel). One part in a thousand of the three steps' largest update holds on both; a wrong update (another lr,
    # a missed step, no bias correction) is off by far more.
    for a, b, p0 in zip(net_a.parameters(), net_b.parameters(), start, strict=True):
        torch.testing.assert_close(a - p0, b - p0, rtol=1e-3, atol=3 * 1e-2 * 1e-3)
        assert (a - p0).abs().max() > 1e-3  # the steps moved the weights


DATA = ["--data", "bsr_lightning.SyntheticPreferenceDataModule"]


@pytest.mark.parametrize("module, expected", [
    ("bsr_lightning.RewardModel", {"warmup_ratio": 0.03, "schedule": "linear", "max_grad_norm": None}),
    ("bsr_lightning.SFTModel", {"warmup_ratio": 0.03, "schedule": "cosine", "max_grad_norm": None}),
])
def test_setting_one_optimization_field_keeps_the_modules_other_defaults(module, expected):
    from bsr_lightning.cli import BSRLightningCLI

    cli = BSRLightningCLI(args=["--model", module, "--model.backbone.name", "tiny:synthetic",
                                "--model.optimization.lr", "3e-5", "--trainer.logger", "false", *DATA], run=False)
    optimization = cli.model.optimization
    assert optimization.lr == 3e-5
    assert {k: getattr(optimization, k) for k in expected} == expected
    explicit = BSRLightningCLI(args=["--model", module, "--model.backbone.name", "tiny:synthetic",
                                     "--model.optimization.warmup_ratio", "0.0", "--trainer.logger", "false", *DATA],
                               run=False)
    assert explicit.model.optimization.warmup_ratio == 0.0  # an explicit value, even the base class's default, wins
