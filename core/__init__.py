"""Unlearn Studio engine: headless prompt-free instance unlearning for SD3-class models.

Layout: models/ (naming, building and loading pipelines), generate.py (seeded generation and
grids), adapters.py (fix lifecycle), unlearn/ (losses, weighting, surgery, training loop),
surrogates/, metrics/, runs.py (run folders), world/ (the embedded flags world), cli.py.
Nothing in core imports gradio.
"""

__version__ = "0.1.0"
