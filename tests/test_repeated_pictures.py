"""Compare's repeated pictures: what a model draws from several seeds, and where those seeds go with a fix."""

from __future__ import annotations

import json

import numpy as np
from PIL import Image

from core.compare import repeated_pictures
from core.judge import Descriptor

COLOURS = {"red": (200, 0, 0), "green": (0, 200, 0), "blue": (0, 0, 200), "grey": (90, 90, 90)}


def _by_colour(images):
    """A stand-in copy descriptor: one axis per colour, so same colour = near copy (similarity 1)."""
    names = list(COLOURS.values())
    return [np.eye(len(names))[names.index(im.getpixel((0, 0)))] for im in images]


def _images(names):
    return [Image.new("RGB", (4, 4), COLOURS[n]) for n in names]


def test_pictures_several_seeds_drew_are_followed_through_the_fix_largest_first():
    d = Descriptor("by-colour", _by_colour, 0.9)
    seeds = [10, 11, 12, 13, 14, 15, 16]
    before = _images(["red", "blue", "red", "blue", "green", "blue", "grey"])
    after = _images(["green", "blue", "green", "blue", "green", "red", "grey"])
    got = repeated_pictures(seeds, before, after, d)
    assert got == [{"first_seed": 11, "seeds_before": [11, 13, 15], "seeds_after": [11, 13]},
                   {"first_seed": 10, "seeds_before": [10, 12], "seeds_after": [15]}]  # green, grey: one seed each
    assert repeated_pictures(seeds, after, after, d)[0] == {"first_seed": 10, "seeds_before": [10, 12, 14],
                                                            "seeds_after": [10, 12, 14]}  # no fix: nothing moves


def test_compare_on_the_faces_world_names_the_faces_it_repeats_and_a_no_op_fix_moves_none(tmp_path):
    import pytest

    from core.models import load_model
    from core.models.loading import FACES_DIR
    from core.studio import Studio
    from core.world import faces as W

    if not (FACES_DIR / "model_index.json").exists():
        pytest.skip("assets/faces-ddpm not built (python scripts/build_faces_model.py)")
    studio = Studio(load_model("faces"), data_dir=tmp_path, restore=False, persist_state=False)
    studio.fixes.create("fix", rank=2)  # a fresh LoRA changes nothing: every picture keeps its seeds
    cmps, out = studio.compare([""], range(64), ["fix"])
    pictures = cmps[0].summary["repeated_pictures"]
    # the repeated pictures are memorised faces (the world's matcher only checks here)
    shown = {r["first_seed"]: W.verdict(cmps[0].before[r["first_seed"]].image)["flag"] for r in pictures}
    assert len(pictures) >= 2 and all(f.startswith("face") for f in shown.values()), shown
    assert all(r["seeds_before"] == r["seeds_after"] and len(r["seeds_before"]) >= 2 for r in pictures)
    saved = json.loads((out / "metrics.json").read_text())
    assert saved["prompts"][""]["summary"]["repeated_pictures"] == pictures
