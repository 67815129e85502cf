"""The studio server from the outside, as an attacker or a careless client would try it.

The real app (tiny random SD3, temp data dir) runs on 127.0.0.1 on a free port; raw HTTP requests
(httpx) and gradio_client check that a foreign Host, a foreign or null Origin, oversized seed
ranges, a huge or broken paint canvas and a second process on the same runs folder change
nothing, and that the app still answers afterwards. Every refusal has a positive control: the
same request from the studio's own origin (or gradio_client) does go through.
"""

import json
import re
import resource
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from PIL import Image

from tests.conftest import running_studio  # noqa: E402

httpx = pytest.importorskip("httpx")
pytest.importorskip("gradio_client")
from gradio_client import Client, handle_file  # noqa: E402
from gradio_client.exceptions import AppError  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
PROMPT = "ireland flag"
EVIL = "http://evil.example"


def _files(folder: Path) -> set[Path]:
    return {p for p in folder.rglob("*") if p.is_file()} if folder.exists() else set()


def _peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux: KiB


@pytest.fixture(scope="module")
def server(tiny_model_dir, tmp_path_factory):
    root = tmp_path_factory.mktemp("hardening")
    with running_studio(str(tiny_model_dir), root) as (studio, _, url, port, _):
        yield studio, url, port, root


@pytest.fixture
def client(server):
    c = Client(server[1], verbose=False)
    try:
        yield c
    finally:
        c.close()


def _own(port: int) -> str:
    return f"http://127.0.0.1:{port}"


def _upload(url: str, origin: str | None, name="note.txt", body=b"hello") -> httpx.Response:
    headers = {"Origin": origin} if origin else {}
    return httpx.post(f"{url}gradio_api/upload", files={"files": (name, body)}, headers=headers, timeout=30)


def _fn_index(url: str, api_name: str) -> int:
    config = httpx.get(f"{url}config", timeout=30).json()
    return next(d["id"] for d in config["dependencies"] if d.get("api_name") == api_name)


def _studio_still_answers(url: str, client: Client) -> None:
    assert httpx.get(url, timeout=30).status_code == 200
    gallery, status, *_ = client.predict(PROMPT, 0, 2, "", 4, 1.0, api_name="/generate")
    assert len(gallery) == 2 and "2 outputs" in status


# -- Host and Origin -------------------------------------------------------------------------------
def test_foreign_host_is_refused_on_every_route(server):
    _, url, port, root = server
    before = _files(root)
    for host in (f"evil.example:{port}", "evil.example", f"127.0.0.1.evil.example:{port}"):
        for method, path in (("GET", ""), ("GET", "config"), ("GET", "gradio_api/info"),
                             ("POST", "gradio_api/upload"), ("POST", "gradio_api/queue/join")):
            r = httpx.request(method, f"{url}{path}", headers={"Host": host, "Origin": EVIL}, timeout=30)
            # Gradio's own CORS layer sits outside every app middleware and may still echo the
            # origin on this refusal; all a foreign page could read is the refusal's text.
            assert r.status_code == 400 and r.text == "Invalid host header", (host, path, r.status_code)
    # The right name on another port is not the studio either.
    r = httpx.get(f"{url}config", headers={"Host": "127.0.0.1:1"}, timeout=30)
    assert r.status_code == 403
    for host in (f"127.0.0.1:{port}", f"localhost:{port}"):  # positive control: its own names work
        assert httpx.get(f"{url}config", headers={"Host": host}, timeout=30).status_code == 200
    assert _files(root) == before


@pytest.mark.parametrize("origin", [EVIL, "null", "http://localhost:1", "file://"])
def test_foreign_and_null_origins_cannot_upload_join_or_read(server, origin):
    studio, url, port, root = server
    uploads = root / "tmp"
    before = _files(root)
    r = _upload(url, origin)
    assert r.status_code == 403 and "refused" in r.text
    assert _files(root) == before, "a refused upload was stored"

    fn = _fn_index(url, "generate")
    join = {"data": [None, PROMPT, 0, 2, "", 4, 1.0], "fn_index": fn, "session_hash": "attacker1",
            "event_data": None, "trigger_id": None}
    r = httpx.post(f"{url}gradio_api/queue/join", json=join, headers={"Origin": origin}, timeout=30)
    assert r.status_code == 403
    r = httpx.get(f"{url}gradio_api/queue/data?session_hash=attacker1", headers={"Origin": origin}, timeout=30)
    assert r.status_code == 403

    # File route: a file the studio does serve is refused to a foreign page, served to its own.
    ok = _upload(url, _own(port), name="own.txt", body=b"studio file")
    assert ok.status_code == 200, ok.text  # positive control: its own origin may upload
    served = ok.json()[0]
    assert Path(served).is_relative_to(uploads)
    r = httpx.get(f"{url}gradio_api/file={served}", headers={"Origin": origin}, timeout=30)
    assert r.status_code == 403 and b"studio file" not in r.content
    assert httpx.get(f"{url}gradio_api/file={served}", timeout=30).content == b"studio file"
    Path(served).unlink()
    assert _files(root) == before, "a refused request wrote something"


def test_cross_site_fetch_metadata_is_refused_but_navigation_is_not(server):
    _, url, port, _ = server
    r = httpx.get(f"{url}config", headers={"Sec-Fetch-Site": "cross-site", "Sec-Fetch-Mode": "cors"}, timeout=30)
    assert r.status_code == 403  # e.g. <script src> or no-cors fetch: no Origin, still refused
    r = httpx.get(url, headers={"Sec-Fetch-Site": "cross-site", "Sec-Fetch-Mode": "navigate"}, timeout=30)
    assert r.status_code == 200  # following a link to the studio opens it


def _decoy_fix(studio, run_id: str) -> Path:
    """A real (zero-effect) fix on disk and loaded, without the cost of training one."""
    run = studio.store.root / run_id
    run.mkdir()
    studio.fixes.create(run_id, rank=2)
    studio.fixes.freeze()
    studio.fixes.save(run_id, run)
    (run / "config.json").write_text(json.dumps({"prompt": PROMPT, "seed": 0, "config": {"method": "surrogate"},
                                                 "model": {"base_fingerprint": studio.model.fingerprint()}}))
    return run


def test_a_foreign_page_cannot_remove_a_fix(server, client):
    studio, url, port, _ = server
    run = _decoy_fix(studio, "fix-decoy")
    fn = _fn_index(url, "remove_fix")
    join = {"data": ["fix-decoy"], "fn_index": fn, "session_hash": "attacker2", "event_data": None,
            "trigger_id": None}
    for origin in (EVIL, "null"):
        r = httpx.post(f"{url}gradio_api/queue/join", json=join, headers={"Origin": origin}, timeout=30)
        assert r.status_code == 403
    r = httpx.post(f"{url}gradio_api/queue/join", json=join, timeout=30,
                   headers={"Origin": EVIL, "Host": f"evil.example:{port}"})  # DNS rebinding
    assert r.status_code == 400
    time.sleep(1.0)
    assert (run / "config.json").is_file(), "a foreign page deleted a fix"
    client.predict(None, api_name="/list_fixes")  # positive control: the same calls from a client work
    client.predict("fix-decoy", api_name="/remove_fix")
    assert not run.exists()
    _studio_still_answers(url, client)


# -- bounded inputs --------------------------------------------------------------------------------
def test_oversized_seed_ranges_are_refused_before_any_work(server, client):
    studio, url, _, root = server
    gens = root / "data" / "generations"
    before, peak = _files(gens), _peak_rss_mb()
    t0 = time.perf_counter()
    with pytest.raises(AppError, match="asks for 100000001 seeds; ask for at most 64"):
        client.predict(PROMPT, 0, 8, "0-100000000", 4, 1.0, api_name="/generate")
    with pytest.raises(AppError, match="greater than maximum value 64|count=1000000000 is out of range"):
        client.predict(PROMPT, 0, 1e9, "", 4, 1.0, api_name="/generate")
    with pytest.raises(AppError, match="asks for 20000001 seeds"):
        client.predict(PROMPT, "", "0-20000000", 4, 1.0, [], api_name="/compare")
    with pytest.raises(AppError, match="out of range: give a whole number from 0 to 4294967295"):
        client.predict(PROMPT, 0, 8, "99999999999999999999", 4, 1.0, api_name="/generate")
    with pytest.raises(AppError, match="out of range"):
        client.predict(PROMPT, 2**40, 2, "", 4, 1.0, api_name="/generate")
    with pytest.raises(AppError, match="greater than maximum value 30|guidance=1e\\+30 is out of range"):
        client.predict(PROMPT, 0, 2, "", 4, 1e30, api_name="/generate")  # the widget's own bound, or core's
    for guidance in (1e30, float("nan"), float("inf")):  # core refuses what a widget bound would let through
        with pytest.raises(ValueError, match="guidance="):  # InputLimitError or the typed request's
            studio.generate(PROMPT, [0], guidance=guidance)
    elapsed = time.perf_counter() - t0
    # Before: '0-100000000' alone took 34-103 s and 4.7-5.7 GB, '0-20000000' 27 s and 1.5 GB.
    assert elapsed < 60, elapsed
    assert _peak_rss_mb() - peak < 300, "a refused seed range still allocated memory"
    assert _files(gens) == before
    _studio_still_answers(url, client)


def test_cli_refuses_bad_numbers_in_one_line_and_leaves_no_folders(tiny_model_dir, tmp_path, monkeypatch, capsys):
    import tempfile

    from core.cli import main

    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path / "scratch"))
    (tmp_path / "scratch").mkdir()
    m = ["--model", str(tiny_model_dir), "--device", "cpu"]
    cases = [(["generate", "--prompt", "x", "--seeds", "0-100000000", "--out", tmp_path / "g1"], "at most 10000"),
             (["generate", "--prompt", "x", "--seeds", "0-1", "--guidance", "nan", "--out", tmp_path / "g2"],
              "--guidance=nan is not finite"),
             (["compare", "--run", tmp_path / "r0", "--prompt", "x", "--steps", "100000", "--out", tmp_path / "g3"],
              "--steps=100000 is out of range"),
             (["generate", "--prompt", "x", "--seeds", str(2**64), "--out", tmp_path / "g4"], "out of range"),
             (["unlearn", "--prompt", "x", "--seed", str(2**70), "--surrogate", tmp_path / "none.png",
               "--out", tmp_path / "runs" / "r1"], "--seed=1180591620717411303424 is out of range"),
             (["unlearn", "--prompt", "x", "--seed", "3", "--surrogate", tmp_path / "none.png",
               "--out", tmp_path / "runs" / "r1"], "no such image")]
    for argv, message in cases:  # each refused before the model loads: one line on stderr
        code = main([str(a) for a in [*argv, *m]])
        err = capsys.readouterr().err
        assert code == 1 and err.startswith("error: ") and message in err and len(err.strip().splitlines()) == 1, \
            (argv, err)
    code = main(["generate", "--prompt", "x", "--seeds", "0", "--out", str(tmp_path / "ok"), *m])
    assert code == 0, capsys.readouterr().err
    leftovers = sorted(p.name for p in tmp_path.iterdir())
    assert leftovers == ["ok", "scratch"] and not list((tmp_path / "scratch").iterdir()), leftovers


# -- paint canvas ----------------------------------------------------------------------------------
def _flag(client) -> tuple[str, dict]:
    client.predict(PROMPT, 0, 2, "", 4, 1.0, api_name="/generate")
    flagged = client.predict(0, api_name="/flag")[2]
    canvas, _note = client.predict(api_name="/load_canvas")  # the canvas is set in a second event
    return flagged, canvas


def test_huge_or_broken_canvas_layers_get_a_clear_sentence(server, client, tmp_path):
    studio, url, _, root = server
    flagged, canvas = _flag(client)
    background = canvas["background"]
    side = Image.open(background).size[0]
    Image.new("RGBA", (12800, 12800), (0, 0, 0, 0)).save(tmp_path / "huge.png")  # 10x the pixel cap
    (tmp_path / "empty.png").write_bytes(b"")
    (tmp_path / "page.png").write_text("<!DOCTYPE html><html><body>not an image</body></html>")
    Image.new("RGB", (8, 8)).save(tmp_path / "layer.tiff")
    peak = _peak_rss_mb()
    cases = {"huge.png": "12800x12800 = 163840000 pixels, over the limit", "empty.png": "empty file (0 bytes)",
             "page.png": "not an image this studio can read", "layer.tiff": "format TIFF is not accepted"}
    for name, message in cases.items():
        value = {"background": handle_file(background), "layers": [handle_file(str(tmp_path / name))],
                 "composite": None}
        with pytest.raises(AppError, match=re.escape(message)):
            client.predict(value, api_name="/paint")
    bomb = {"background": handle_file(str(tmp_path / "huge.png")), "layers": [], "composite": None}
    with pytest.raises(AppError, match="canvas background is 12800x12800"):
        client.predict(bomb, api_name="/paint")
    assert _peak_rss_mb() - peak < 300, "a refused canvas was decoded anyway"
    # Positive control: a real stroke on the same canvas makes a surrogate.
    layer = Image.new("RGBA", (side, side), (0, 0, 0, 0))
    layer.paste((255, 0, 0, 255), (0, 0, side // 4, side // 4))
    layer.save(tmp_path / "stroke.png")
    value = {"background": handle_file(background), "layers": [handle_file(str(tmp_path / "stroke.png"))],
             "composite": None}
    _, _, info = client.predict(value, api_name="/paint")
    assert "paint" in info
    _studio_still_answers(url, client)


def test_uploaded_surrogate_takes_the_image_checks_and_a_refusal_changes_nothing(server, client, tmp_path):
    studio, url, _, _ = server
    flagged, _ = _flag(client)
    size = Image.open(flagged).size
    Image.new("1", (12000, 12000)).save(tmp_path / "huge.png")  # 144 Mpx, a few kB on disk
    Image.new("RGB", (size[0] * 3, size[0]), (0, 0, 0)).save(tmp_path / "wide.png")
    (tmp_path / "page.png").write_text("<!DOCTYPE html><html><body>not an image</body></html>")
    cases = {"huge.png": "12000x12000 = 144000000 pixels, over the limit", "wide.png": "crop it to a square",
             "page.png": "not an image this studio can read"}
    for name, message in cases.items():
        with pytest.raises(AppError, match=re.escape(message)):
            client.predict(handle_file(str(tmp_path / name)), api_name="/upload_surrogate")
    # Positive control: an edited, square image of any size becomes the surrogate.
    edited = Image.open(flagged).convert("RGB").resize((size[0] * 4, size[1] * 4), Image.NEAREST)
    edited.paste((255, 0, 0), (0, 0, size[0], size[1]))
    edited.save(tmp_path / "edited.png")
    sur, _, info = client.predict(handle_file(str(tmp_path / "edited.png")), api_name="/upload_surrogate")
    assert Image.open(sur).size == size and "uploaded=True" in info and "surrogate for **flag" in info
    _studio_still_answers(url, client)


def test_canvas_layer_upload_index_is_bounded(server):
    _, url, port, _ = server
    config = httpx.get(f"{url}config", timeout=30).json()
    editor = next(c["id"] for c in config["components"] if c.get("props", {}).get("elem_id") == "paint-canvas")
    layer = Image.new("RGBA", (8, 8), (255, 0, 0, 255))
    import io

    buf = io.BytesIO()
    layer.save(buf, format="PNG")

    def send(index: str) -> httpx.Response:
        form = {"component_id": str(editor), "session_hash": "blobs1", "fn_name": "accept_blobs",
                "type": "layer", "index": index, "id": "canvas1"}
        return httpx.post(f"{url}gradio_api/component_server", data=form, timeout=60,
                          files={"blob": ("layer.png", buf.getvalue(), "image/png")})

    peak = _peak_rss_mb()
    r = send("1000000000")  # unchecked, Gradio would size a list of a billion entries (8 GB)
    assert r.status_code >= 400
    assert _peak_rss_mb() - peak < 300
    assert send("0").status_code == 200  # positive control: a real layer index is accepted


# -- run folders shared by processes ---------------------------------------------------------------
OWNER = """
import sys, time
from core.runs import RunStore
run = RunStore(sys.argv[1]).begin()
run.write_json("config.json", {"partial": True})
print(run.run_id, flush=True)
time.sleep(120)
"""


def test_a_run_in_progress_in_another_process_survives_a_second_store(server, tiny_model_dir, tmp_path):
    from core.runs import IncompleteRunError, RunStore

    studio, url, _, _ = server
    runs = tmp_path / "runs"
    owner = subprocess.Popen([sys.executable, "-c", OWNER, str(runs)], cwd=ROOT, stdout=subprocess.PIPE, text=True)
    try:
        run_id = owner.stdout.readline().strip()
        partial = runs / f".partial-{run_id}"
        assert run_id and partial.is_dir()
        RunStore(runs)  # a second CLI call or a studio start on the same folder
        from core.studio import Studio

        Studio(studio.model, tmp_path / "data", runs_dir=runs, restore=False)
        assert (partial / "config.json").is_file(), "another process's run in progress was deleted"
    finally:
        owner.send_signal(signal.SIGKILL)
        owner.wait()
    RunStore(runs)  # its owner is gone now: the leftover is cleaned
    assert not partial.exists() and not list(runs.glob(".lock-*"))

    # A run missing a file it must have is never published (e.g. its LoRA file vanished).
    store = RunStore(runs)
    run = store.begin()
    run.write_json("config.json", {"prompt": PROMPT})
    with pytest.raises(IncompleteRunError, match="pytorch_lora_weights.safetensors"):
        run.commit(required=["pytorch_lora_weights.safetensors"])
    run.abort()
    assert not store.list() and not list(runs.iterdir())


def test_run_ids_are_claimed_once(tmp_path):
    from core.runs import RunStore, new_run_id

    store = RunStore(tmp_path)
    ids = {new_run_id() for _ in range(20000)}
    assert len(ids) == 20000 and all(len(i.rsplit("-", 1)[1]) == 12 for i in ids)  # 48 random bits
    first = store.begin("fix-same")
    with pytest.raises(FileExistsError, match="being built"):
        store.begin("fix-same")
    first.write_json("config.json", {})
    first.commit()
    with pytest.raises(FileExistsError, match="already exists"):
        store.begin("fix-same")


def test_a_failed_save_leaves_no_generation_folder(tiny_model, tmp_path, monkeypatch):
    import core.runs
    from core.generate import generate, save_generations

    gens = generate(tiny_model, PROMPT, [0, 1])
    calls = []

    def full_disk(img, path, make_parents=True):
        calls.append(path)
        if len(calls) == 2:
            raise OSError(28, "No space left on device")
        return real(img, path, make_parents)

    real = core.runs.atomic_save_image
    monkeypatch.setattr(core.runs, "atomic_save_image", full_disk)
    with pytest.raises(OSError, match="No space"):
        save_generations(gens, tmp_path / "generations" / "gen-1")
    assert not (tmp_path / "generations").exists()
