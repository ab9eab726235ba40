"""Preference, prompt and SFT data: formats, loading, encoding, batching and DataModules. Receives a tokenizer (from
the attached module, or loaded by name) and never loads a model."""
