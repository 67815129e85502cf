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
