"""bench/faces_averaged_fix.py: its summary counts the other faces only where the face went."""

from bench.faces_averaged_fix import summary_lines


def _row(mix, rate, fixed, changes, ssim):
    return {"mix": mix, "face_rate_after": rate, "flagged_fixed": fixed,
            "other_faces_relative_change": dict(zip(("a", "b", "c"), changes)), "ssim_mean": ssim}


def test_summary_counts_other_faces_and_ssim_over_the_fixes_that_took_the_face_away():
    records = [_row("seed 0 alone", 0.0, True, (-0.1, 0.3, 0.2), 0.90),
               _row("seed 1 alone", 0.02, True, (0.0, 0.0, 0.0), 0.99),  # face left at 2%: not gone
               _row("both at 0.5", 0.0, True, (-0.5, 0.05, 0.19), 0.94),
               _row("both at 0.7", 0.0, False, (0.0, 0.0, 0.0), 0.99)]  # flagged seed still the face
    lines = [line for line in summary_lines(records, [0.5, 0.7]) if line]
    assert lines == [
        "- each fix alone: face gone (<= 0.5%, flagged seed) 1/2; where gone, other faces within 20% 2/3, "
        "mean |change| 0.200, mean SSIM 0.900",
        "- both at 0.5: face gone (<= 0.5%, flagged seed) 1/1; where gone, other faces within 20% 2/3, "
        "mean |change| 0.247, mean SSIM 0.940",
        "- both at 0.7: face gone (<= 0.5%, flagged seed) 0/1; where gone, other faces within 20% 0/0, "
        "mean |change| nan, mean SSIM nan"]


def test_a_faces_bench_writes_its_markdown_and_with_data_its_json(tmp_path):
    import json

    from bench.faceseval import write_lines

    write_lines(tmp_path, "only_md", ["# title", "", "a line"])
    assert (tmp_path / "only_md.md").read_text() == "# title\n\na line\n"
    assert not (tmp_path / "only_md.json").exists()
    write_lines(tmp_path / "sub", "both", ["# t"], {"records": [{"face": "face 3"}]})
    assert json.loads((tmp_path / "sub" / "both.json").read_text()) == {"records": [{"face": "face 3"}]}
