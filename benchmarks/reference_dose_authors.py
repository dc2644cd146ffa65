"""The authors' VAE + DoSE procedure, row by row: the speed baseline of bench_dose.py (not part of beth).

Written from the procedure described in ../shared/docs/paper-protocol.md and the BETH paper, the
way their code does it, so that bench_dose.py can time both side by side on the same rows:

- training: the encoded rows as one int64 tensor; a `DataLoader(batch_size=128, shuffle=True)`
  over them; per batch, z ~ q(z|x) (one draw per row, torch.distributions), loss
  -log p(x|z) + log q(z|x) - log p(z) (the one-sample KL), AdamW(lr 3e-3, weight decay 0.1);
  embeddings sized from the training maximum + 1 (eventId: 1011), hidden // 7 units each;
- q(z): a `MixtureSameFamily` over every training row's posterior;
- statistics: per row and pass (16), one draw for rate / cross-entropy / entropy / distortion and
  4 more for the evidence (mean of the log weights, as their code computes it), in batches of 128.

`DataLoader` runs in-process (num_workers=0): their num_workers=4 only adds processes on 2 cores.
"""

from __future__ import annotations

import time

import numpy as np
import torch
from torch import nn
from torch.distributions import Categorical, Independent, MixtureSameFamily, Normal
from torch.utils.data import DataLoader, TensorDataset


class AuthorsVAE(nn.Module):
    """Embedding encoder -> 2-D Gaussian; decoder -> logits of one categorical per feature."""

    def __init__(self, num_classes: list[int], hidden: int = 64, latent: int = 2) -> None:
        super().__init__()
        self.num_classes, self.latent = num_classes, latent
        dim = hidden // len(num_classes)
        self.embeddings = nn.ModuleList(nn.Embedding(n, dim) for n in num_classes)
        self.enc = nn.Linear(len(num_classes) * dim, 2 * latent)
        self.dec1 = nn.Linear(latent, hidden)
        self.dec2 = nn.Linear(hidden, sum(num_classes))

    def encode(self, x: torch.Tensor) -> Independent:
        h = torch.relu(torch.cat([e(x[:, i]) for i, e in enumerate(self.embeddings)], dim=1))
        p = self.enc(h)
        return Independent(Normal(p[:, : self.latent], p[:, self.latent :].exp()), 1)

    def log_likelihood(self, z: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        logits = self.dec2(torch.relu(self.dec1(z))).split(self.num_classes, dim=1)
        return sum(Categorical(logits=lg).log_prob(x[:, i]) for i, lg in enumerate(logits))


def num_classes(X_train: np.ndarray) -> list[int]:
    sizes = (X_train.max(axis=0) + 1).astype(int).tolist()
    sizes[4] = 1011  # eventId
    return sizes


def train_epoch(model: AuthorsVAE, opt: torch.optim.Optimizer, loader: DataLoader) -> float:
    """One epoch of the authors' training loop; returns the mean batch loss."""
    prior = Independent(Normal(torch.zeros(model.latent), torch.ones(model.latent)), 1)
    total = 0.0
    for (x,) in loader:
        post = model.encode(x)
        z = post.rsample()
        loss = (-model.log_likelihood(z, x) + post.log_prob(z) - prior.log_prob(z)).mean()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        total += loss.item()
    return total / len(loader)


def marginal_posterior(model: AuthorsVAE, X: torch.Tensor) -> MixtureSameFamily:
    with torch.no_grad():
        post = model.encode(X)
        means, stds = post.mean, post.stddev
    return MixtureSameFamily(Categorical(torch.ones(len(X))), Independent(Normal(means, stds), 1))


def statistics(
    model: AuthorsVAE, X: torch.Tensor, q: MixtureSameFamily, passes: int = 16, iwae: int = 4
) -> np.ndarray:
    """The five statistics per row, averaged over `passes`, in batches of 128 (their loop)."""
    out = []
    with torch.no_grad():
        for _ in range(passes):
            per_pass = []
            for (x,) in DataLoader(TensorDataset(X), batch_size=128):
                post = model.encode(x)
                z = post.sample()
                lq = q.log_prob(z)
                lp = post.log_prob(z)
                dist = model.log_likelihood(z, x)
                zs = post.sample((iwae,))
                ll = model.log_likelihood(zs.view(-1, model.latent), x.repeat(iwae, 1)).view(iwae, -1)
                ev = (ll - (post.log_prob(zs) - q.log_prob(zs))).mean(0)
                per_pass.append(torch.stack([lp - lq, -lq, -lp, dist, ev], dim=1))
            out.append(torch.cat(per_pass).numpy())
    return np.mean(np.stack(out, axis=2), axis=2)


def time_training(X_train: np.ndarray, epochs: int, seed: int = 1) -> dict[str, float]:
    """Seconds per epoch and rows/s of the authors' training on these rows."""
    torch.manual_seed(seed)
    X = torch.as_tensor(X_train, dtype=torch.long)
    model = AuthorsVAE(num_classes(X_train))
    opt = torch.optim.AdamW(model.parameters(), lr=3e-3, weight_decay=0.1)
    loader = DataLoader(TensorDataset(X), batch_size=128, shuffle=True)
    train_epoch(model, opt, DataLoader(TensorDataset(X[:1280]), batch_size=128))  # warm-up
    t0 = time.perf_counter()
    for _ in range(epochs):
        train_epoch(model, opt, loader)
    seconds = (time.perf_counter() - t0) / epochs
    return {"epoch_s": seconds, "rows_per_s": len(X) / seconds, "model": model}


def time_statistics(model: AuthorsVAE, X_train: np.ndarray, X_rows: np.ndarray) -> dict[str, float]:
    """Seconds for the statistics of `X_rows` with q(z) over every row of `X_train`."""
    torch.manual_seed(0)
    q = marginal_posterior(model, torch.as_tensor(X_train, dtype=torch.long))
    t0 = time.perf_counter()
    stats = statistics(model, torch.as_tensor(X_rows, dtype=torch.long), q)
    seconds = time.perf_counter() - t0
    assert np.isfinite(stats).all()
    return {"seconds": seconds, "rows_per_s": len(X_rows) / seconds}
