"""A config typo is one short message with the closest valid key (issue 36, finding 6), exit status 2."""

import pytest

from bsr_lightning.config_errors import short_message
from conftest import REPO, run_main

QUICKSTART = str(REPO / "configs/quickstart.yaml")


def typo_config(tmp_path):
    path = tmp_path / "typo.yaml"
    path.write_text((REPO / "configs/quickstart.yaml").read_text().replace("weight:", "wieght:"))
    return str(path)


@pytest.mark.parametrize("how", ["yaml", "override"])
def test_a_nested_typo_names_the_class_and_the_closest_key(how, tmp_path, monkeypatch, capsys):
    args = (["fit", "--config", typo_config(tmp_path)] if how == "yaml" else
            ["fit", "--config", QUICKSTART, "--model.regularizer.init_args.wieght", "0.1"])
    code, out, err = run_main(args, monkeypatch, capsys)
    assert code == 2
    assert "model.regularizer (bsr_lightning.reward.regularizers.BatchSumToZero): no option 'wieght'; did you mean " \
           "'weight'?" in err
    assert "python -m bsr_lightning fit --help" in err and "__main__.py" not in err
    assert len(err.strip().splitlines()) <= 4 and "usage:" not in err and "Union" not in err


def test_a_top_level_typo_gets_the_closest_option(tmp_path, monkeypatch, capsys):
    code, _, err = run_main(["fit", "--config", QUICKSTART, "--trainer.max_stepz", "3"], monkeypatch, capsys)
    assert code == 2
    assert "no option 'trainer.max_stepz'; did you mean 'trainer.max_steps'?" in err
    assert len(err.strip().splitlines()) <= 3


class FakeParser:
    prog = "python -m bsr_lightning fit [options]"
    _actions = []


def test_short_message_by_hand():
    message = ('Parser key "model":\n  Errors:\n    - Problem with given class_path \'no.such.Module\':\n'
               '        Option \'lr\' is not accepted\n')
    assert short_message(message, FakeParser()) == (
        "model (no.such.Module): no option 'lr'.\n`python -m bsr_lightning fit --help` lists every option.")
    other = "Something else went wrong\nsecond line\n\n" + "more\n" * 20
    assert short_message(other, FakeParser()).splitlines() == ["Something else went wrong", "second line", "more",
                                                               "more", "more", "more"]
