"""DoSE summary statistics of a trained categorical VAE, computed once per distinct encoded row.

DoSE (Morningstar et al., 2021) describes each row by statistics of the model, here the five the
BETH authors used, each averaged over `passes` Monte-Carlo passes (16), z ~ q(z|x):

| statistic         | one pass                                                        |
|-------------------|-----------------------------------------------------------------|
| rate              | log q(z|x) - log q(z)                                           |
| cross_entropy     | -log q(z)                                                       |
| posterior_entropy | -log q(z|x)                                                     |
| distortion        | log p(x|z)                                                      |
| iwae              | log 1/K sum_k p(x|z_k) q(z_k) / q(z_k|x), K = 4 fresh samples   |

q(z) is the aggregate posterior: the mixture of the training rows' posteriors (`AggregatePosterior`).
Two deliberate differences from the authors' code: the IWAE statistic is the log of the mean
importance weight (the importance-weighted bound its name promises; their code averaged the log
weights, which is an ELBO), and each statistic's noise is drawn per distinct row (see `row_normals`).

Why per distinct row is exact: a row's statistics depend on the row (its category codes), the model
and the noise only. Drawing the noise from the row's codes and the seed gives every copy of a row
the same Monte-Carlo draw, so computing once per distinct row and broadcasting equals computing per
row. Each row's statistics have exactly the distribution they have in the authors' code; what
changes is only that identical rows share their draw instead of drawing independently (the
authors' per-row draws made equal rows differ by Monte-Carlo noise alone). It also makes a row's
statistics independent of which other rows are scored with it, which the detector contract needs.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch

from beth.detectors.vae import CategoricalVAE, gaussian_log_prob

STATISTICS: tuple[str, ...] = ("rate", "cross_entropy", "posterior_entropy", "distortion", "iwae")

_GOLDEN = np.uint64(0x9E3779B97F4A7C15)


def _splitmix64(x: np.ndarray) -> np.ndarray:
    """SplitMix64 finaliser: a bijective uint64 hash (wrapping arithmetic)."""
    x = x + _GOLDEN
    x = (x ^ (x >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
    x = (x ^ (x >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    return x ^ (x >> np.uint64(31))


def row_keys(codes: np.ndarray, seed: int) -> np.ndarray:
    """One uint64 key per row of integer codes (and the seed): equal rows, equal keys."""
    codes = np.ascontiguousarray(codes, dtype=np.int64)
    with np.errstate(over="ignore"):
        key = _splitmix64(np.full(len(codes), np.uint64(seed & 0xFFFFFFFFFFFFFFFF)))
        for j in range(codes.shape[1]):
            key = _splitmix64(key ^ codes[:, j].astype(np.uint64))
    return key


def row_normals(keys: np.ndarray, count: int) -> np.ndarray:
    """`count` standard normal draws per key (float64, shape (len(keys), count)), a pure function of the key.

    Counter-based: uniforms from a hash of (key, index), paired by Box-Muller.
    """
    pairs = (count + 1) // 2
    idx = np.arange(2 * pairs, dtype=np.uint64)
    with np.errstate(over="ignore"):
        bits = _splitmix64(keys[:, None] ^ _splitmix64(idx)[None, :])
    u = ((bits >> np.uint64(11)).astype(np.float64) + 0.5) * 2.0**-53  # in (0, 1)
    u1, u2 = u[:, 0::2], u[:, 1::2]
    r = np.sqrt(-2.0 * np.log(u1))
    out = np.concatenate([r * np.cos(2 * np.pi * u2), r * np.sin(2 * np.pi * u2)], axis=1)
    return out[:, :count]


@dataclass(frozen=True)
class AggregatePosterior:
    """q(z) = sum_j w_j N(z; mu_j, diag(sigma_j^2)): a mixture over (folded) training posteriors."""

    mu: torch.Tensor  # (J, latent)
    log_sigma: torch.Tensor  # (J, latent)
    log_weight: torch.Tensor  # (J,), logsumexp = 0

    @property
    def components(self) -> int:
        return len(self.log_weight)

    def log_prob(self, z: torch.Tensor, chunk: int = 1 << 22) -> torch.Tensor:
        """log q(z) for z of shape (..., latent), in blocks of at most `chunk` (point, component) pairs."""
        flat = z.reshape(-1, z.shape[-1])
        step = max(1, chunk // max(1, self.components))
        out = [
            torch.logsumexp(
                gaussian_log_prob(block[:, None, :], self.mu[None], self.log_sigma[None]) + self.log_weight,
                dim=1,
            )
            for block in flat.split(step)
        ]
        return torch.cat(out).reshape(z.shape[:-1])


def aggregate_posterior(
    model: CategoricalVAE,
    codes: np.ndarray,
    counts: np.ndarray,
    *,
    size: int | None,
    seed: int,
    device: torch.device,
) -> AggregatePosterior:
    """The mixture of training posteriors over `size` training rows drawn without replacement (seeded).

    `codes`/`counts` are the training split's distinct rows and their counts. A sample of `size` of
    the N rows is a multiset of distinct rows, so the mixture over it is exactly a mixture over at
    most min(size, D) distinct posteriors weighted by how often each was drawn (a multivariate
    hypergeometric draw: the same law as sampling the row indices). `size=None` or >= N: every
    training row, weights count / N: the full aggregate posterior, exact.
    """
    counts = np.asarray(counts, dtype=np.int64)
    n = int(counts.sum())
    if size is None or size >= n:
        drawn = counts
    else:
        drawn = np.random.default_rng(seed).multivariate_hypergeometric(counts, int(size))
    keep = np.flatnonzero(drawn)
    with torch.no_grad():
        mu, log_sigma = model.encode(torch.as_tensor(codes[keep], dtype=torch.long, device=device))
    w = torch.as_tensor(drawn[keep] / drawn.sum(), dtype=torch.float32, device=device)
    return AggregatePosterior(mu, log_sigma, torch.log(w))


def dose_statistics(
    model: CategoricalVAE,
    codes: np.ndarray,
    q: AggregatePosterior,
    *,
    passes: int = 16,
    iwae_samples: int = 4,
    seed: int,
    device: torch.device,
    chunk_rows: int = 512,
) -> np.ndarray:
    """The five statistics (columns in `STATISTICS` order) of each row of distinct category `codes`.

    Per row and pass: one z for rate, cross-entropy, entropy and distortion, `iwae_samples` more
    for the IWAE evidence (as the authors' code draws them), averaged over `passes`.
    """
    codes = np.asarray(codes, dtype=np.int64)
    per_pass = 1 + iwae_samples
    latent = model.latent
    keys = row_keys(codes, seed)
    out = np.empty((len(codes), len(STATISTICS)), dtype=np.float64)
    log_k = math.log(iwae_samples)
    with torch.no_grad():
        for a in range(0, len(codes), chunk_rows):
            c = torch.as_tensor(codes[a : a + chunk_rows], device=device)
            n = len(c)
            eps = row_normals(keys[a : a + chunk_rows], passes * per_pass * latent)
            eps_t = torch.as_tensor(eps, dtype=torch.float32, device=device).view(n, passes, per_pass, latent)
            mu, log_sigma = model.encode(c)
            z = mu[:, None, None, :] + log_sigma.exp()[:, None, None, :] * eps_t  # (n, P, S, latent)
            log_post = gaussian_log_prob(z, mu[:, None, None, :], log_sigma[:, None, None, :])
            log_agg = q.log_prob(z)
            rep = c.repeat_interleave(passes * per_pass, dim=0)
            ll = model.log_likelihood(z.reshape(-1, latent), rep).view(n, passes, per_pass)
            first = (slice(None), slice(None), 0)
            rate = log_post[first] - log_agg[first]
            log_w = ll[..., 1:] + log_agg[..., 1:] - log_post[..., 1:]
            iwae = torch.logsumexp(log_w, dim=-1) - log_k
            stats = torch.stack([rate, -log_agg[first], -log_post[first], ll[first], iwae], dim=-1)
            out[a : a + n] = stats.to(torch.float64).mean(dim=1).cpu().numpy()
    return out
