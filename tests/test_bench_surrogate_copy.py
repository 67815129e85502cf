"""bench/surrogate_copy_check.py: the near-copy warning counted against the ground truth."""

import pytest

from bench import surrogate_copy_check as SC


def _row(world, label, warned, still, verdict, similarity=0.9):
    return {"world": world, "prompt": "", "seed": 1, "surrogate": label, "similarity": similarity, "threshold": 0.965,
            "descriptor": "thumbnail", "warned": warned, "still_error": still, "verdict": verdict}


def test_table_and_totals_count_warned_against_still_the_error():
    rows = [_row("faces", "band", True, True, "planted_error"), _row("faces", "band", True, False, "correct"),
            _row("faces", "band", False, True, "planted_error"), _row("faces", "other", False, False, "correct")]
    table = SC.table(rows)
    assert "| faces | band | 3 | 2/3 | 2/3 | 1/2 | 1/2 | planted_error 1, correct 1 |" in table
    assert "| faces | other | 1 | 0/1 | 0/1 | - | - | - |" in table
    totals = SC.totals(rows)
    assert "warned 2, of which still the error 1 (precision 0.50)" in totals
    assert "still the error 2, of which warned 1 (recall 0.50)" in totals
    assert "right by the ground truth 2, of which warned 1" in totals


def test_on_the_shipped_faces_model_the_eye_band_is_warned_and_still_the_face():
    from core.models.loading import FACES_DIR

    if not (FACES_DIR / "model_index.json").exists():
        pytest.skip("assets/faces-ddpm not built (python scripts/build_faces_model.py)")
    _, rows = SC.measure("faces", list(range(32)), 2)
    band = [r for r in rows if r["surrogate"] == "paint band rows 10-16"]
    other = [r for r in rows if r["surrogate"].startswith("another face")]
    assert len(band) == len(other) == 2
    assert all(r["warned"] and r["still_error"] for r in band)
    assert not any(r["warned"] or r["still_error"] for r in other)
