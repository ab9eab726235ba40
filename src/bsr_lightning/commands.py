"""The list of subcommands for ``python -m bsr_lightning --help`` without importing torch or Lightning (stdlib only).

``cli.COMMAND_FUNCTIONS``' docstrings are the source of the summaries; a test checks that :data:`SUMMARIES` equals
what they say, so this list cannot drift from them.
"""

from __future__ import annotations

SUMMARIES = {
    "fit": "train a model from a config (LightningCLI): reward model, SFT or RLOO policy",
    "validate": "run the validation loop of a config or checkpoint",
    "test": "run the test loop",
    "predict": "run the predict loop",
}
"""Every subcommand and its one-line summary, in the order ``--help`` lists them (filled in below)."""

SUMMARIES.update({
    "export": ("Export the model in a Lightning checkpoint to a Hugging Face directory, with a model card (README.md) "
               "and the resolved training config"),
    "evaluate": "Evaluate a reward model on one dataset",
    "diagnose": "Compare hidden-state statistics of reward models on one preference dataset",
    "scenarios": "Write train.jsonl, val1.jsonl..val4.jsonl and report.json into output_dir",
    "sweep": ("Train every regularizer for every seed on the scenario training pairs and tabulate the four "
              "scenarios"),
    "plan": "parameter counts and memory per device of a fit config, without loading weights",
    "serve": "Serve a reward model over HTTP (POST /score, GET /health)",
})


def help_text() -> str:
    """The top-level help: every subcommand with its summary."""
    width = max(map(len, SUMMARIES))
    lines = ["usage: python -m bsr_lightning COMMAND [--help] [options]", "", "commands:"]
    lines += [f"  {name:<{width}}  {text}" for name, text in SUMMARIES.items()]
    lines += ["", "`python -m bsr_lightning COMMAND --help` shows a command's options."]
    return "\n".join(lines)


def is_top_level_help(argv: list[str]) -> bool:
    """True for ``python -m bsr_lightning``, ``--help`` or ``-h`` alone."""
    return not argv or argv[0] in ("-h", "--help")
