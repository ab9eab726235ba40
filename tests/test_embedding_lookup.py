"""One embedding lookup per bucketed batch: each pass gets exactly its own rows, backward builds one embedding
gradient instead of one per pass, and the rewards and gradients stay the padded path's."""

import pytest
import torch
from torch import nn

from bsr_lightning import Backbone, RewardModel
from bsr_lightning.reward.embedding_lookup import OneLookup
from bsr_lightning.reward.forward import LengthBuckets, SharedPrefix
from conftest import random_batch


def embedding_backward_nodes(output: torch.Tensor, weight: torch.Tensor) -> int:
    """How many embedding-backward nodes of ``output``'s graph send a gradient to ``weight``."""
    seen, stack, count = set(), [output.grad_fn], 0
    while stack:
        node = stack.pop()
        if node is None or node in seen:
            continue
        seen.add(node)
        parents = [n for n, _ in node.next_functions]
        if type(node).__name__ == "EmbeddingBackward0" and any(getattr(n, "variable", None) is weight for n in parents):
            count += 1
        stack.extend(parents)
    return count


@pytest.fixture
def toy():
    torch.manual_seed(0)
    embedding = nn.Embedding(20, 3)
    return embedding, OneLookup(embedding), torch.tensor([[1, 2, 3], [4, 5, 6]]), torch.tensor([[7, 8]])


def test_each_pass_gets_its_rows_and_backward_builds_one_gradient(toy):
    embedding, lookup, a, b = toy
    with lookup.batched([a, b]):
        ea, eb = embedding(a), embedding(b)
    assert torch.equal(ea, embedding.weight[a]) and torch.equal(eb, embedding.weight[b]) and not lookup.pending
    loss = ea.sum() + 2 * eb.sum()
    assert embedding_backward_nodes(loss, embedding.weight) == 1
    loss.backward()
    expected = torch.zeros(20, 3)
    expected[1:7], expected[7:9] = 1.0, 2.0  # by hand: each id once, the second pass's ids weighted 2
    assert torch.equal(embedding.weight.grad, expected)


def test_without_it_each_pass_has_its_own_gradient(toy):
    embedding, _, a, b = toy
    assert embedding_backward_nodes(embedding(a).sum() + embedding(b).sum(), embedding.weight) == 2


def test_a_pass_in_another_order_keeps_its_own_lookups(toy):
    embedding, lookup, a, b = toy
    with lookup.batched([a, b]):
        eb, ea = embedding(b), embedding(a)  # not the announced order: nothing is served, nothing is mixed up
    assert torch.equal(ea, embedding.weight[a]) and torch.equal(eb, embedding.weight[b]) and not lookup.pending
    assert embedding_backward_nodes(ea.sum() + eb.sum(), embedding.weight) == 2


@pytest.mark.parametrize("case", ["one pass", "no grad", "frozen", "disabled"])
def test_it_stays_off_where_it_saves_nothing_or_is_not_asked(toy, case):
    embedding, lookup, a, b = toy
    embedding.weight.requires_grad_(case != "frozen")
    with torch.set_grad_enabled(case != "no grad"):
        with lookup.batched([a] if case == "one pass" else [a, b], enabled=case != "disabled"):
            assert not lookup.pending
            assert torch.equal(embedding(a), embedding.weight[a])


@pytest.mark.parametrize("backbone, mode", [("tiny_bert", LengthBuckets(3)), ("tiny_llama", SharedPrefix(3))],
                         ids=["encoder-LengthBuckets", "decoder-SharedPrefix"])
def test_a_bucketed_batch_embeds_once_with_the_padded_rewards_and_gradients(request, backbone, mode):
    path = request.getfixturevalue(backbone)
    padded = RewardModel(Backbone(path), score_init="normal")
    bucketed = RewardModel(Backbone(path), forward_mode=mode)
    bucketed.load_state_dict(padded.state_dict())
    ids, mask = random_batch(padded, [5, 17, 9, 30, 2, 12, 4, 21])
    if isinstance(mode, SharedPrefix):  # pairs sharing prompts: chosen rows first, then rejected
        ids[4:, :3], mask[4:, :3] = ids[:4, :3], 1
    (r1, h1), (r2, h2) = padded(ids, mask), bucketed(ids, mask)
    weight = bucketed.backbone.get_input_embeddings().weight
    assert embedding_backward_nodes(r2.sum(), weight) == 1
    assert embedding_backward_nodes(r1.sum(), padded.backbone.get_input_embeddings().weight) == 1
    assert torch.allclose(r1, r2, atol=1e-5) and torch.allclose(h1, h2, atol=1e-5)
    r1.square().sum().backward()
    r2.square().sum().backward()
    for (name, p1), p2 in zip(padded.named_parameters(), bucketed.parameters(), strict=True):
        assert torch.allclose(p1.grad, p2.grad, atol=1e-5, rtol=1e-4), name
