"""Preference data: formats, loading, encoding, batching and DataModules."""

from bsr_lightning.data.formats import PreferencePair, RowError
from bsr_lightning.data.preference import PreferenceDataModule
from bsr_lightning.data.synthetic import SyntheticPreferenceDataModule

__all__ = ["PreferenceDataModule", "PreferencePair", "RowError", "SyntheticPreferenceDataModule"]
