"""NaN guards, determinism, safe loading, and property-based fuzzing of the data path."""

import csv
import inspect
import pickle

import lightning as L
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bsr_lightning import Backbone, Optimization, PreferenceDataModule, RewardModel, RLOOPolicy, SFTModel
from bsr_lightning.backbones.tokenizers import load_tokenizer
from bsr_lightning.cli import cli_main
from bsr_lightning.data.chat import parse_chat_row
from bsr_lightning.data.encoding import PairEncoder
from bsr_lightning.data.formats import RowError, row_to_pair
from bsr_lightning.reward.regularizers import Regularizer
from bsr_lightning.training.checkpoints import load_module_from_checkpoint


class NaNOnSecondBatch(Regularizer):
    def __init__(self) -> None:
        self.calls = 0

    def penalty(self, chosen, rejected):
        self.calls += 1
        return chosen.new_tensor(float("nan") if self.calls == 2 else 0.0)


class NaNGradientOnSecondBatch(NaNOnSecondBatch):
    """A finite loss (0) whose gradient is NaN: d sqrt(x)/dx at x = 0 is inf, times 0."""

    def penalty(self, chosen, rejected):
        self.calls += 1
        return torch.sqrt(chosen * 0).sum() if self.calls == 2 else chosen.new_tensor(0.0)


def fit_with_nan(tiny_llama, synthetic_jsonl, tmp_path, policy: str, regularizer=NaNOnSecondBatch,
                 precision: str = "32-true") -> RewardModel:
    L.seed_everything(0)
    module = RewardModel(Backbone(tiny_llama), regularizer=regularizer(), optimization=Optimization(lr=1e-3),
                         on_nonfinite=policy)
    data = PreferenceDataModule(path=synthetic_jsonl, batch_size=4, val_fraction=0.0, max_length=128)
    trainer = L.Trainer(max_steps=4, logger=False, enable_checkpointing=False, enable_progress_bar=False,
                        enable_model_summary=False, default_root_dir=tmp_path, precision=precision)
    trainer.fit(module, data)
    return module


def test_nan_loss_stops_with_step_and_row_ids(tiny_llama, synthetic_jsonl, tmp_path):
    with pytest.raises(FloatingPointError, match=r"step 1: non-finite loss in the batch with row ids \[\d+, \d+"):
        fit_with_nan(tiny_llama, synthetic_jsonl, tmp_path, "error")


def test_nan_batch_is_skipped_and_counted_when_asked(tiny_llama, synthetic_jsonl, tmp_path):
    module = fit_with_nan(tiny_llama, synthetic_jsonl, tmp_path, "skip")
    assert module.guard.skipped == 1 and module.trainer.global_step == 4  # 5 batches seen, 4 optimizer steps
    assert all(torch.isfinite(p).all() for p in module.parameters())


def test_nan_gradients_stop_the_run(tiny_llama, synthetic_jsonl, tmp_path):
    with pytest.raises(FloatingPointError, match="step 1: non-finite gradients"):
        fit_with_nan(tiny_llama, synthetic_jsonl, tmp_path, "error", NaNGradientOnSecondBatch)


@pytest.mark.parametrize("precision", ["32-true", "bf16-mixed"])
def test_nan_gradient_step_is_skipped_and_weights_stay_finite(tiny_llama, synthetic_jsonl, tmp_path, precision):
    # without a gradient scaler (fp32, bf16) nothing else would stop NaN gradients reaching the weights
    module = fit_with_nan(tiny_llama, synthetic_jsonl, tmp_path, "skip", NaNGradientOnSecondBatch, precision)
    assert module.guard.skipped == 1 and module.trainer.global_step == 4
    assert all(torch.isfinite(p).all() for p in module.parameters())


def test_same_seed_and_config_give_the_same_metrics(tiny_llama, synthetic_jsonl, tmp_path):
    def run(root):
        cli_main(["fit", "--model", "bsr_lightning.RewardModel", "--model.backbone.name", tiny_llama,
                  "--model.optimization.lr", "1e-3", "--data", "bsr_lightning.PreferenceDataModule",
                  "--data.path", synthetic_jsonl,
                  "--data.batch_size", "4", "--data.val_fraction", "0.25", "--trainer.max_epochs", "2",
                  "--trainer.default_root_dir", str(root), "--trainer.enable_progress_bar", "false",
                  "--trainer.log_every_n_steps", "1", "--seed_everything", "3"])
        return list(csv.DictReader(open(next(root.rglob("metrics.csv")))))

    first, second = run(tmp_path / "a"), run(tmp_path / "b")
    assert len(first) > 10 and first == second


class Payload:
    def __reduce__(self):
        return (print, ("this code ran while loading",))


def test_checkpoints_load_without_running_pickled_code(tmp_path):
    path = tmp_path / "evil.ckpt"
    with open(path, "wb") as handle:
        pickle.dump({"hyper_parameters": {}, "state_dict": {}, "x": Payload()}, handle)
    from bsr_lightning.errors import UserError

    with pytest.raises(UserError, match="holds pickled Python objects, which are not loaded"):
        load_module_from_checkpoint(str(path))


@pytest.mark.parametrize("cls", [RewardModel, SFTModel, RLOOPolicy])
def test_remote_code_is_off_unless_asked(cls):
    assert inspect.signature(cls.__init__).parameters["backbone"].annotation in (Backbone, "Backbone")
    assert Backbone("x").trust_remote_code is False


# ----- property-based fuzzing of the data path -----

ROLES = st.sampled_from(["user", "assistant", "system", "tool", "", "USER"])
TEXT = st.one_of(st.text(max_size=40), st.text(alphabet="ab \n\t", max_size=4000), st.just(""),
                 st.just("\n\nHuman: hi\n\nAssistant: hello"))
MESSAGE = st.one_of(st.fixed_dictionaries({"role": ROLES, "content": st.one_of(TEXT, st.integers(), st.none())}),
                    st.dictionaries(st.text(max_size=5), st.text(max_size=5), max_size=2), st.text(max_size=5))
VALUE = st.one_of(TEXT, st.integers(), st.floats(), st.none(), st.lists(MESSAGE, max_size=4), st.booleans())
ROW = st.one_of(st.fixed_dictionaries({"chosen": VALUE, "rejected": VALUE},
                                      optional={"prompt": VALUE, "margin": VALUE}),
                st.dictionaries(st.sampled_from(["prompt", "messages", "response", "chosen", "x"]), VALUE, max_size=3),
                st.lists(st.integers(), max_size=2), st.text(max_size=5))


def contents(messages) -> list[str]:
    return [m["content"] for m in messages]


@settings(max_examples=300, deadline=None, derandomize=True, suppress_health_check=[HealthCheck.too_slow])
@given(row=ROW)
def test_any_row_is_a_clean_pair_or_a_located_error(row):
    try:
        pair = row_to_pair(row, 7, "data.jsonl:8")
    except RowError as err:
        assert str(err).startswith("data.jsonl:8: ") and err.problem
        return
    texts = contents(pair.prompt + pair.chosen + pair.rejected)
    assert all(isinstance(t, str) and t.strip() for t in texts)
    source = " ".join(str(v) for v in row.values()) if isinstance(row, dict) else str(row)
    for message in pair.prompt + pair.chosen + pair.rejected:  # nothing invented: every text comes from the row
        assert message["content"].strip() in source or message["content"] in str(row)


@settings(max_examples=200, deadline=None, derandomize=True, suppress_health_check=[HealthCheck.too_slow])
@given(row=ROW, with_response=st.booleans())
def test_any_row_is_a_clean_chat_example_or_a_located_error(row, with_response):
    try:
        example = parse_chat_row(row, 3, "prompts.jsonl:4", with_response)
    except RowError as err:
        assert str(err).startswith("prompts.jsonl:4: ")
        return
    assert example.prompt and example.prompt[-1]["role"] == "user"
    assert bool(example.response) == with_response


TOKENIZER = None


@settings(max_examples=100, deadline=None, derandomize=True, suppress_health_check=[HealthCheck.too_slow])
@given(row=ROW, max_length=st.integers(8, 64), overlong=st.sampled_from(["drop", "truncate_left", "truncate_right"]))
def test_encoding_valid_pairs_never_crashes_and_respects_max_length(row, max_length, overlong):
    global TOKENIZER
    TOKENIZER = TOKENIZER or load_tokenizer("tiny:synthetic")
    try:
        pair = row_to_pair(row, 0, "f:1")
    except RowError:
        return
    encoded, counts = PairEncoder(TOKENIZER, max_length, overlong).encode([pair], "fuzz")
    assert counts["pairs"] == 1 and len(encoded) + counts["dropped_overlong"] + counts[
        "dropped_identical_after_truncation"] == 1
    for e in encoded:
        assert len(e.chosen) <= max_length and len(e.rejected) <= max_length
