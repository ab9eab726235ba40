"""The one read of a transformers internal (the attention implementation) still answers what was asked for."""

import pytest

from bsr_lightning import Backbone, RewardModel
from bsr_lightning.backbones.transformers_compat import attention_implementation


@pytest.mark.parametrize("attention", ["eager", "sdpa"])
def test_attention_implementation_is_the_one_requested(tiny_llama, attention):
    module = RewardModel(Backbone(tiny_llama, attention=attention))
    assert attention_implementation(module.backbone) == attention == module.attention
