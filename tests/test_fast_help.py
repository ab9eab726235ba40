"""``python -m bsr_lightning --help`` without torch or Lightning, listing what the functions' docstrings say."""

import subprocess
import sys

from bsr_lightning.cli import derived_summaries
from bsr_lightning.commands import SUMMARIES, help_text


def test_summaries_equal_the_docstrings():
    assert derived_summaries() == SUMMARIES


def test_top_level_help_imports_neither_torch_nor_lightning():
    code = ("import runpy, sys; sys.argv = ['bsr_lightning', '--help']; "
            "runpy.run_module('bsr_lightning', run_name='__main__'); "
            "print('HEAVY', sorted(m for m in ('torch', 'lightning', 'transformers') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=True)
    assert out.stdout.startswith(help_text())
    assert "HEAVY []" in out.stdout


def test_package_names_load_on_first_use():
    import bsr_lightning

    assert sorted(bsr_lightning.__all__) == sorted([*bsr_lightning._MODULE_OF, "__version__"])
    for name in bsr_lightning._MODULE_OF:
        assert getattr(bsr_lightning, name).__name__ == name
    assert "SyntheticPreferenceDataModule" in dir(bsr_lightning)
    try:
        bsr_lightning.NoSuchThing  # noqa: B018
    except AttributeError as err:
        assert "NoSuchThing" in str(err)
    else:
        raise AssertionError("an unknown name must raise AttributeError")
