"""Evaluation of trained reward models: metrics, the ``evaluate`` formats (pairs, multi, rmbench) and hidden-state
diagnostics."""
