"""bench/faces_seq_spread.py: the figures it reads from a four-face sequence run."""

from bench.faces_seq_spread import run_summary


def _row(face, ssim, rates, now):
    return {"face": face, "copy_rates": rates, "flagged_seeds_now": now, "ssim_novel_outputs_mean": ssim}


def test_a_run_is_summed_up_by_its_worst_fix_its_end_and_what_is_gone():
    rates_end = {"face 3": 0.0, "face 27": 0.0, "face 48": 0.008, "face 81": 0.005}
    data = {"copy_rate_before": {"face 3": 0.05}, "overrides": {"seed": 2}, "rows": [
        _row("face 3", 0.93, {"face 3": 0.0}, {"face 3@30": "novel face"}),
        {"face": "face 81", "skipped": "no copy"},  # a skipped face has no figures and is left out
        _row("face 27", 0.82, {"face 3": 0.0}, {"face 3@30": "novel face", "face 27@35": "face 27"}),
        _row("face 48", 0.88, rates_end, {"face 3@30": "face 3", "face 27@35": "novel face", "face 48@8": "face 48"}),
    ]}
    s = run_summary(data)
    assert (s["fixes"], s["lowest_ssim"], s["end_ssim"], s["fix_seed"]) == (3, 0.82, 0.88, 2)
    assert s["faces_gone"] == 3  # 0.8% is not gone; 0.5% is
    assert s["relapse"] is True and s["copies_at_end"] == 2  # face 3's seed came back; face 48's never left


def test_a_fix_whose_own_seed_stays_a_copy_until_a_later_fix_is_not_a_relapse():
    data = {"copy_rate_before": {}, "overrides": {}, "rows": [
        _row("face 3", 0.93, {"face 3": 0.0}, {"face 3@30": "novel face"}),
        _row("face 27", 0.90, {"face 27": 0.0}, {"face 3@30": "novel face", "face 27@15": "face 27"}),
        _row("face 48", 0.89, {"face 48": 0.0}, {"face 3@30": "novel face", "face 27@15": "novel face"}),
    ]}
    s = run_summary(data)
    assert s["relapse"] is False and s["copies_at_end"] == 0 and s["fix_seed"] == 0


def test_judge_copy_check_counts_by_build_threshold(tmp_path):
    import json

    from bench.faces_judge_copy_check import judged_fixes, main

    def row(kind, sim, verdict, forgotten=True):
        return {"surrogate": {"kind": kind}, "judge_forgotten": forgotten,
                "judge": str({"score": 0.6, "copy_similarity": sim}), "flagged_seed_after": {"verdict": verdict}}

    (tmp_path / "faces_tune_a.json").write_text(json.dumps({"rows": [
        row("paint", 0.99, "planted_error"), row("paint", 0.97, "correct"), row("other_face", 0.9, "planted_error"),
        row("other_face", 0.995, "planted_error", forgotten=False)]}))
    (tmp_path / "faces_tune_build_seed1_b.json").write_text(json.dumps({"rows": [row("paint", 0.97, "planted_error")]}))
    fixes = judged_fixes(sorted(tmp_path.glob("faces_tune_*.json")))
    assert len(fixes) == 4  # the fix the judge did not call forgotten is not counted
    main(["--results", str(tmp_path), "--name", "check"])
    text = (tmp_path / "check.md").read_text()
    # paint: two still copies, both over their build's threshold (0.99 >= 0.984, 0.97 >= 0.965); 0.97 on seed 0 is not
    assert "| other_face | 1 | 0 | 0 |" in text and "| paint | 2 | 2 | 0 |" in text
