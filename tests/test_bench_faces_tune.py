"""bench/faces_tune.py's report: one row per config, split by surrogate when a grid ran several."""

from bench.faceseval import pick_instances
from bench.faces_tune import surrogate_label, write_md


def _row(kind, info, gone, request=None):
    row = {"overrides": {"seed": 0}, "face": "face 3", "surrogate": {"kind": kind, **info}, "judge_forgotten": True,
           "met": {"forgotten_rate": gone, "other_faces": False, "ssim": True, "time": True},
           "ssim_novel_outputs_mean": 0.95, "fix_seconds": 10.0, "copy_rate_after": {"face 3": 0.0 if gone else 0.07},
           "flagged_seed_after": {"verdict": "correct", "flag": "novel face"}, "kept_step": 20}
    return row | ({"surrogate_request": request} if request else {})


def test_rows_split_by_the_surrogate_asked_for_and_older_files_are_told_apart_by_their_ladder(tmp_path):
    rows = [_row("paint", {"band_rows": [10, 16]}, False), _row("paint", {"band_rows": [6, 24], "ladder_step": 4}, True),
            _row("sdedit", {"strength": 0.9}, True, request="sdedit_until_no_copy")]
    assert [surrogate_label(r) for r in rows] == ["paint", "paint_until_no_copy", "sdedit_until_no_copy"]
    out = {"build": "b", "flag_seeds": "0-255", "tune_seeds": "256-767", "command": "c",
           "copy_rate_before": {"face 3": 0.07}, "rows": rows}
    write_md(tmp_path / "t.md", out, [{"seed": 0}])
    text = (tmp_path / "t.md").read_text()
    assert '| {"seed": 0} · paint | 1 | 1/1 | 0/1 |' in text and '| {"seed": 0} · paint_until_no_copy | 1 | 1/1 | 1/1 |' in text
    assert '- {"seed": 0} face 3 sdedit_until_no_copy: 0.00%' in text
    write_md(tmp_path / "one.md", out | {"rows": rows[:1]}, [{"seed": 0}])
    assert '| {"seed": 0} | 1 |' in (tmp_path / "one.md").read_text()  # one surrogate: no label


def test_grid_values_read_json_lists_and_bare_strings():
    from bench.common import grid_values

    assert grid_values("0.5,1.0") == [0.5, 1.0]
    assert grid_values('["to_q"],["to_q","to_v"]') == [["to_q"], ["to_q", "to_v"]]
    assert grid_values("uniform,stratified") == ["uniform", "stratified"]
    assert grid_values('"stratified"') == ["stratified"]
    assert grid_values("true,8") == [True, 8]


def test_per_face_flags_the_first_copies_of_each_face_in_seed_order(capsys):
    found = [(0, "face 3"), (1, "novel face"), (2, "face 27"), (3, "face 3"), (4, "face 3"), (5, "face 27")]
    picked = pick_instances(found, [3, 27, 48], 2, "0-5")
    assert [(i.face, i.seed) for i in picked] == [(3, 0), (3, 3), (27, 2), (27, 5)]
    assert "0 of 2 copies of face 48 among seeds 0-5" in capsys.readouterr().out
    assert [(i.face, i.seed) for i in pick_instances(found, [27, 3], 1, "0-5")] == [(27, 2), (3, 0)]
