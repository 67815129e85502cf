"""Table I's equal-forgetting section: integrity only over the runs that forgot, with 95% intervals."""

from bench.table1 import forgot_section, mean_ci95


def test_mean_ci95_is_a_t_interval():
    # mean 0.9, sd 0.1, n 3: half width t(0.975, 2) * 0.1 / sqrt(3) = 4.3027 * 0.057735 = 0.2484
    assert mean_ci95([0.9, 1.0, 0.8]) == "0.900 [0.652, 1.148]"
    assert mean_ci95([0.5]) == "0.500 [n=1]" and mean_ci95([]) == "n/a"


def test_runs_that_did_not_forget_are_left_out_of_integrity():
    def row(method, forgot, kept, preset="paper", checker=None):
        return {"preset": preset, "method": method, "forgot": forgot,
                "flagged_fixed": forgot if checker is None else checker, "steps_done": 20,
                "other_prompts_verdict_kept": kept, "same_prompt_verdict_kept": 1.0, "ssim_mean": 0.9, "clip_fd": 0.01}

    # the judge decides who forgot; the checker only reports beside it (here it disagrees once)
    rows = [row("siss+stop", True, 0.9), row("siss+stop", True, 0.7, checker=False), row("siss+stop", False, 0.1, checker=True),
            row("neggrad+stop", False, 0.2), row("siss", True, 0.0)]  # a fixed-step row never counts here
    text = forgot_section(rows, ["paper"], ["siss", "neggrad"])
    siss = next(line for line in text.splitlines() if line.startswith("| paper | siss |"))
    assert "| 3 | 2 | 1/2 |" in siss and "0.800 [" in siss  # 3 runs, 2 forgot, mean of 0.9 and 0.7 only
    neggrad = next(line for line in text.splitlines() if line.startswith("| paper | neggrad |"))
    assert "| 1 | 0 | 0/0 |" in neggrad and neggrad.count("n/a") == 5
    assert "truth agrees" in text and "the flags checker also" in text and "forgotten by the bar named in the notes" in text


def test_pareto_front_keeps_only_undominated_points():
    from bench.report import pareto_front

    pts = [(0.9, 0.5), (0.8, 0.9), (0.7, 0.8), (0.95, 0.4), (0.8, 0.9)]
    assert pareto_front(pts) == [(0.8, 0.9), (0.9, 0.5), (0.95, 0.4)]


def test_best_lr_needs_half_the_runs_forgotten_then_keeps_most():
    from bench.table1 import best_section

    def row(lr, forgot, kept):
        return {"preset": "studio", "method": "siss+stop", "lr": lr, "forgot": forgot, "flagged_fixed": forgot,
                "other_prompts_verdict_kept": kept, "same_prompt_verdict_kept": 1.0, "ssim_mean": 0.9}

    rows = [row(1e-3, True, 0.99), row(1e-3, False, 1.0), row(1e-3, False, 1.0),  # forgot 1/3: not eligible
            row(3e-3, True, 0.9), row(3e-3, True, 0.8),
            row(1e-2, True, 0.5), row(1e-2, False, 0.4)]
    line = next(x for x in best_section(rows, ["studio"], ["siss"]).splitlines() if x.startswith("| studio | siss"))
    assert "| 0.003 | 2/2 | 0.850 [" in line
    none = best_section([row(1e-3, False, 1.0)], ["studio"], ["siss"])
    assert "none forgot in half its runs" in none


def test_verdict_needs_intervals_apart_and_counts_a_baseline_that_never_forgot():
    from bench.table1 import verdict_section

    def row(method, kept, forgot=True):
        return {"preset": "studio", "method": method + "+stop", "lr": 1e-3, "forgot": forgot, "ssim_mean": kept}

    rows = ([row("surrogate", k) for k in (0.90, 0.92, 0.91)] + [row("siss", k) for k in (0.60, 0.62, 0.61)]
            + [row("neggrad", k, forgot=False) for k in (0.99, 0.99)])
    crit = [("ssim_mean", "SSIM", True)]
    text = verdict_section(rows, ["studio"], ["surrogate", "siss", "neggrad"], "ssim_mean", crit)
    assert "ours beats every baseline" in text
    assert "siss: better (0.910 vs 0.610)" in text and "neggrad: better (it never forgot" in text
    rows += [row("erasediff", k) for k in (0.5, 0.95, 0.99)]  # wide interval over ours: no decision
    text = verdict_section(rows, ["studio"], ["surrogate", "siss", "neggrad", "erasediff"], "ssim_mean", crit)
    assert "does not beat every baseline" in text and "erasediff: no decision" in text
    # a lower-is-better criterion: ours lower with intervals apart is 'better'
    text = verdict_section(rows, ["studio"], ["surrogate", "siss"], "ssim_mean", [("ssim_mean", "drift", False)])
    assert "siss: worse (0.910 vs 0.610)" in text


def test_a_paper_row_that_stops_drops_the_faces_settle_steps_and_a_studio_row_keeps_them():
    """The faces defaults settle with patience under the guard; the paper preset has no guard, so its
    '+stop' rows stop at the first forgotten state (before, the config was refused and Table I crashed)."""
    from bench.table1 import run_config
    from core.unlearn.config import UnlearnConfig

    faces = UnlearnConfig(settle_steps=60, settle_patience=10, settle_lr_scale=0.3)
    paper = run_config(faces, "paper", 100, True, "copy", False)
    assert paper.stop_when_fixed and not paper.keep_best and paper.settle_steps == 0 and paper.settle_patience == 0
    studio = run_config(faces, "studio", 100, True, "copy", False)
    assert studio.keep_best and (studio.settle_steps, studio.settle_patience) == (60, 10)
    assert run_config(faces, "paper", 100, False, "copy", True).remember_set_size == 50
