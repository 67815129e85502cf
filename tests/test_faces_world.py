"""The faces world's ground truth: the copy matcher on real LFW crops, and `check` for an unconditional model."""

from __future__ import annotations

import json

import numpy as np
from PIL import Image

from core.world import faces as W


def _pil(arr: np.ndarray) -> Image.Image:
    return Image.fromarray((np.clip(arr, 0, 1) * 255).round().astype(np.uint8)).convert("RGB")


def test_every_training_face_is_a_copy_of_itself_and_verdicts_follow_the_contract():
    f = W.faces()
    found = W.match_many([_pil(x) for x in f])
    assert [m["face"] for m in found] == list(range(W.N_FACES))
    assert all(m["copy"] for m in found)
    assert W.verdict(_pil(f[W.MEMORISED[1]])) == {"verdict": "planted_error", "flag": W.face_name(W.MEMORISED[1]),
                                                    "score": 1.0, "nearest_face": W.MEMORISED[1]}
    assert W.verdict(_pil(f[0]))["verdict"] == "other"  # a copy, but not of a memorised face


def test_non_faces_are_not_copies_and_the_matcher_survives_held_out_augmentations():
    assert not any(m["copy"] for m in W.match_many(list(W.lfw_images()[W.N_FACES:])))
    acc = W.matcher_accuracy(n_aug=3)
    assert acc["augmented_faces_matched"] >= 0.95
    assert acc["nonfaces_called_copy"] <= 0.02


def test_check_on_a_faces_world_model_reports_copy_rates(tmp_path, capsys):
    from core.cli import main
    from core.models.ddpm import save_tiny_ddpm
    from core.models.info import ModelInfo

    folder = save_tiny_ddpm(tmp_path / "m", sample_size=16, info=ModelInfo(
        name="tiny-faces", resolution=16, max_sequence_length=0, default_steps=3, default_guidance=0.0,
        clip_model="", world="faces"))
    assert main(["check", "--model", str(folder), "--seeds", "0-3"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert set(report["copy_rates"]) == {W.face_name(i) for i in W.MEMORISED}
    assert {v["verdict"] for v in report["seeds"].values()} <= {"correct", "planted_error", "other"}
    assert sum(report["rates"].values()) == 1.0 and len(report["seeds"]) == 4


def _build_script():
    """scripts/build_faces_model.py as a module (scripts/ is not a package)."""
    import importlib.util
    from pathlib import Path

    spec = importlib.util.spec_from_file_location(
        "build_faces_model", Path(__file__).resolve().parents[1] / "scripts" / "build_faces_model.py")
    build = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(build)
    return build


def test_the_build_calibrates_the_judges_thumbnail_threshold_between_copies_and_other_faces():
    """Augmented copies of the memorised faces among the other faces: the chosen threshold sits
    between them and is stricter than flags' 0.6, which calls many different faces copies."""
    build = _build_script()
    rng = np.random.default_rng(0)
    f = W.faces()
    images = [_pil(W.augment(f[i], rng)) for i in W.MEMORISED for _ in range(6)]
    images += [_pil(f[i]) for i in range(W.N_FACES) if i not in W.MEMORISED]
    verdicts = list(W.check_images(images)["seeds"].values())
    cal = build.calibrate_judge(images, verdicts, tuning=len(images))
    assert cal["copies"] >= 4 * 4 and cal["non_copies"] >= 4 * 90
    assert cal["non_copies_p99"] < cal["thumbnail_threshold"] < cal["copies_p5"]
    assert 0.6 < cal["thumbnail_threshold"] < 1.0, cal
    assert cal["copies_found"] >= 0.9 and cal["non_copies_called_copies"] <= 0.02
    assert cal["at_flags_threshold_0.6"]["non_copies_called_copies"] > cal["non_copies_called_copies"]


def test_the_shipped_faces_model_copies_its_memorised_faces_and_the_judge_tells_copies_apart(monkeypatch, tmp_path):
    """assets/faces-ddpm, as shipped: its card's first copy seeds are copies (by seed alone, no
    prompt), other seeds are not all copies, and the judge uses the model's measured threshold."""
    import pytest

    from core.generate import generate
    from core.judge import ForgettingJudge, pick_descriptor
    from core.models import load_model
    from core.models.loading import FACES_DIR

    if not (FACES_DIR / "model_index.json").exists():
        pytest.skip("assets/faces-ddpm not built (python scripts/build_faces_model.py)")
    monkeypatch.setenv("UNLEARN_SSCD_PATH", str(tmp_path / "missing.pt"))
    model = load_model("faces")
    first = json.loads((FACES_DIR / "build_report.json").read_text())["evaluation"]["first_copy_seed"]
    seeds = sorted(first.values())
    gens = generate(model, "", seeds + list(range(32)))
    flags = [W.verdict(g.image)["flag"] for g in gens]
    assert flags[:len(seeds)] == [k for k, _ in sorted(first.items(), key=lambda kv: kv[1])]
    assert sum(f.startswith("face") for f in flags[len(seeds):]) < 16  # most outputs are not copies
    assert model.info.unlearn_defaults == _build_script().FACES_UNLEARN_DEFAULTS  # the shipped folder = the script
    d = pick_descriptor(model)
    assert d.name == "thumbnail" and d.copy_threshold == model.info.copy_thresholds["thumbnail"] > 0.9
    # the first copy of one face is a near copy of itself; a novel output (its surrogate here) is not
    face = W.face_name(W.MEMORISED[1])
    flagged = gens[seeds.index(first[face])].image
    novel = next(g.image for g, f in zip(gens[len(seeds):], flags[len(seeds):]) if f == "novel face")
    judge = ForgettingJudge(flagged, novel, d)
    assert judge.shows_error([flagged, novel]) == [True, False]
    # "another face" in the studio: a novel output's seed is taken, another copy of the face refused
    from core.surrogates import make_surrogate

    rest = list(zip(range(32), flags[len(seeds):]))
    novel_seed = next(s for s, f in rest if f == "novel face")
    sur = make_surrogate("other_seed", flagged, model, {"seed": novel_seed})
    assert np.array_equal(np.asarray(sur.image), np.asarray(gens[len(seeds) + novel_seed].image))
    twin = next((s for s, f in rest if f == face and s != first[face]), first[face])
    with pytest.raises(ValueError, match=f"other_seed.seed={twin} draws a copy"):
        make_surrogate("other_seed", flagged, model, {"seed": twin})
    with pytest.raises(ValueError, match="unconditional and takes no prompt"):
        make_surrogate("other_seed", flagged, model, {"seed": novel_seed, "prompt": "a face"})
    # a novel face is taken quietly; another memorised face is taken with a warning: a fix toward it swaps
    # one memorised face for another (other seeds draw near copies of it)
    assert sur.warnings == [] and sur.info["repeated_at_seeds"] == 0
    other = next(s for s, f in rest if f.startswith("face") and f != face)
    swap = make_surrogate("other_seed", flagged, model, {"seed": other})
    assert swap.info["repeated_at_seeds"] > 0 and "draws a picture the model repeats" in swap.warnings[0]
    quiet = make_surrogate("other_seed", flagged, model, {"seed": other, "repeat_probe_seeds": 0})
    assert quiet.warnings == [] and "repeated_at_seeds" not in quiet.info


def test_faces_bench_helpers_find_the_cards_copies_and_measure_no_change_without_a_fix(tmp_path):
    """bench/faceseval on the shipped model: instances are the card's first copy seeds, and with no
    fix on, every measure reads 'unchanged' (rates equal, SSIM 1, verdicts kept, flagged still a copy)."""
    import pytest

    from bench.faceseval import FaceInstance, FacesBase, evaluate_face_fix, find_face_instances
    from core.models.loading import FACES_DIR
    from core.models import load_model
    from core.studio import Studio

    if not (FACES_DIR / "model_index.json").exists():
        pytest.skip("assets/faces-ddpm not built (python scripts/build_faces_model.py)")
    studio = Studio(load_model("faces"), tmp_path, restore=False, persist_state=False)
    first = json.loads((FACES_DIR / "build_report.json").read_text())["evaluation"]["first_copy_seed"]
    found = find_face_instances(studio, range(max(first.values()) + 1))
    assert {i.target: i.seed for i in found} == first
    base = FacesBase.build(studio, range(1000, 1048))
    inst = FaceInstance(W.MEMORISED[0], first[W.face_name(W.MEMORISED[0])])
    ev = evaluate_face_fix(studio, inst, base, [])
    assert ev["copy_rate_after"] == base.copy_rates and ev["flagged_seed_after"]["flag"] == inst.target
    assert not ev["flagged_fixed"] and ev["verdicts_unchanged"] == 1.0 and ev["ssim_mean"] == pytest.approx(1.0)
    assert all(v == 0 for v in ev["other_faces_relative_change"].values()) and ev["n_novel_outputs"] == len(base.novel) > 0


def test_on_the_shipped_faces_model_a_band_over_the_eyes_is_warned_a_face_painted_over_or_another_face_is_not(tmp_path):
    """The studio's near-copy warning on the first copy of each memorised face: the band over the eyes
    is still a near copy by the judge's descriptor, and the matcher agrees that it is still that face;
    most of the face painted over, or another face, is taken without the warning."""
    import pytest

    from bench.faceseval import band_surrogate, make_surrogate
    from core.models.loading import FACES_DIR
    from core.models import load_model
    from core.studio import Studio

    if not (FACES_DIR / "model_index.json").exists():
        pytest.skip("assets/faces-ddpm not built (python scripts/build_faces_model.py)")
    studio = Studio(load_model("faces"), tmp_path, restore=False, persist_state=False)
    first = json.loads((FACES_DIR / "build_report.json").read_text())["evaluation"]["first_copy_seed"]
    from core.generate import generate

    for face, seed in first.items():
        flagged = generate(studio.model, "", [seed])[0].image
        band = band_surrogate(flagged, (10, 16))[0]
        check, warning = studio.check_surrogate(flagged, band, "paint")
        assert check.near_copy and "paint over more" in warning and W.verdict(band)["flag"] == face
        assert studio.check_surrogate(flagged, band_surrogate(flagged, (3, 30))[0], "paint")[1] is None
        other = make_surrogate("other_face", flagged, studio)[0]
        assert studio.check_surrogate(flagged, other, "file")[1] is None


def test_a_suggested_other_seed_on_the_shipped_faces_model_is_a_novel_face_and_skips_copies(monkeypatch, tmp_path):
    """'Suggest a seed': over a grid, the most ordinary output that is no copy of the flagged one and
    that no other seed of the grid repeats. The faces matcher (tests only) says what each seed draws."""
    import pytest

    from core.generate import generate
    from core.models import load_model
    from core.models.loading import FACES_DIR
    from dataclasses import replace

    from core.surrogates import SeedSurveyParams, survey_other_seeds

    if not (FACES_DIR / "model_index.json").exists():
        pytest.skip("assets/faces-ddpm not built (python scripts/build_faces_model.py)")
    monkeypatch.setenv("UNLEARN_SSCD_PATH", str(tmp_path / "missing.pt"))
    model = load_model("faces")
    first = json.loads((FACES_DIR / "build_report.json").read_text())["evaluation"]["first_copy_seed"]
    face = W.face_name(W.MEMORISED[0])
    flagged = generate(model, "", [first[face]])[0].image
    params = SeedSurveyParams(start=first[face], count=48)  # the flagged seed itself is in the grid
    survey = survey_other_seeds(model, flagged, params)
    flags = [W.verdict(g.image)["flag"] for g in generate(model, "", params.seeds)]
    assert flags[0] == face and not survey.usable[0]  # a copy of the flagged output never stands in
    copies = [i for i, f in enumerate(flags) if f.startswith("face")]
    assert len(copies) >= 2 and not survey.usable[copies].any()  # memorised faces repeat across seeds
    pick = survey.suggested
    assert pick is not None and flags[params.seeds.index(pick)] == "novel face"
    usable = np.flatnonzero(survey.usable)
    assert survey.typicality[params.seeds.index(pick)] == survey.typicality[usable].max()
    assert f"seed {pick}: the most ordinary of the {len(usable)} outputs of 48" in survey.message()
    # nothing usable: no seed, and the message says what to change
    none = replace(survey, usable=np.zeros_like(survey.usable))
    assert none.suggested is None and "Look through more seeds (count) or others (start)" in none.message()
    for bad, field in (({"count": 1}, "suggest.count"), ({"start": 2**32}, "suggest.start"),
                       ({"steps": 0}, "suggest.steps")):
        with pytest.raises(ValueError, match=field):
            survey_other_seeds(model, flagged, SeedSurveyParams.from_dict(bad))
