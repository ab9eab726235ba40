"""Experiments built on training and evaluation: the paper's four over-optimization scenarios and the regularizer
sweep over them."""
