"""The categorical VAE of the BETH paper, trained on the few distinct encoded rows.

Model (as in the authors' code): each of the seven Appendix-A features is a category; the encoder
concatenates one learned embedding per feature (``hidden // 7`` dimensions each), applies ReLU and a
linear layer giving the mean and log standard deviation of a 2-D Gaussian posterior q(z|x); the
decoder (linear, ReLU, linear; ``hidden`` units) maps z to the logits of a product of categoricals,
one per feature. The prior is N(0, I).

Categories (`Vocabulary`): per feature, the values seen in training, plus for eventId the fixed
vocabulary 0..1010 of Tracee v0.5; one more, reserved "unknown" category per feature takes every
other value. The authors sized each embedding from the training split's maximum, so a larger value
in validation or test (an argsNum of 6, say) stopped their run with an IndexError; here it is
simply unknown — a category the decoder learned to give (almost) no mass, so it scores as anomalous.

Training (`fit_vae`) minimises the negative ELBO, -log p(x|z) + KL(q(z|x) || N(0, I)), with AdamW,
early stopping on the validation loss (patience 3, at most 20 epochs) and the best epoch's weights
kept. How it uses the distinct rows, and what is exact, is in `fit_vae`'s docstring.
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Callable, Iterator, Sequence
from dataclasses import asdict, dataclass, field

import numpy as np
import torch
from torch import nn

from beth.errors import DataError, UsageError
from beth.features import FEATURES
from beth.schema import EVENT_VOCABULARY

EVENT_COLUMN = FEATURES.index("eventId")
#: A feature with more distinct training values than this is not categorical data (the Appendix-A
#: encoding has at most a few dozen per feature); refuse it rather than build a huge embedding.
MAX_CATEGORIES = 65_536
LATENT = 2


# --- categories --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Vocabulary:
    """Per feature, the known values (sorted); category index = position, `len(values)` = unknown."""

    values: tuple[np.ndarray, ...]

    @classmethod
    def fit(cls, X: np.ndarray, *, event_column: int | None = EVENT_COLUMN) -> Vocabulary:
        """Known values: those in `X` (the training rows), plus eventIds 0..1010 for `event_column`."""
        X = np.asarray(X, dtype=np.float64)
        values = []
        for j in range(X.shape[1]):
            seen = np.unique(X[:, j])
            if j == event_column:
                seen = np.union1d(seen, np.arange(EVENT_VOCABULARY, dtype=np.float64))
            if len(seen) > MAX_CATEGORIES:
                raise DataError(
                    f"column {j} has {len(seen):,} distinct values: the VAE is a categorical model "
                    f"(at most {MAX_CATEGORIES:,} categories per feature); give it the Appendix-A encoding"
                )
            values.append(seen)
        return cls(tuple(values))

    @property
    def sizes(self) -> tuple[int, ...]:
        """Number of categories per feature, the unknown one included."""
        return tuple(len(v) + 1 for v in self.values)

    def codes(self, X: np.ndarray) -> np.ndarray:
        """Category index of every value (int64, same shape); unseen values get the unknown index."""
        X = np.asarray(X, dtype=np.float64)
        if X.ndim != 2 or X.shape[1] != len(self.values):
            raise UsageError(f"expected a matrix with {len(self.values)} columns, got shape {X.shape}")
        out = np.empty(X.shape, dtype=np.int64)
        for j, known in enumerate(self.values):
            pos = np.searchsorted(known, X[:, j])
            hit = pos < len(known)
            hit[hit] = known[pos[hit]] == X[hit, j]
            out[:, j] = np.where(hit, pos, len(known))
        return out

    def to_tensors(self) -> list[torch.Tensor]:
        return [torch.as_tensor(v) for v in self.values]

    @classmethod
    def from_tensors(cls, tensors: Sequence[torch.Tensor]) -> Vocabulary:
        return cls(tuple(t.numpy().astype(np.float64) for t in tensors))


# --- the model ---------------------------------------------------------------------------------------


class CategoricalVAE(nn.Module):
    """Embedding encoder, 2-D Gaussian latent, product-of-categoricals decoder (see the module doc).

    The decoder's output layer is one linear map from the hidden units to every feature's logits;
    it is stored as two blocks (eventId's ~1,012 logits, and the other features' few logits padded to
    a common width) so that the per-feature log-softmax runs as two fused cross-entropies instead of
    seven slices, whose gradients would each zero-fill the whole logit matrix.
    """

    def __init__(
        self, sizes: Sequence[int], hidden: int = 64, latent: int = LATENT, big: int = EVENT_COLUMN
    ) -> None:
        super().__init__()
        if hidden < len(sizes):
            raise UsageError(f"hidden must be at least {len(sizes)} (one embedding unit per feature)")
        self.sizes = tuple(int(s) for s in sizes)
        self.latent = latent
        self.big = big
        self.small = [j for j in range(len(self.sizes)) if j != big]
        self.width = max(self.sizes[j] for j in self.small)
        embedding_dim = hidden // len(self.sizes)
        offsets = np.concatenate([[0], np.cumsum(self.sizes)[:-1]])
        self.register_buffer("offsets", torch.as_tensor(offsets, dtype=torch.long), persistent=False)
        pad = torch.zeros(len(self.small), self.width)
        for i, j in enumerate(self.small):
            pad[i, self.sizes[j] :] = -math.inf
        self.register_buffer("padding", pad, persistent=False)
        # One table holding every feature's own embedding rows = per-feature embeddings, concatenated.
        self.embedding = nn.Embedding(int(sum(self.sizes)), embedding_dim)
        self.encoder_out = nn.Linear(len(self.sizes) * embedding_dim, 2 * latent)
        self.decoder_hidden = nn.Linear(latent, hidden)
        self.decoder_big = nn.Linear(hidden, self.sizes[big])
        self.decoder_small = nn.Linear(hidden, len(self.small) * self.width)

    def encode(self, codes: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Mean and log standard deviation of q(z|x), each (n, latent)."""
        h = torch.relu(self.embedding(codes + self.offsets).flatten(1))
        params = self.encoder_out(h)
        return params[:, : self.latent], params[:, self.latent :]

    def logits(self, z: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Decoder logits: the big feature's (n, size), the others' (n, features, width), padded -inf."""
        h = torch.relu(self.decoder_hidden(z))
        small = self.decoder_small(h).view(-1, len(self.small), self.width) + self.padding
        return self.decoder_big(h), small

    def log_likelihood(self, z: torch.Tensor, codes: torch.Tensor) -> torch.Tensor:
        """log p(x|z): the sum over features of log softmax(that feature's logits)[x]; z (n, latent)."""
        big, small = self.logits(z)
        nll_big = nn.functional.cross_entropy(big, codes[:, self.big], reduction="none")
        nll_small = nn.functional.cross_entropy(small.transpose(1, 2), codes[:, self.small], reduction="none")
        return -(nll_big + nll_small.sum(1))


LOG_2PI = math.log(2 * math.pi)


def gaussian_log_prob(z: torch.Tensor, mu: torch.Tensor, log_sigma: torch.Tensor) -> torch.Tensor:
    """log N(z; mu, diag(sigma^2)) summed over the last dimension (broadcasting)."""
    return (-0.5 * ((z - mu) / log_sigma.exp()) ** 2 - log_sigma - 0.5 * LOG_2PI).sum(-1)


def kl_to_prior(mu: torch.Tensor, log_sigma: torch.Tensor) -> torch.Tensor:
    """KL(N(mu, sigma^2) || N(0, I)) per row, in closed form."""
    return 0.5 * (mu**2 + (2 * log_sigma).exp() - 1 - 2 * log_sigma).sum(-1)


# --- running torch -----------------------------------------------------------------------------------


def resolve_device(device: str) -> torch.device:
    """'auto' -> CUDA when present, else CPU; anything else as torch spells it."""
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        dev = torch.device(device)
    except RuntimeError as exc:
        raise UsageError(f"unknown device {device!r} ({exc})") from None
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise UsageError(f"device {device!r} asked for, but torch sees no CUDA device")
    return dev


@contextlib.contextmanager
def torch_threads(n: int | None) -> Iterator[None]:
    """Run with `n` intra-op CPU threads (None: 1).

    One thread is the right default here: the matrices are a few hundred rows wide, too small to
    split across cores with profit, and on a shared 2-core machine a second OpenMP thread that
    waits for a busy core made steps 5-10x slower (measured). Use both cores by fitting two seeds
    at once (`beth bench --jobs 2`).
    """
    before = torch.get_num_threads()
    torch.set_num_threads(1 if n is None else max(1, int(n)))
    try:
        yield
    finally:
        torch.set_num_threads(before)


def generator(seed: int, device: torch.device) -> torch.Generator:
    g = torch.Generator(device=device)
    g.manual_seed(int(seed))
    return g


# --- training ----------------------------------------------------------------------------------------

#: The paper's minibatch size: `TrainConfig.lr` and `weight_decay` are given at this batch size.
REFERENCE_BATCH = 128


@dataclass(frozen=True)
class TrainConfig:
    """VAE hyper-parameters (defaults: the paper's configuration, at our batch size; see `fit_vae`).

    `lr` and `weight_decay` are the paper's values at its batch of 128 rows (what `beth tune dose`
    searches over); `effective_lr`/`effective_weight_decay` are what AdamW gets at `batch_size`.
    """

    hidden: int = 64
    lr: float = 3e-3
    weight_decay: float = 0.1
    max_epochs: int = 20
    patience: int = 3
    #: Rows per minibatch (the paper: 128).
    batch_size: int = 1024
    #: Decoder evaluations per minibatch (None: one per row, the paper's estimator).
    decoder_samples: int | None = 256
    #: Posterior draws per distinct validation row for the validation loss.
    val_samples: int = 16

    def __post_init__(self) -> None:
        ints = {"hidden": self.hidden, "max_epochs": self.max_epochs, "batch_size": self.batch_size}
        ints |= {"patience": self.patience, "val_samples": self.val_samples}
        if self.decoder_samples is not None:
            ints["decoder_samples"] = self.decoder_samples
        for name, value in ints.items():
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise UsageError(f"{name} must be a positive integer, got {value!r}")
        if not (isinstance(self.lr, int | float) and math.isfinite(self.lr) and self.lr > 0):
            raise UsageError(f"lr must be a positive number, got {self.lr!r}")
        if not (isinstance(self.weight_decay, int | float) and 0 <= self.weight_decay < math.inf):
            raise UsageError(f"weight_decay must be a number >= 0, got {self.weight_decay!r}")

    @property
    def scale(self) -> float:
        """sqrt(batch_size / 128): the square-root scaling rule's factor."""
        return math.sqrt(self.batch_size / REFERENCE_BATCH)

    @property
    def effective_lr(self) -> float:
        return self.lr * self.scale

    @property
    def effective_weight_decay(self) -> float:
        return self.weight_decay * self.scale

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass
class TrainResult:
    """What training produced: the best epoch's weights and the losses per epoch (epoch 0: untrained)."""

    state: dict[str, torch.Tensor]
    best_epoch: int
    best_val_loss: float
    train_loss: list[float] = field(default_factory=list)
    val_loss: list[float] = field(default_factory=list)
    rows_seen: int = 0
    decoder_evaluations: int = 0
    stopped: str = ""


def shuffled_batches(counts: np.ndarray, batch_size: int, rng: np.random.Generator) -> Iterator[tuple]:
    """Endless minibatches, as (distinct-row indices, copies of each), of rows shuffled pass by pass.

    Exactly what shuffling the expanded rows and cutting them into `batch_size` slices gives (the last
    slice of a pass is shorter, as a DataLoader's without drop_last), without building the rows: a
    permutation of row ids, then one sort to count each distinct row per slice.
    """
    D = len(counts)
    ids = np.repeat(np.arange(D, dtype=np.int64), counts)
    n = len(ids)
    while True:
        perm = ids[rng.permutation(n)]
        keys, copies = np.unique((np.arange(n, dtype=np.int64) // batch_size) * D + perm, return_counts=True)
        batch, row = np.divmod(keys, D)
        starts = np.flatnonzero(np.r_[True, batch[1:] != batch[:-1]])
        for a, b in zip(starts, np.r_[starts[1:], len(keys)], strict=True):
            yield row[a:b], copies[a:b]


def allocate_samples(copies: np.ndarray, samples: int | None) -> np.ndarray:
    """Decoder evaluations per distinct row of a batch: proportional to its copies, at least one.

    `samples=None` (or >= the batch size): one per copy, the paper's estimator.
    """
    if samples is None or samples >= copies.sum():
        return copies
    share = np.rint(copies * (samples / copies.sum())).astype(np.int64)
    return np.clip(share, 1, copies)


def latin_normals(group: torch.Tensor, sizes: torch.Tensor, dim: int, g: torch.Generator) -> torch.Tensor:
    """Standard normal draws, Latin-hypercube stratified within each group (float32, (len(group), dim)).

    `group` (sorted) names each draw's group and `sizes` the draws per group. Within a group of n
    draws each coordinate takes one point in each of n equal-probability strata, in random order:
    every draw is still exactly N(0, I) on its own, but a group's draws cover the distribution
    evenly, so their mean varies less than that of n independent draws.
    """
    n, dev = len(group), group.device
    start = (torch.cumsum(sizes, 0) - sizes)[group]
    size = sizes[group].to(torch.float64)
    u = torch.empty((n, dim), dtype=torch.float64, device=dev)
    for d in range(dim):
        order = torch.argsort(
            group.to(torch.float64) + torch.rand(n, generator=g, device=dev, dtype=torch.float64)
        )
        rank = torch.empty(n, dtype=torch.long, device=dev)
        rank[order] = torch.arange(n, device=dev)
        stratum = (rank - start).to(torch.float64)
        u[:, d] = (stratum + torch.rand(n, generator=g, device=dev, dtype=torch.float64)) / size
    return torch.special.ndtri(u.clamp(1e-12, 1 - 1e-12)).to(torch.float32)


def mean_loss(model: CategoricalVAE, codes: torch.Tensor, counts: torch.Tensor, eps: torch.Tensor) -> float:
    """Count-weighted mean negative ELBO over distinct rows (= the mean over every expanded row).

    KL in closed form; the reconstruction term averaged over the draws `eps` (K, rows, latent).
    """
    K = eps.shape[0]
    chunk = max(1, (1 << 22) // (K * sum(model.sizes)))
    total = 0.0
    with torch.no_grad():
        for a in range(0, len(codes), chunk):
            c, w = codes[a : a + chunk], counts[a : a + chunk]
            mu, ls = model.encode(c)
            z = (mu + ls.exp() * eps[:, a : a + chunk]).reshape(-1, model.latent)
            ll = model.log_likelihood(z, c.repeat(K, 1)).reshape(K, -1).mean(0)
            total += float(((kl_to_prior(mu, ls) - ll).double() * w).sum())
    return total / float(counts.sum())


def fit_vae(
    train: tuple[np.ndarray, np.ndarray],
    val: tuple[np.ndarray, np.ndarray] | None,
    sizes: Sequence[int],
    config: TrainConfig,
    *,
    seed: int,
    device: torch.device,
    on_epoch: Callable[[int, float, float], None] | None = None,
) -> TrainResult:
    """Train a `CategoricalVAE` on category codes given as (distinct rows, counts); keep the best epoch.

    AdamW, an epoch = one pass over the training rows, the validation loss after every epoch, stop
    after `patience` epochs without a new best (at most `max_epochs`), return the best epoch's
    weights. Without validation rows the training rows' loss (computed the same way) decides.

    What is exact (equal in distribution to the authors' per-row training at the same settings):
    - batches: a permutation of the expanded row ids cut into `batch_size` slices, counted per
      distinct row (`shuffled_batches`) — what shuffling 763k rows gives, without the rows;
    - the encoder runs once per distinct row of a batch (it is deterministic);
    - the validation loss is the count-weighted sum over distinct validation rows, KL in closed
      form, reconstruction over 16 fixed draws per distinct row: the expectation of the authors'
      one-draw-per-row estimate, less noisy, and the same draws every epoch so that epochs differ by
      the model alone (their loss was also a mean of batch means; ours weighs every row equally);
    - the KL term of the training loss is its closed form (the expectation of the authors'
      one-sample estimate: the same objective with less noise).
    With `batch_size=128, decoder_samples=None` training is the authors' procedure in distribution
    (but for the closed-form KL).

    What is a deliberate change (the defaults), and why: each decoder evaluation costs a 64 x ~1,030
    matrix product, and the authors' estimator spends one per row, 763k per epoch (~2.5 minutes in
    their code). The defaults spend ~4x fewer per epoch (0.27 per row on the synthetic splits) in
    8x fewer optimizer steps, in two steps:
    - `batch_size=1024` rows (8x the paper's), with the learning rate and the decoupled weight decay
      scaled by sqrt(1024/128) (Adam's square-root scaling rule, Malladi et al. 2022; the decay is
      scaled with the rate so that the decay per epoch is unchanged). An epoch is still a pass over
      every training row, so `max_epochs` and `patience` keep their meaning. Adam's betas are left as
      they are: scaling them too (1 - beta times 8) gave noisier, worse validation losses.
    - `decoder_samples=256` per batch: each distinct row of the batch gets decoder evaluations in
      proportion to its copies (at least one; `allocate_samples`), each weighted copies / evaluations,
      with Latin-hypercube stratified draws within a row (`latin_normals`). Every draw is exactly
      N(0, I) and the loss is an unbiased estimate of the batch's mean negative ELBO; only its noise
      differs. Measured on BETH-like data with 128 draws per 1024-row batch, its gradient variance
      was about half that of the paper's 128-row batch and 4x that of an exact 1024-row batch (the
      noise comes mostly from the draws, not from which rows are in a batch); 256 draws lower it.
    The validation loss these defaults reach against the paper's schedule, seed by seed, is in
    benchmarks/RESULTS.md (`bench_dose.py --quality-seeds`): equal within 0.03 nats on four of five
    seeds of the synthetic splits; on the fifth the paper's schedule kept improving for 12 epochs.
    """
    rows, counts = train
    counts = np.asarray(counts, dtype=np.int64)
    steps_per_epoch = max(1, math.ceil(int(counts.sum()) / config.batch_size))
    with torch.random.fork_rng(devices=[device] if device.type == "cuda" else []):
        torch.manual_seed(seed)
        model = CategoricalVAE(sizes, config.hidden).to(device)
    opt = torch.optim.AdamW(
        model.parameters(), lr=config.effective_lr, weight_decay=config.effective_weight_decay
    )
    g = generator(seed, device)
    batches = shuffled_batches(counts, config.batch_size, np.random.default_rng(seed))
    codes = torch.as_tensor(rows, dtype=torch.long, device=device)
    v_rows, v_counts = val if val is not None else train
    v_codes = torch.as_tensor(v_rows, dtype=torch.long, device=device)
    v_weights = torch.as_tensor(v_counts, dtype=torch.float64, device=device)
    v_eps = torch.randn(
        (config.val_samples, len(v_rows), model.latent), generator=generator(seed + 1, device), device=device
    )

    def snapshot() -> dict[str, torch.Tensor]:
        return {k: v.detach().clone() for k, v in model.state_dict().items()}

    first = mean_loss(model, v_codes, v_weights, v_eps)
    result = TrainResult(snapshot(), 0, first, [math.nan], [first])
    since_best = 0
    for epoch in range(1, config.max_epochs + 1):
        total = 0.0
        for _ in range(steps_per_epoch):
            idx, copies = next(batches)
            evals = allocate_samples(copies, config.decoder_samples)
            c = codes[torch.as_tensor(idx, device=device)]
            m = torch.as_tensor(copies, dtype=torch.float32, device=device)
            n = torch.as_tensor(evals, device=device)
            rep = torch.repeat_interleave(torch.arange(len(idx), device=device), n)
            if config.decoder_samples is None:  # the paper's estimator: independent draws
                eps = torch.randn((len(rep), model.latent), generator=g, device=device)
            else:
                eps = latin_normals(rep, n, model.latent, g)
            mu, ls = model.encode(c)
            z = mu[rep] + ls[rep].exp() * eps
            ll = model.log_likelihood(z, c[rep])
            batch_rows = float(copies.sum())
            loss = ((kl_to_prior(mu, ls) * m).sum() - (ll * (m / n)[rep]).sum()) / batch_rows
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            total += float(loss.detach())
            result.rows_seen += int(batch_rows)
            result.decoder_evaluations += len(rep)
            if not math.isfinite(total):  # diverged: the rest of the epoch would be NaN too
                break
        train_loss = total / steps_per_epoch
        val_loss = mean_loss(model, v_codes, v_weights, v_eps) if math.isfinite(train_loss) else math.inf
        result.train_loss.append(train_loss)
        result.val_loss.append(val_loss)
        if on_epoch is not None:
            on_epoch(epoch, train_loss, val_loss)
        if not math.isfinite(val_loss):
            result.stopped = f"diverged in epoch {epoch} (non-finite loss); kept epoch {result.best_epoch}"
            break
        if val_loss < result.best_val_loss:
            result.best_val_loss, result.best_epoch, since_best = val_loss, epoch, 0
            result.state = snapshot()
        else:
            since_best += 1
            if since_best >= config.patience:
                result.stopped = f"no better validation loss for {config.patience} epochs"
                break
    else:
        result.stopped = f"reached max_epochs={config.max_epochs}"
    return result
