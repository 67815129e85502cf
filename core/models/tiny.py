"""Build small SD3 pipelines from configs: the embedded model's architecture and test fixtures.

The components mirror diffusers' own SD3 tests (one transformer, two CLIP text encoders, an
AutoencoderKL, the flow-matching Euler scheduler), with T5 dropped. The stock
StableDiffusion3Pipeline runs them unchanged, so everything built here also saves and loads as an
ordinary diffusers folder.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Iterable

import torch

from .tokenizer import build_clip_tokenizer, load_clip_tokenizer


@dataclass
class TinySD3Config:
    """Sizes of a small SD3. Defaults: the embedded flags model (32 px images, 16x16x4 latents)."""

    resolution: int = 32
    # AutoencoderKL: one down block per entry; 2 blocks -> a 2x smaller latent.
    vae_channels: tuple[int, ...] = (32, 64)
    vae_norm_groups: int = 16
    latent_channels: int = 4
    # SD3Transformer2DModel
    num_layers: int = 6
    num_attention_heads: int = 4
    attention_head_dim: int = 32
    patch_size: int = 2
    caption_projection_dim: int = 128
    # Text: two CLIPTextModelWithProjection. SD3 concatenates their penultimate hidden states
    # (-> joint_attention_dim = 2 * hidden) and their pooled projections (-> pooled dim).
    text_hidden_size: int = 32
    text_layers: int = 2
    text_heads: int = 2
    text_max_length: int = 16
    text_vocab_size: int = 1000
    # T5 is dropped; SD3 still appends this many zero tokens. Kept small: it costs attention.
    max_sequence_length: int = 8

    @property
    def latent_size(self) -> int:
        return self.resolution // (2 ** (len(self.vae_channels) - 1))

    @property
    def joint_attention_dim(self) -> int:
        return 2 * self.text_hidden_size

    @property
    def pooled_projection_dim(self) -> int:
        return 2 * self.text_hidden_size

    def to_dict(self) -> dict:
        d = asdict(self)
        d["vae_channels"] = list(self.vae_channels)
        return d


# A config small enough for unit tests: builds in well under a second, samples in milliseconds.
TEST_CONFIG = TinySD3Config(
    resolution=16,
    vae_channels=(8, 16),
    vae_norm_groups=4,
    num_layers=1,
    num_attention_heads=2,
    attention_head_dim=8,
    caption_projection_dim=16,
    text_hidden_size=16,
    text_layers=1,
    text_heads=2,
    text_max_length=8,
    max_sequence_length=2,
)


def build_vae(cfg: TinySD3Config):
    from diffusers import AutoencoderKL

    n = len(cfg.vae_channels)
    return AutoencoderKL(
        in_channels=3,
        out_channels=3,
        down_block_types=("DownEncoderBlock2D",) * n,
        up_block_types=("UpDecoderBlock2D",) * n,
        block_out_channels=tuple(cfg.vae_channels),
        layers_per_block=1,
        latent_channels=cfg.latent_channels,
        norm_num_groups=cfg.vae_norm_groups,
        sample_size=cfg.resolution,
        use_quant_conv=False,
        use_post_quant_conv=False,
        mid_block_add_attention=False,
        shift_factor=0.0,
        scaling_factor=1.0,
    )


def build_transformer(cfg: TinySD3Config):
    from diffusers import SD3Transformer2DModel

    return SD3Transformer2DModel(
        sample_size=cfg.latent_size,
        patch_size=cfg.patch_size,
        in_channels=cfg.latent_channels,
        out_channels=cfg.latent_channels,
        num_layers=cfg.num_layers,
        attention_head_dim=cfg.attention_head_dim,
        num_attention_heads=cfg.num_attention_heads,
        joint_attention_dim=cfg.joint_attention_dim,
        caption_projection_dim=cfg.caption_projection_dim,
        pooled_projection_dim=cfg.pooled_projection_dim,
        pos_embed_max_size=cfg.latent_size // cfg.patch_size * 2,
    )


def build_text_encoder(cfg: TinySD3Config, tokenizer):
    from transformers import CLIPTextConfig, CLIPTextModelWithProjection

    text_config = CLIPTextConfig(
        vocab_size=max(cfg.text_vocab_size, len(tokenizer)),
        hidden_size=cfg.text_hidden_size,
        intermediate_size=cfg.text_hidden_size * 4,
        num_hidden_layers=cfg.text_layers,
        num_attention_heads=cfg.text_heads,
        max_position_embeddings=cfg.text_max_length,
        projection_dim=cfg.text_hidden_size,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
        hidden_act="gelu",
    )
    return CLIPTextModelWithProjection(text_config)


def build_tiny_pipeline(
    cfg: TinySD3Config = TEST_CONFIG,
    captions: Iterable[str] | None = None,
    tokenizer_dir: str | Path | None = None,
    seed: int = 0,
):
    """A randomly initialised StableDiffusion3Pipeline of the given sizes, built offline.

    The tokenizer is trained on `captions` (written to `tokenizer_dir`, a temp folder if None) or,
    if `tokenizer_dir` already holds one, loaded from there.
    """
    import tempfile

    from diffusers import FlowMatchEulerDiscreteScheduler, StableDiffusion3Pipeline

    if tokenizer_dir is not None and (Path(tokenizer_dir) / "vocab.json").exists():
        tokenizer = load_clip_tokenizer(tokenizer_dir)
    else:
        texts = list(captions) if captions is not None else DEFAULT_TEST_CAPTIONS
        tokenizer = build_clip_tokenizer(texts, tokenizer_dir or tempfile.mkdtemp(prefix="tok-"), cfg.text_max_length)

    torch.manual_seed(seed)
    transformer = build_transformer(cfg)
    vae = build_vae(cfg)
    text_encoder = build_text_encoder(cfg, tokenizer)
    text_encoder_2 = build_text_encoder(cfg, tokenizer)
    pipe = StableDiffusion3Pipeline(
        transformer=transformer,
        scheduler=FlowMatchEulerDiscreteScheduler(shift=1.0),
        vae=vae,
        text_encoder=text_encoder,
        tokenizer=tokenizer,
        text_encoder_2=text_encoder_2,
        tokenizer_2=tokenizer,
        text_encoder_3=None,
        tokenizer_3=None,
    )
    pipe.set_progress_bar_config(disable=True)
    return pipe


DEFAULT_TEST_CAPTIONS = [
    "ireland flag", "flag of ireland", "irish flag", "japan flag", "flag of japan",
    "italy flag", "france flag", "a red square", "a blue circle", "green white orange",
]


def save_tiny_model(folder: str | Path, cfg: TinySD3Config = TEST_CONFIG, seed: int = 0, **info_overrides) -> Path:
    """Write a random tiny SD3 as a diffusers folder (+ unlearn_studio.json): a stand-in model for
    tests and for trying the tools without the embedded weights. Its outputs are noise-like."""
    from .info import ModelInfo

    folder = Path(folder)
    pipe = build_tiny_pipeline(cfg, tokenizer_dir=folder / "_tok", seed=seed)
    pipe.save_pretrained(folder, safe_serialization=True)
    info = dict(name="tiny-random", resolution=cfg.resolution, max_sequence_length=cfg.max_sequence_length,
                default_steps=4, default_guidance=1.0, clip_model="clip", unlearn_defaults={"learning_rate": 1e-2})
    info.update(info_overrides)
    ModelInfo(**info).save(folder)
    import shutil

    shutil.rmtree(folder / "_tok", ignore_errors=True)
    return folder
