"""RLOO on groups (issue 33): ``SharedPrompt`` takes each prompt once for its k samples in the policy's and the
reference's log-prob passes; log-probs, entropies, the loss and the gradients equal the padded pass's (fp32, LoRA on
and off, SequenceClip and TokenClip), minibatches keep a prompt's samples together, and ``ModelReward`` scores a
prompt's k completions as one group."""

import pytest
import torch

from bsr_lightning import Backbone, RewardModel
from bsr_lightning.args import LoRA
from bsr_lightning.backbones.export import export_module
from bsr_lightning.rloo.forward import Padded, SharedPrompt
from bsr_lightning.rloo.loss import SequenceClip, TokenClip
from bsr_lightning.rloo.rewards import ModelReward
from test_rloo import policy, prompt_batch


def rollout_of(lora, k: int = 3):
    torch.manual_seed(0)
    module = policy("length_words", k=k, max_new_tokens=10, lora=lora)
    module.setup("fit")
    rollout, stats = module.rollout(prompt_batch(module, n=3))
    return module, rollout, stats


@pytest.mark.parametrize("lora", [None, LoRA(r=4, alpha=8)], ids=["full", "lora"])
@pytest.mark.parametrize("loss", [SequenceClip(), TokenClip()], ids=["SequenceClip", "TokenClip"])
def test_shared_prompt_equals_padded(lora, loss):
    module, rollout, stats = rollout_of(lora)
    mask = rollout.response_mask.bool()
    assert mask.sum(-1).min() >= 1 and len(set(mask.sum(-1).tolist())) > 1  # responses of different lengths
    index = torch.tensor([4, 3, 5, 0, 1, 2])  # whole groups, in a minibatch's order
    results = []
    for mode in (Padded(), SharedPrompt()):
        module.backbone.zero_grad()
        logp, entropy = mode(module.backbone, rollout, index, module.sampling.temperature, 3, with_entropy=True)
        total, _ = loss(logp, stats["old_logp"][index] - 0.05, stats["advantage"][index], mask[index].float())
        total.backward()
        grads = {n: p.grad.clone() for n, p in module.backbone.named_parameters() if p.grad is not None}
        results.append((logp, entropy, total, grads))
    (lp1, en1, loss1, g1), (lp2, en2, loss2, g2) = results
    torch.testing.assert_close(lp2[mask[index]], lp1[mask[index]], atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(en2[mask[index]], en1[mask[index]], atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(loss2, loss1, atol=1e-6, rtol=1e-5)
    assert g1.keys() == g2.keys() and len(g1) > 0
    for name in g1:
        torch.testing.assert_close(g2[name], g1[name], atol=1e-5, rtol=1e-4, msg=name)


def test_rollout_statistics_equal_padded():
    module, rollout, stats = rollout_of(None)
    module.forward_mode = SharedPrompt()  # the rollout's old log-probs came from the padded pass
    logp, _ = module._logprobs(module.backbone, rollout)
    mask = rollout.response_mask.bool()
    torch.testing.assert_close(logp[mask], stats["old_logp"][mask], atol=1e-5, rtol=1e-5)


def test_minibatches_keep_a_prompts_samples_together():
    torch.manual_seed(0)
    batches = SharedPrompt().minibatches(12, 3, 2, "cpu")
    assert [len(b) for b in batches] == [6, 6]
    assert sorted(torch.cat(batches).tolist()) == list(range(12))
    for batch in batches:
        groups = (batch // 3).view(-1, 3)
        assert bool((groups == groups[:, :1]).all())


def test_a_policy_with_other_attention_is_refused_at_start():
    from bsr_lightning.errors import ConfigError

    with pytest.raises(ConfigError, match="SharedPrompt needs attention in"):
        SharedPrompt().check("flash_attention_2")


def test_model_reward_scores_a_prompts_completions_as_one_group(tiny_llama, tmp_path):
    torch.manual_seed(0)
    path = str(export_module(RewardModel(Backbone(tiny_llama), score_init="normal"), tmp_path / "rm"))
    prompts = [[{"role": "user", "content": "How do I start chess?"}]] * 3 + \
        [[{"role": "user", "content": "Any tips for knitting?"}]] * 3
    responses = ["Learn the moves.", "no", "Play a lot.", "Start small.", "Use wool.", "Ask a friend."]
    reward = ModelReward(path, batch_size=8)
    grouped = reward(prompts, responses)
    reward.scorer.shared_prefix = False
    alone = reward(prompts, responses)
    assert reward.scorer.groups_share_prefix is False
    torch.testing.assert_close(grouped, alone, atol=1e-5, rtol=1e-5)
