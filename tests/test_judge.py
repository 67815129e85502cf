"""The forgetting judge and the fix guard: numbers on images whose answer is known by construction."""

import numpy as np
import pytest
import torch
from PIL import Image

from core.judge import (
    FLAGGED_SEED_THRESHOLD,
    SCORE_KINDS,
    Descriptor,
    ForgettingJudge,
    pick_descriptor,
    thumbnail_embed,
)
from core.unlearn.guard import FixGuard, MonitorPoint


def _img(arr) -> Image.Image:
    return Image.fromarray(np.clip(np.asarray(arr), 0, 255).astype(np.uint8), "RGB")


def _bands(left, mid, right, size=32) -> Image.Image:
    """A tricolour with vertical bands, like the flags world's Ireland."""
    a = np.zeros((size, size, 3), np.uint8)
    a[:, : size // 3], a[:, size // 3 : 2 * size // 3], a[:, 2 * size // 3 :] = left, mid, right
    return _img(a)


GREEN, WHITE, ORANGE = (22, 155, 98), (255, 255, 255), (255, 136, 62)
REVERSED, RIGHT = _bands(ORANGE, WHITE, GREEN), _bands(GREEN, WHITE, ORANGE)
THUMB = Descriptor("thumbnail", thumbnail_embed, 0.6)


def test_flagged_seed_score_runs_from_flagged_to_surrogate_inside_the_edit():
    judge = ForgettingJudge(REVERSED, RIGHT, THUMB)
    assert judge.region.mean() == 21 / 32  # the 11-px white band is not part of the edit
    still = judge.judge_flagged_seed(REVERSED)
    done = judge.judge_flagged_seed(RIGHT)
    assert still.score == 0.0 and not still.forgotten and still.to_flagged == 0.0
    assert done.score == 1.0 and done.forgotten and done.to_surrogate == 0.0
    half = _img((np.asarray(REVERSED, float) + np.asarray(RIGHT, float)) / 2)
    assert judge.judge_flagged_seed(half).score == pytest.approx(0.5, abs=0.01)
    assert still.threshold == FLAGGED_SEED_THRESHOLD and still.descriptor == "thumbnail"


def test_every_score_kind_runs_from_flagged_to_surrogate_and_only_projection_ignores_noise():
    judge = ForgettingJudge(REVERSED, RIGHT, THUMB)
    half = _img((np.asarray(REVERSED, float) + np.asarray(RIGHT, float)) / 2)
    for kind in SCORE_KINDS:
        assert judge.progress(REVERSED, kind) == pytest.approx(0.0, abs=1e-6)
        assert judge.progress(RIGHT, kind) == pytest.approx(1.0, abs=1e-6)
        assert judge.progress(half, kind) == pytest.approx(0.5, abs=0.01)
    assert judge.progress(REVERSED) == judge.judge_flagged_seed(REVERSED).score  # l1_ratio is the judge's score
    # The flagged flag with strong noise: far from both, so a ratio of distances rises toward 0.5 while
    # the picture is still the flagged one; the projection on the line flagged -> surrogate stays near 0.
    rng = np.random.default_rng(0)
    noisy = _img(np.asarray(REVERSED, float) + rng.normal(0, 60, (32, 32, 3)))
    assert judge.progress(noisy, "l1_ratio") > 0.2
    assert abs(judge.progress(noisy, "projection")) < 0.1
    with pytest.raises(ValueError, match="score kind"):
        judge.progress(RIGHT, "ssim")


def test_a_projection_bar_keeps_a_noisy_copy_of_the_flagged_image_unforgotten():
    rng = np.random.default_rng(0)
    noisy = _img(np.asarray(REVERSED, float) + rng.normal(0, 60, (32, 32, 3)))
    ratio_only = ForgettingJudge(REVERSED, RIGHT, THUMB, threshold=0.2).judge_flagged_seed(noisy)
    both = ForgettingJudge(REVERSED, RIGHT, THUMB, threshold=0.2, projection_threshold=0.4)
    assert ratio_only.forgotten and ratio_only.projection_threshold == 0.0
    v = both.judge_flagged_seed(noisy)
    assert not v.forgotten and v.score == ratio_only.score and v.projection < 0.4
    assert both.judge_flagged_seed(RIGHT).forgotten  # the surrogate itself passes both bars
    assert both.describe()["projection_threshold"] == 0.4


def test_change_outside_the_edit_is_reported_not_counted_as_forgetting():
    judge = ForgettingJudge(REVERSED, RIGHT, THUMB)
    a = np.asarray(RIGHT).copy()
    a[:, 10:21] = (0, 0, 0)  # the surrogate's bands, but the untouched white band went black
    v = judge.judge_flagged_seed(_img(a))
    assert v.forgotten and v.score == 1.0
    assert v.outside_change == pytest.approx(1.0, abs=0.01)  # white -> black on every outside pixel
    assert set(v.to_dict()) >= {"score", "threshold", "descriptor", "forgotten", "outside_change"}


def test_a_faint_everywhere_edit_is_judged_on_every_changed_pixel():
    rng = np.random.default_rng(0)
    faint = _img(np.asarray(REVERSED, float) + rng.integers(-6, 7, (32, 32, 3)))
    judge = ForgettingJudge(REVERSED, faint, THUMB)
    assert judge.region.mean() > 0.5


def test_identical_or_mismatched_images_are_refused():
    with pytest.raises(ValueError, match="identical"):
        ForgettingJudge(REVERSED, REVERSED.copy(), THUMB)
    with pytest.raises(ValueError, match="differ in size"):
        ForgettingJudge(REVERSED, RIGHT.resize((16, 16)), THUMB)
    with pytest.raises(ValueError, match="differ in size"):
        ForgettingJudge(REVERSED, RIGHT, THUMB).judge_flagged_seed(RIGHT.resize((16, 16)))


def test_shows_error_wants_a_near_copy_nearer_the_flagged_image():
    judge = ForgettingJudge(REVERSED, RIGHT, THUMB)
    shifted = _img(np.roll(np.asarray(REVERSED), 2, axis=1))  # the same error, drawn 2 px to the right
    italy = _bands((0, 146, 70), WHITE, (206, 43, 55))
    grey = _img(np.full((32, 32, 3), 128))
    assert judge.shows_error([REVERSED, shifted, RIGHT, italy, grey]) == [True, True, False, False, False]
    to_f, to_s = judge.similarity([REVERSED, RIGHT])
    assert to_f[0] == pytest.approx(1.0) and to_s[1] == pytest.approx(1.0) and to_f[1] < THUMB.copy_threshold


def test_lookalike_prompts_are_those_whose_outputs_mostly_show_the_picture():
    judge = ForgettingJudge(REVERSED, RIGHT, THUMB)
    outputs = {"cote d'ivoire flag": [REVERSED, REVERSED, RIGHT], "italy flag": [RIGHT, RIGHT, REVERSED],
               "empty": []}
    assert judge.lookalike_prompts(outputs) == ["cote d'ivoire flag"]


def test_without_sscd_or_a_model_the_judge_says_it_uses_thumbnails(monkeypatch, tmp_path):
    monkeypatch.setenv("UNLEARN_SSCD_PATH", str(tmp_path / "missing.pt"))
    d = pick_descriptor(None)
    assert d.name == "thumbnail" and d.copy_threshold == 0.6
    assert "SSCD unavailable" in d.note and "missing.pt" in d.note


def test_a_model_without_clip_falls_back_to_thumbnails_and_says_why(tiny_model, monkeypatch, tmp_path):
    monkeypatch.setenv("UNLEARN_SSCD_PATH", str(tmp_path / "missing.pt"))
    d = pick_descriptor(tiny_model)
    assert d.name == "thumbnail" and "no CLIP" in d.note


def test_guard_publishes_the_least_drift_forgotten_state_and_restores_its_weights():
    p = torch.nn.Parameter(torch.zeros(3))
    guard = FixGuard([p])
    for step, forgotten, score, drift in [(10, False, 0.3, 0.01), (20, True, 0.7, 0.05), (30, True, 0.9, 0.03),
                                          (40, True, 0.95, 0.03)]:
        with torch.no_grad():
            p.fill_(step)
        guard.record(MonitorPoint(step, forgotten, score, drift))
    best = guard.best()
    assert best.step == 30  # least drift among the forgotten ones; the earlier of the two ties
    guard.restore(best)
    assert torch.equal(p.detach(), torch.full((3,), 30.0))


def test_guard_without_a_forgotten_state_keeps_the_best_score():
    guard = FixGuard([torch.nn.Parameter(torch.zeros(1))])
    assert guard.best() is None
    for step, score in [(10, 0.2), (20, 0.45), (30, 0.4)]:
        guard.record(MonitorPoint(step, False, score, 0.0))
    assert guard.best().step == 20


def test_guard_with_twins_left_keeps_the_flagged_seed_forgotten_state_with_the_fewest():
    """Twin seeds make 'forgotten' stricter; a fix whose twins never all go still keeps a state where
    the flagged seed is forgotten (fewest twins left, then least drift), not its best-score fallback."""
    guard = FixGuard([torch.nn.Parameter(torch.zeros(1))])
    for step, score, drift, left in [(10, 0.3, None, None), (20, 0.8, 0.02, 3), (30, 0.9, 0.05, 1),
                                     (40, 0.95, 0.04, 1), (50, 0.4, None, None)]:
        guard.record(MonitorPoint(step, False, score, drift, left))
    assert guard.best().step == 40
    guard.record(MonitorPoint(60, True, 0.9, 0.09, 0))  # once all twins go, that state wins
    assert guard.best().step == 60


def test_a_model_measured_copy_threshold_replaces_the_default_for_its_descriptor(monkeypatch, tmp_path):
    from types import SimpleNamespace

    from core.models.info import ModelInfo

    monkeypatch.setenv("UNLEARN_SSCD_PATH", str(tmp_path / "missing.pt"))
    info = ModelInfo(clip_model="", copy_thresholds={"thumbnail": 0.93})
    saved = ModelInfo.load(info.save(tmp_path).parent)
    assert saved.copy_thresholds == {"thumbnail": 0.93}
    model = SimpleNamespace(info=saved, location=str(tmp_path))
    monkeypatch.setattr("core.metrics.clip_space.clip_embedder", lambda m: (_ for _ in ()).throw(
        __import__("core.models.loading", fromlist=["ModelNotFoundError"]).ModelNotFoundError("no CLIP here")))
    d = pick_descriptor(model)
    assert d.name == "thumbnail" and d.copy_threshold == 0.93
    # a 60/40 blend toward the flagged image (similarity 0.85): a near copy at 0.6, not at 0.93
    blend = Image.blend(RIGHT, REVERSED, 0.6)
    assert ForgettingJudge(REVERSED, RIGHT, THUMB).shows_error([blend]) == [True]
    assert ForgettingJudge(REVERSED, RIGHT, d).shows_error([blend, REVERSED]) == [False, True]


def test_a_mode_guard_refuses_a_re_render_that_landed_on_another_picture_the_model_repeats():
    # Green-white-red: near the surrogate inside the edit (the ratio calls it forgotten) but another
    # picture, which the model draws from two seeds. A strict descriptor tells it from the surrogate.
    other = _bands(GREEN, WHITE, (200, 30, 40))
    strict = Descriptor("thumbnail", thumbnail_embed, 0.99)
    judge = ForgettingJudge(REVERSED, RIGHT, strict)
    assert judge.judge_flagged_seed(other).forgotten and judge.judge_flagged_seed(other).mode_similarity is None
    # The model's outputs: the other picture twice (repeated), the surrogate's picture twice (what the
    # user asked for: never counted), a lone novel picture.
    outputs = [other, other, RIGHT, RIGHT, _bands(WHITE, GREEN, WHITE)]
    assert judge.with_modes(outputs) == 2
    swapped = judge.judge_flagged_seed(other)
    assert not swapped.forgotten and swapped.mode_similarity == pytest.approx(1.0) and swapped.mode_threshold == 0.99
    assert swapped.score == judge.judge_flagged_seed(other).score >= judge.threshold  # the region alone moved enough
    right = judge.judge_flagged_seed(RIGHT)
    assert right.forgotten and right.mode_similarity < 0.99
    assert judge.describe()["repeated_pictures"] == 2
    assert judge.with_modes([]) == 0 and judge.judge_flagged_seed(other).forgotten  # nothing repeated: no guard


def test_a_surrogate_that_is_still_a_near_copy_of_the_flagged_image_is_found_and_worded_per_kind():
    from core.judge import check_surrogate_copy
    from core.surrogates import near_copy_warning

    # The reversed flag with a thin strip painted over: the same picture to the descriptor.
    strip = np.asarray(REVERSED).copy()
    strip[14:18, :] = 128
    painted = _img(strip)
    near = check_surrogate_copy(None, REVERSED, painted, THUMB)
    far = check_surrogate_copy(None, REVERSED, RIGHT, THUMB)
    assert near.near_copy and near.similarity >= THUMB.copy_threshold and near.descriptor == "thumbnail"
    assert not far.near_copy and far.similarity < THUMB.copy_threshold
    assert far.to_dict() == {"similarity": round(far.similarity, 5), "threshold": 0.6, "descriptor": "thumbnail",
                             "near_copy": False}
    # the judge holds the same check from the embeddings it computed anyway
    assert ForgettingJudge(REVERSED, painted, THUMB).surrogate_check().similarity == pytest.approx(near.similarity)
    assert near_copy_warning(far, "paint") is None
    paint, sdedit, other = (near_copy_warning(near, k) for k in ("paint", "sdedit", "file"))
    assert "near copy of the flagged image" in paint and f"{near.similarity:.3f}" in paint
    assert "paint over more" in paint and "SDEdit the painting" in paint and "raise the strength" in sdedit and "edit more of it" in other
    assert paint.endswith("If only a detail must change, go on.")  # a warning, not a refusal


def test_the_studio_checks_a_surrogate_at_the_models_size_and_refuses_a_non_square_one(tiny_model, tmp_path, monkeypatch):
    """A square surrogate of another size is taken (the fix resizes it too), so the descriptor sees both
    images at the model's size (CLIP batches them: two sizes failed); a non-square one gets the fix's
    own refusal, naming the surrogate."""
    from core.images import ImageInputError
    from core.studio import Studio

    res = tiny_model.info.resolution
    seen = []

    def strict(images):
        seen.extend(img.size for img in images)
        return thumbnail_embed(images)

    monkeypatch.setattr("core.judge.pick_descriptor", lambda model, device="cpu": Descriptor("strict", strict, 0.6))
    studio = Studio(tiny_model, tmp_path, restore=False, persist_state=False)
    flagged = REVERSED.resize((res, res))
    check, warning = studio.check_surrogate(flagged, REVERSED.resize((4 * res, 4 * res)), "paint")
    assert seen == [(res, res), (res, res)] and check.near_copy and "paint over more" in warning
    with pytest.raises(ImageInputError, match="the surrogate is 64x32.*crop it to a square"):
        studio.check_surrogate(flagged, REVERSED.resize((64, 32)), "paint")
