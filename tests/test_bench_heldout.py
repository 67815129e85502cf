"""bench/heldout.py --combine takes the surrogate from the records it combines."""

import json

import pytest


def test_combine_refuses_files_of_different_surrogates(tmp_path):
    from bench.heldout import main

    (tmp_path / "a.partial.json").write_text(json.dumps([{"row": "judge", "surrogate": "paint"}]))
    (tmp_path / "b.partial.json").write_text(json.dumps([{"row": "judge", "surrogate": "other_seed"}]))
    with pytest.raises(SystemExit, match="mix surrogates \\(other_seed, paint\\)"):
        main(["--combine", str(tmp_path / "a.partial.json"), str(tmp_path / "b.partial.json"), "--out", str(tmp_path)])
    # files written before the surrogate was recorded take --surrogate's word, and must agree with the rest
    (tmp_path / "old.partial.json").write_text(json.dumps([{"row": "judge"}]))
    with pytest.raises(SystemExit, match="mix surrogates"):
        main(["--combine", str(tmp_path / "old.partial.json"), str(tmp_path / "b.partial.json"), "--out", str(tmp_path)])
