"""bench/faces_where_copies_go.py: how it names what a seed that copied a memorised face draws after a fix."""

import numpy as np
from PIL import Image

from bench.faces_where_copies_go import outcome
from core.world import faces as W


def _face_image(i: int) -> Image.Image:
    return Image.fromarray((W.faces()[i] * 255).round().astype(np.uint8)).convert("RGB")


def test_a_copy_that_stays_moves_to_another_face_or_keeps_only_a_likeness_is_named_so():
    same, other = W.MEMORISED[1], W.MEMORISED[2]
    m = W.match(_face_image(same))
    assert outcome(same, m, W.verdict(_face_image(same), m)) == "same face"
    m_other = W.match(_face_image(other))
    assert outcome(same, m_other, W.verdict(_face_image(other), m_other)) == "another face"
    # still nearest the face, but no longer a copy (a blurred or faded drawing of it)
    near = {"face": same, "copy": False, "score": 0.7, "margin": 0.1, "face_like": 0.6}
    assert outcome(same, near, {"verdict": "correct", "flag": "novel face"}) == "near miss"
    novel = {"face": 5, "copy": False, "score": 0.4, "margin": 0.1, "face_like": 0.6}
    assert outcome(same, novel, {"verdict": "correct", "flag": "novel face"}) == "novel face"
    assert outcome(same, novel | {"face_like": 0.1}, {"verdict": "other", "flag": "unclear"}) == "unclear"
