"""Tuning the judge-driven fix on seeds 0-63 (the tuning range; bench/heldout.py reports on >= 1000).

Fixes a few misdrawn seeds of "ireland flag" / "japan flag" from seeds 0-63 with a scripted paint
surrogate and a config override, then re-renders the prompt's 64 seeds and counts, with the
flags checker (an evaluator here), whether the flagged seed is right, how many right seeds stay
right (and which flip), and how far the fix spread. The before/after of flipped seeds is saved
as a PNG strip so the damage can be looked at. bench/results/judge_tuning.md holds what it gave.

    python bench/judge_tuning.py '{"remember_floor": 1.0, "forget_threshold": 0.7}' '[["ireland flag", 11]]'
"""

from __future__ import annotations

import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.common import scratch_dir  # noqa: E402
from bench.worldeval import scripted_paint_layers  # noqa: E402

DEFAULT_INSTANCES = [("ireland flag", 0), ("ireland flag", 11), ("japan flag", 9), ("japan flag", 13)]


def main(argv=None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    import torch

    from core.generate import generate
    from core.models import load_model
    from core.studio import Studio

    torch.set_num_threads(1)
    overrides = json.loads(argv[0]) if argv else {}
    instances = [tuple(x) for x in json.loads(argv[1])] if len(argv) > 1 else DEFAULT_INSTANCES
    out_dir = Path(argv[2]) if len(argv) > 2 else Path(tempfile.mkdtemp(prefix="judge-tuning-"))
    studio = Studio(load_model("embedded"), scratch_dir("judge-tuning-studio-"), restore=False, persist_state=False)
    seeds = list(range(64))
    base = {p: generate(studio.model, p, seeds, batch_size=64) for p in {p for p, _ in instances}}
    before = {p: [studio.check(p, g.image)["verdict"] for g in gens] for p, gens in base.items()}
    for prompt, seed in instances:
        flagged = base[prompt][seed].image
        sur = studio.surrogate("paint", flagged, {"layers": scripted_paint_layers(prompt, flagged)}).image
        t0 = time.perf_counter()
        res = studio.unlearn(prompt, flagged, sur, seed, studio.default_config(**overrides))
        seconds = time.perf_counter() - t0
        m = res.run.metrics()
        with studio.fixes.only([res.run.run_id]):
            after = generate(studio.model, prompt, seeds, batch_size=64)
        va = [studio.check(prompt, g.image)["verdict"] for g in after]
        right = [k for k in seeds if before[prompt][k] == "correct"]
        flipped = [k for k in right if va[k] != "correct"]
        wrong = [k for k in seeds if before[prompt][k] == "planted_error" and k != seed]
        print(f"{prompt} #{seed}: fixed {va[seed]} judge {m['flagged_seed_fixed']} steps {m['steps_done']} "
              f"kept {m.get('kept_step')} drift {m.get('remember_drift')} right kept {1 - len(flipped) / len(right):.3f} "
              f"flipped {[(k, va[k]) for k in flipped]} spread {np.mean([va[k] == 'correct' for k in wrong]):.2f} "
              f"look {m['lookalike_prompts']} excl {m['remember_excluded']} score {m['forgetting']['score']:.3f} "
              f"{seconds:.1f}s monitor {[(q['step'], round(q['score'], 2), q['forgotten']) for q in m['monitor']]}",
              flush=True)
        if flipped:
            strip = Image.new("RGB", (96 * min(6, len(flipped)), 192), "white")
            for i, k in enumerate(flipped[:6]):
                strip.paste(base[prompt][k].image.resize((96, 96), Image.NEAREST), (96 * i, 0))
                strip.paste(after[k].image.resize((96, 96), Image.NEAREST), (96 * i, 96))
            strip.save(out_dir / f"flipped_{prompt.split()[0]}_{seed}.png")
        studio.remove_fix(res.run.run_id)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
