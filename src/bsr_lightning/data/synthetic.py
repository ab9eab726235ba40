"""DataModules over the generated preference task of :mod:`bsr_lightning.synthetic_task` (gold reward known):
preference pairs, RLOO prompts and SFT examples, all offline and deterministic in ``seed``."""

from __future__ import annotations

import random

from bsr_lightning.data.formats import PreferencePair, row_to_pair
from bsr_lightning.data.preference import PreferenceDataModule
from bsr_lightning.data.prompts import PromptDataModule, SFTDataModule
from bsr_lightning.errors import check
from bsr_lightning.synthetic_task import all_prompts, generate_preference_rows

HELD_OUT_SEED_OFFSET = 100_003  # validation rows come from seed + this: unseen pairs


class SyntheticPreferenceDataModule(PreferenceDataModule):
    """:class:`PreferenceDataModule` on the generated task: train pairs from ``seed``, held-out pairs from another
    seed, so validation accuracy is accuracy against the gold reward on unseen pairs.

    Args:
        num_pairs: training pairs.
        num_val_pairs: held-out pairs.
        length_bias: the probability that a training pair's label follows length (the longer response is chosen)
            instead of the gold reward, as annotators who prefer longer answers would label it
            (:func:`~bsr_lightning.synthetic_task.generate_preference_rows`). Held-out pairs keep gold labels, so
            ``val/accuracy`` stays accuracy against gold. 0 (the default) gives the unbiased task.
        **kwargs: the rest of :class:`PreferenceDataModule`'s arguments (``path`` is ignored).
    """

    def __init__(self, num_pairs: int = 2000, num_val_pairs: int = 400, length_bias: float = 0.0,
                 **kwargs) -> None:
        check(num_pairs >= 1, "data.num_pairs", f"must be at least 1, got {num_pairs}: a run with nothing to train "
                                                "is an error.")
        check(num_val_pairs >= 0, "data.num_val_pairs", f"must be 0 or more, got {num_val_pairs}.")
        check(0.0 <= length_bias <= 1.0, "data.length_bias", f"must be in [0, 1], got {length_bias}.")
        super().__init__(**kwargs)
        self.length_bias = length_bias
        self.num_pairs = num_pairs
        self.num_val_pairs = num_val_pairs

    def read_pairs(self, stage: str) -> list[PreferencePair]:
        count, seed = {"train": (self.num_pairs, self.hparams.seed),
                       "val": (self.num_val_pairs, self.hparams.seed + HELD_OUT_SEED_OFFSET)}.get(stage, (0, 0))
        rows = generate_preference_rows(count, seed, self.length_bias if stage == "train" else 0.0)
        self.counts[stage] = {"rows": len(rows), "bad_rows": 0}
        return [row_to_pair(row, i, f"synthetic[{stage}] row {i}") for i, row in enumerate(rows)]


class SyntheticPromptDataModule(PromptDataModule):
    """Prompts of the generated task, whose gold reward is computable.

    The ``len(TOPICS) * len(PROMPTS)`` distinct prompts are shuffled with ``seed``; the last ``num_val_prompts``
    are held out for validation.

    Args:
        num_val_prompts: held-out prompts.
        **kwargs: the rest of :class:`PromptDataModule`'s arguments (``path`` is ignored).
    """

    def __init__(self, num_val_prompts: int = 16, **kwargs) -> None:
        super().__init__(**kwargs)
        self.num_val_prompts = num_val_prompts

    def read_rows(self, stage: str):
        prompts = all_prompts()
        random.Random(self.hparams.seed).shuffle(prompts)
        cut = len(prompts) - self.num_val_prompts
        chosen = prompts[:cut] if stage == "train" else prompts[cut:]
        return [(f"synthetic[{stage}] row {i}", {"prompt": p}) for i, p in enumerate(chosen)]


class SyntheticSFTDataModule(SFTDataModule):
    """SFT examples of the generated task: each prompt with its pair's chosen (higher gold) response.

    Args:
        num_examples: training examples (and ``num_examples // 10`` validation ones, from another seed).
        **kwargs: the rest of :class:`SFTDataModule`'s arguments (``path`` is ignored).
    """

    def __init__(self, num_examples: int = 2000, **kwargs) -> None:
        super().__init__(**kwargs)
        self.num_examples = num_examples

    def read_rows(self, stage: str):
        count, seed = (self.num_examples, self.hparams.seed) if stage == "train" else (
            max(1, self.num_examples // 10), self.hparams.seed + HELD_OUT_SEED_OFFSET)
        rows = generate_preference_rows(count, seed)
        return [(f"synthetic[{stage}] row {i}", {"prompt": r["prompt"], "response": r["chosen"]})
                for i, r in enumerate(rows)]
