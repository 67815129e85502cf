"""The relapse probe's bookkeeping, with an error detector we control."""

import numpy as np
import torch

from core.adapters import FixManager
from core.generate import generate
from core.relapse import probe_cases, relapse_probe


def test_relapse_probe_counts_cases_that_showed_the_error_before(tiny_model):
    fixes = FixManager(tiny_model)
    params = fixes.create("strong", rank=4)
    with torch.no_grad():
        for p in params:
            p.add_(torch.randn(p.shape, generator=torch.Generator().manual_seed(0)) * 0.5)
    fixes.freeze()
    cases = probe_cases(tiny_model, "ireland flag", 1, [1, 4, 6], paraphrases=["irish flag"], guidance_values=[2.0])
    kinds = [c.kind for c in cases]
    assert kinds.count("seeds") == 2 and kinds.count("steps") == 2 and kinds.count("guidance") == 1
    assert kinds.count("paraphrase") == 4  # flagged seed + 3 error seeds

    # "Shows the error" = looks exactly like the base model's output for that case.
    with fixes.disabled():
        base = {(c.prompt, c.seed, c.steps, c.guidance): np.asarray(
            generate(tiny_model, c.prompt, [c.seed], c.steps, c.guidance)[0].image) for c in cases}
    current = {}

    def shows_error(prompt, image):
        key = current["case"]
        return bool(np.array_equal(np.asarray(image), base[key]))

    import core.relapse as relapse_mod

    real_render = relapse_mod._render

    def render(model, case):
        current["case"] = (case.prompt, case.seed, case.steps, case.guidance)
        return real_render(model, case)

    relapse_mod._render = render
    try:
        fixed = relapse_probe(tiny_model, fixes, ["strong"], cases, shows_error)
        unfixed = relapse_probe(tiny_model, fixes, [], cases, shows_error)
    finally:
        relapse_mod._render = real_render
    assert fixed["kinds"]["all"]["error_before"] == len(cases)
    assert fixed["kinds"]["all"]["relapse_fraction"] == 0.0  # the fix changed every case
    assert unfixed["kinds"]["all"]["relapse_fraction"] == 1.0  # no fix: everything "relapses"
    assert fixes.fixes["strong"].enabled  # the probe restores the fix state
