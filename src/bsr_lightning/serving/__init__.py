"""Serving trained models: a reward model over HTTP (``serve``), the counterpart of RLOO's ``HTTPReward``."""
