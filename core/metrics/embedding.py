"""Generic distances in an image-embedding space: aligned cosine similarity and Frechet distance.

Any image encoder plugs in as `embed_fn(images) -> NxD` (torch tensor or numpy array): SSCD
uses it for copy detection, the embedded world plugs in its tiny CLIP vision tower for a
"world-CLIP FD" (FID's recipe with a feature extractor that knows the world's images, because
Inception features of 32x32 flags say little).

Frechet distance between Gaussians fitted to two feature sets (Heusel et al. 2017):
    FD = ||mu_a - mu_b||^2 + Tr(S_a + S_b - 2 (S_a S_b)^{1/2})
The trace of the matrix square root is computed as sum(sqrt(eig(S_a^{1/2} S_b S_a^{1/2}))): that
symmetric matrix has the same eigenvalues as S_a S_b, so the value equals
Tr(scipy.linalg.sqrtm(S_a @ S_b)) (a test checks this), but symmetric eigh stays real and
accurate when covariances are singular, which they are whenever there are fewer samples than
dimensions (sqrtm of the non-symmetric product then warns, loses accuracy or turns complex).
Small N is still handled with a regulariser: eps*I is added to both covariances (default
eps = 1e-6, the offset pytorch-fid adds on failure; we add it always so FD is one smooth
function of the data). It changes FD by O(eps * D) in general and not at all when S_a == S_b,
so identical sets give ~0 and shifted copies of a set give ||mu_a - mu_b||^2.
"""

from __future__ import annotations

from typing import Any, Callable, Sequence

import numpy as np
from core.metrics.images import ImageLike
from core.metrics.result import MetricResult

EmbedFn = Callable[[Sequence[ImageLike]], Any]  # images -> NxD torch.Tensor or np.ndarray
DEFAULT_EPS = 1e-6


def as_matrix(embeddings: Any) -> np.ndarray:
    """NxD float64 numpy array from a torch tensor (any device) or array-like."""
    if hasattr(embeddings, "detach"):
        embeddings = embeddings.detach().float().cpu().numpy()
    m = np.asarray(embeddings, dtype=np.float64)
    if m.ndim != 2:
        raise ValueError(f"embeddings must be NxD, got shape {m.shape}")
    if not np.all(np.isfinite(m)):
        raise ValueError("embeddings contain NaN or inf")
    return m


def cosine_matrix(emb_a: Any, emb_b: Any) -> np.ndarray:
    """All-pairs cosine similarity (NxM) between two embedding sets."""
    a, b = as_matrix(emb_a), as_matrix(emb_b)
    if a.shape[1] != b.shape[1]:
        raise ValueError(f"embedding widths differ: {a.shape[1]} vs {b.shape[1]}")
    a = a / np.maximum(np.linalg.norm(a, axis=1, keepdims=True), 1e-12)
    b = b / np.maximum(np.linalg.norm(b, axis=1, keepdims=True), 1e-12)
    return a @ b.T


def aligned_cosine(emb_a: Any, emb_b: Any) -> np.ndarray:
    """Cosine similarity of row k of A with row k of B; a single row in A is compared with every
    row of B (one flagged image against many outputs)."""
    sims = cosine_matrix(emb_a, emb_b)
    n_a, n_b = sims.shape
    if n_a == 1:
        return sims[0]
    if n_a != n_b:
        raise ValueError(f"aligned cosine needs equal set sizes (or one reference), got {n_a} and {n_b}")
    return np.diag(sims).copy()


def cosine_similarity(
    embed_fn: EmbedFn, images_a: Sequence[ImageLike], images_b: Sequence[ImageLike], name: str = "cosine"
) -> MetricResult:
    """Mean aligned cosine similarity between the embeddings of two image lists."""
    values = aligned_cosine(embed_fn(images_a), embed_fn(images_b))
    return MetricResult(name=name, value=float(values.mean()), per_item=[float(v) for v in values])


def frechet_distance_from_stats(
    mu_a: np.ndarray, cov_a: np.ndarray, mu_b: np.ndarray, cov_b: np.ndarray, eps: float = DEFAULT_EPS
) -> float:
    """FD between N(mu_a, cov_a) and N(mu_b, cov_b), with eps*I added to both covariances."""
    mu_a, mu_b = np.atleast_1d(mu_a), np.atleast_1d(mu_b)
    cov_a, cov_b = np.atleast_2d(cov_a), np.atleast_2d(cov_b)
    if mu_a.shape != mu_b.shape or cov_a.shape != cov_b.shape:
        raise ValueError(f"shapes differ: mu {mu_a.shape} vs {mu_b.shape}, cov {cov_a.shape} vs {cov_b.shape}")
    eye = np.eye(cov_a.shape[0]) * eps
    ca, cb = cov_a + eye, cov_b + eye
    diff = mu_a - mu_b
    value = float(diff @ diff + np.trace(ca) + np.trace(cb) - 2.0 * trace_sqrt_product(ca, cb))
    return max(value, 0.0)  # round-off can give -1e-12 for identical sets


def _psd_sqrt(cov: np.ndarray) -> np.ndarray:
    vals, vecs = np.linalg.eigh((cov + cov.T) / 2)
    return (vecs * np.sqrt(np.clip(vals, 0.0, None))) @ vecs.T


def trace_sqrt_product(cov_a: np.ndarray, cov_b: np.ndarray) -> float:
    """Tr((cov_a cov_b)^{1/2}) for PSD matrices, via the symmetric form (module docstring)."""
    root_a = _psd_sqrt(cov_a)
    middle = root_a @ cov_b @ root_a
    vals = np.linalg.eigvalsh((middle + middle.T) / 2)
    return float(np.sqrt(np.clip(vals, 0.0, None)).sum())


def frechet_distance(feats_a: Any, feats_b: Any, eps: float = DEFAULT_EPS) -> float:
    """FD between Gaussians fitted to two NxD feature sets (N >= 2 each; ddof=1 covariance as in
    pytorch-fid and torchmetrics)."""
    a, b = as_matrix(feats_a), as_matrix(feats_b)
    if len(a) < 2 or len(b) < 2:
        raise ValueError(f"Frechet distance needs at least 2 samples per set, got {len(a)} and {len(b)}")
    if a.shape[1] != b.shape[1]:
        raise ValueError(f"feature widths differ: {a.shape[1]} vs {b.shape[1]}")
    cov_a = np.cov(a, rowvar=False).reshape(a.shape[1], a.shape[1])
    cov_b = np.cov(b, rowvar=False).reshape(b.shape[1], b.shape[1])
    return frechet_distance_from_stats(a.mean(0), cov_a, b.mean(0), cov_b, eps=eps)


def embedding_frechet_distance(
    embed_fn: EmbedFn,
    images_a: Sequence[ImageLike],
    images_b: Sequence[ImageLike],
    name: str = "embedding_fd",
    eps: float = DEFAULT_EPS,
) -> MetricResult:
    """FD between the embeddings of two image sets (e.g. pretrained vs unlearned generations)."""
    ea, eb = as_matrix(embed_fn(images_a)), as_matrix(embed_fn(images_b))
    return MetricResult(
        name=name,
        value=frechet_distance(ea, eb, eps=eps),
        details={"n_a": len(ea), "n_b": len(eb), "dim": ea.shape[1], "eps": eps},
    )
