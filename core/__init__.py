"""Unlearn Studio engine: headless prompt-free instance unlearning for SD3-class models.

Layout: models/ (naming, building and loading pipelines), generate.py (seeded generation and
grids), adapters.py (fix lifecycle), unlearn/ (losses, weighting, surgery, training loop),
surrogates/ (makers with typed parameters), requests.py (typed requests per operation),
validation.py (field checks), metrics/, runs.py (run folders), world/ (the embedded flags world),
cli.py. Nothing in core imports gradio or gui/ (tests/test_boundaries.py checks it).
"""

__version__ = "0.1.0"
