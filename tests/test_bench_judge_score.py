"""bench/faces_judge_score.py: the judge's two bars together, counted per render and per fix."""

from bench import faces_judge_score as JS


def _fix(*renders):
    return {"surrogate": "other_face", "renders": [
        {"step": 2 * i + 2, "copy": copy, "l1_ratio": ratio, "projection_centred": pc,
         **{k: 0.0 for k in ("l2_ratio", "projection")}} for i, (copy, ratio, pc) in enumerate(renders)]}


def test_both_bars_call_a_render_forgotten_only_when_the_ratio_and_the_projection_pass():
    # fix 1: a blurred copy passes the ratio but not the projection, then a real change passes both;
    # fix 2: the projection alone is high while the ratio is under its bar: never called
    fixes = [_fix((True, 0.55, 0.1), (False, 0.6, 0.5)), _fix((True, 0.4, 0.9))]
    rows = {(r["score"], r["bar"]): r for r in JS.summarise(fixes)}
    both = rows[(JS.BOTH, 0.4)]
    assert (both["first_call_right"], both["first_call_wrong"], both["never_called"]) == (1, 0, 1)
    assert both["precision"] == 1.0
    ratio = rows[("l1_ratio", 0.5)]  # the ratio alone stops fix 1 on the copy
    assert (ratio["first_call_right"], ratio["first_call_wrong"], ratio["never_called"]) == (0, 1, 1)
