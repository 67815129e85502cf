"""Naming and loading models; the offline tokenizer."""

import pytest

from core.models import LoadOptions, ModelNotFoundError, load_model
from core.models.loading import resolve
from core.models.tokenizer import build_clip_tokenizer


def test_tokenizer_makes_each_known_word_one_token(tmp_path):
    captions = ["ireland flag", "flag of japan", "irish flag", "cote d'ivoire flag"]
    tok = build_clip_tokenizer(captions, tmp_path / "tok", max_length=8)
    ids = tok("flag of japan").input_ids
    assert ids[0] == tok.bos_token_id and ids[-1] == tok.eos_token_id
    assert tok.convert_ids_to_tokens(ids[1:-1]) == ["flag</w>", "of</w>", "japan</w>"]
    assert tok.decode(ids, skip_special_tokens=True).strip() == "flag of japan"
    # unknown words fall back to characters, never to an unknown id
    unk = tok("zebra").input_ids[1:-1]
    assert len(unk) > 1 and all(i < len(tok) for i in unk)
    assert tok.model_max_length == 8 and tok.pad_token_id == tok.eos_token_id
    assert max(tok.get_vocab().values()) == len(tok) - 1  # special tokens last, as in CLIP


def test_names_resolve_or_fail_with_instructions(tmp_path, tiny_model_dir):
    assert resolve(str(tiny_model_dir)) == ("folder", str(tiny_model_dir))
    assert resolve("sd3-medium") == ("hub", "stabilityai/stable-diffusion-3-medium-diffusers")
    (tmp_path / "not-a-model").mkdir()
    with pytest.raises(ModelNotFoundError, match="model_index.json"):
        resolve(str(tmp_path / "not-a-model"))
    with pytest.raises(ModelNotFoundError, match="hub id"):
        resolve("no/such/thing/here")


def test_missing_hub_model_offline_says_how_to_get_it(monkeypatch, tmp_path):
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hf" / "hub"))
    with pytest.raises(ModelNotFoundError, match="huggingface-cli download stabilityai/stable-diffusion-3-medium-diffusers"):
        load_model("stabilityai/stable-diffusion-3-medium-diffusers", LoadOptions(offline=True))


def test_load_options_are_checked():
    with pytest.raises(ValueError, match="dtype"):
        LoadOptions(dtype="fp8").resolved_dtype()
    import torch

    if not torch.cuda.is_available():
        with pytest.raises(ValueError, match="no CUDA"):
            LoadOptions(device="cuda").resolved_device()
    assert str(LoadOptions(device="cpu").resolved_dtype()) == "torch.float32"


def test_loaded_model_is_frozen_and_fingerprinted(tiny_model_dir):
    m1, m2 = load_model(str(tiny_model_dir)), load_model(str(tiny_model_dir))
    assert m1.fingerprint() == m2.fingerprint()
    assert not any(p.requires_grad for p in m1.pipe.transformer.parameters())
    assert m1.info.resolution == 16 and m1.info.max_sequence_length == 2


def test_fingerprint_does_not_depend_on_the_load_dtype(tiny_model_dir):
    """A fix made on a CPU (fp32) must be recognised on a GPU that loads the same folder in bf16:
    the fingerprint hashes the weights as stored, not as cast for this load."""
    from core.models.loading import base_fingerprint

    fp32, bf16 = load_model(str(tiny_model_dir)), load_model(str(tiny_model_dir), LoadOptions(dtype="bf16"))
    assert str(bf16.pipe.transformer.dtype) == "torch.bfloat16"
    assert fp32.fingerprint() == bf16.fingerprint()
    # ...which the loaded weights alone could not give: rounding to bf16 changes them.
    assert base_fingerprint(bf16.pipe.transformer) != base_fingerprint(fp32.pipe.transformer)
    # The stored hash equals the in-memory hash of a load in the stored dtype (fixes made before
    # this change recorded that one, so they still match).
    assert fp32.fingerprint() == base_fingerprint(fp32.pipe.transformer)


def test_tokenizer_training_is_deterministic_across_processes():
    # `tokenizers`' trainer broke ties in hash order (two builds, two merge lists); ours must not.
    import subprocess
    import sys
    from pathlib import Path

    code = ("import hashlib, json; from core.models.tokenizer import train_clip_bpe; "
            "from core.world.prompts import all_captions; v, m = train_clip_bpe(all_captions()); "
            "print(hashlib.sha256(json.dumps([v, m]).encode()).hexdigest())")
    root = Path(__file__).resolve().parents[1]
    digests = {subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=root,
                              env={"PYTHONHASHSEED": str(seed), "PYTHONPATH": str(root)}).stdout
               for seed in (1, 2, 3)}
    assert len(digests) == 1 and len(digests.pop()) == 65


def test_model_card_loading_snippet_runs_in_stock_diffusers(monkeypatch):
    """The shipped model card's snippet, executed as written (from the repo root)."""
    import re
    from pathlib import Path

    root = Path(__file__).resolve().parents[1]
    card = (root / "assets/flags-sd3/README.md").read_text()
    blocks = re.findall(r"```python\n(.*?)```", card, re.S)
    assert len(blocks) == 1 and "text_encoder_3=None, tokenizer_3=None" in blocks[0]
    monkeypatch.chdir(root)
    scope: dict = {}
    exec(blocks[0], scope)
    assert type(scope["pipe"]).__name__ == "StableDiffusion3Pipeline" and scope["image"].size == (32, 32)
