"""VAE + DoSE-SVM, the paper's deep baseline, as one detector (`dose`) that follows the beth contract.

Per seed: train a categorical VAE (`beth.detectors.vae`) with early stopping on the validation
split, compute the five DoSE statistics of every training row (`beth.detectors.dose_stats`), whiten
them with PCA and fit `SGDOneClassSVM` (`WhitenedOneClassSVM`, the same stage as the `svm` method,
here on statistics instead of features). A row's score is the SVM's negated decision value on the
row's statistics: HIGHER = MORE ANOMALOUS; `predict` is 1 exactly where the SVM says -1.

Everything runs on the few distinct encoded rows: the VAE's batches and losses (see `fit_vae`), the
aggregate posterior (a mixture over folded training posteriors) and the statistics (once per
distinct row, broadcast). The SVM is fitted on every training row's statistics, as in the paper.

Differences from the authors' code, all deliberate: each seed trains its own VAE and computes its
own statistics (the authors reused seed 1's statistics for all five members); q(z) mixes a seeded
sample of `aggregate_size` training posteriors instead of all of them; values unseen in training
are an "unknown" category instead of an IndexError; the IWAE statistic is a log-mean-exp.

Why `aggregate_size` defaults to 10,000: in the authors' code q(z) mixes every training posterior,
so each log q(z) costs O(N) and the statistics of N rows O(N^2) — about a week per seed on the full
763k-row split. A fixed, seeded sample of training posteriors is the usual remedy and keeps the
cost bounded whatever the training size or the encoding (10,000 posteriors estimate the mixture's
log-density well where the training rows are). On the Appendix-A encoding the folding makes even
the full mixture cheap (one weighted component per distinct training row), so `aggregate_size=None`
(all rows, exact) is offered too.

With `work_dir`, each seed's VAE checkpoint, its statistics (training, validation and every scored
matrix) and its fitted SVM are written there; with `resume=True` matching files are loaded instead
of computed again (matching: same seed, configuration, training and validation rows).
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

from beth.detectors.base import Detector
from beth.detectors.classic import WhitenedOneClassSVM
from beth.detectors.dose_stats import STATISTICS, aggregate_posterior, dose_statistics
from beth.detectors.dose_store import (
    fingerprint,
    load_checkpoint,
    load_statistics,
    load_svm,
    save_checkpoint,
    save_statistics,
    save_svm,
)
from beth.detectors.vae import (
    CategoricalVAE,
    TrainConfig,
    Vocabulary,
    fit_vae,
    resolve_device,
    torch_threads,
)
from beth.errors import UsageError
from beth.features import DistinctRows, distinct_rows

#: Bump when a change makes old checkpoints or statistics wrong to reuse.
FORMAT = "dose-2"
#: What `history_` (and a checkpoint) records of the VAE's training.
HISTORY = ("train_loss", "val_loss", "best_epoch", "best_val_loss", "stopped")


class DoSE(Detector):
    """Categorical VAE + DoSE statistics + whitened linear one-class SVM (see the module doc).

    Defaults are the paper's configuration: hidden 64, lr 3e-3, weight decay 0.1, at most 20
    epochs with patience 3; 16 Monte-Carlo passes, 4 IWAE samples.

    Parameters: `hidden`, `lr`, `weight_decay`, `max_epochs`, `patience`, `batch_size`,
    `decoder_samples` — the VAE's training (`TrainConfig`; lr and weight decay at the paper's batch
    of 128; `batch_size=128, decoder_samples=None` is the paper's estimator, better on small
    splits, where 1024-row batches leave few steps per epoch); `mc_passes`, `iwae_samples`,
    `aggregate_size` — the statistics (`aggregate_size=None`: q(z) over every training row);
    `nu` — the SVM; `device` ("auto": CUDA when present; bitwise determinism per seed holds on the
    CPU, CUDA's embedding gradients add in varying order); `threads` (None: 1); `work_dir`,
    `resume` — checkpoint and statistics files; `random_state` — the seed of everything.
    """

    def __init__(
        self,
        hidden: int = 64,
        lr: float = 3e-3,
        weight_decay: float = 0.1,
        max_epochs: int = 20,
        patience: int = 3,
        batch_size: int = 1024,
        decoder_samples: int | None = 256,
        mc_passes: int = 16,
        iwae_samples: int = 4,
        aggregate_size: int | None = 10_000,
        nu: float = 0.5,
        device: str = "auto",
        threads: int | None = None,
        work_dir: str | None = None,
        resume: bool = False,
        random_state: int | None = None,
    ) -> None:
        self.hidden = hidden
        self.lr = lr
        self.weight_decay = weight_decay
        self.max_epochs = max_epochs
        self.patience = patience
        self.batch_size = batch_size
        self.decoder_samples = decoder_samples
        self.mc_passes = mc_passes
        self.iwae_samples = iwae_samples
        self.aggregate_size = aggregate_size
        self.nu = nu
        self.device = device
        self.threads = threads
        self.work_dir = work_dir
        self.resume = resume
        self.random_state = random_state

    # -- configuration -------------------------------------------------------------------------
    def train_config(self) -> TrainConfig:
        """The VAE's training configuration from this detector's parameters (validated)."""
        return TrainConfig(
            hidden=self.hidden,
            lr=self.lr,
            weight_decay=self.weight_decay,
            max_epochs=self.max_epochs,
            patience=self.patience,
            batch_size=self.batch_size,
            decoder_samples=self.decoder_samples,
        )

    def _check_params(self) -> None:
        if self.mc_passes < 1 or self.iwae_samples < 1:
            raise UsageError(
                f"mc_passes and iwae_samples must be >= 1, got {self.mc_passes}, {self.iwae_samples}"
            )
        if self.aggregate_size is not None and self.aggregate_size < 1:
            raise UsageError(f"aggregate_size must be >= 1 or None (all rows), got {self.aggregate_size}")

    @property
    def _seed(self) -> int:
        return 0 if self.random_state is None else int(self.random_state)

    def _path(self, suffix: str, key: str) -> Path | None:
        if self.work_dir is None:
            return None
        return Path(self.work_dir) / f"seed{self._seed}-{key}-{suffix}"

    # -- the contract ----------------------------------------------------------------------------
    def _fit(self, X: np.ndarray, X_val: np.ndarray | None) -> None:
        config = self.train_config()
        self._check_params()
        device = resolve_device(self.device)
        self.timings_: dict[str, float] = {}
        with torch_threads(self.threads):
            t0 = time.perf_counter()
            self.vocabulary_ = Vocabulary.fit(X)
            train = distinct_rows(self.vocabulary_.codes(X))
            val = distinct_rows(self.vocabulary_.codes(X_val)) if X_val is not None else None
            self.key_ = fingerprint(
                FORMAT,
                config.to_dict(),
                self._seed,
                [v.tolist() for v in self.vocabulary_.values],
                train.rows,
                train.counts,
                None if val is None else val.rows,
                None if val is None else val.counts,
            )
            # Statistics also depend on how they are computed: their files carry a key of their own.
            self.stats_key_ = fingerprint(self.key_, self.mc_passes, self.iwae_samples, self.aggregate_size)
            self._train_vae(config, train, val, device)
            self.timings_["train"] = time.perf_counter() - t0

            t0 = time.perf_counter()
            self.posterior_ = aggregate_posterior(
                self.model_,
                train.rows,
                train.counts,
                size=self.aggregate_size,
                seed=self._seed,
                device=device,
            )
            self.statistics_: dict[str, np.ndarray] = {}
            train_stats = self._statistics(train.rows, train.counts, "training")
            if val is not None:
                self._statistics(val.rows, val.counts, "validation")
            self.timings_["statistics"] = time.perf_counter() - t0

        t0 = time.perf_counter()
        self._fit_svm(train.expand(train_stats))
        self.fit_warnings_ = list(self.svm_.fit_warnings_)
        if self.history_.get("stopped", "").startswith("diverged"):
            self.fit_warnings_.insert(0, f"VAE training {self.history_['stopped']} (lower lr)")
        self.threshold_ = self.svm_.threshold_
        self.timings_["svm"] = time.perf_counter() - t0

    def _score(self, X: np.ndarray) -> np.ndarray:
        fold, stats = self._distinct_statistics(X)
        return fold.expand(self.svm_.score_samples(stats))

    def statistics(self, X: Any) -> np.ndarray:
        """The five DoSE statistics of every row of X (columns in `STATISTICS` order)."""
        fold, stats = self._distinct_statistics(self._check_input(X))
        return fold.expand(stats)

    def _distinct_statistics(self, X: np.ndarray) -> tuple[DistinctRows, np.ndarray]:
        """X's distinct rows and their statistics (computed once per distinct row)."""
        fold = distinct_rows(self.vocabulary_.codes(X))
        with torch_threads(self.threads):
            return fold, self._statistics(fold.rows, None, "scored")

    # -- the pieces --------------------------------------------------------------------------------
    def _train_vae(self, config: TrainConfig, train, val, device: torch.device) -> None:
        path = self._path("vae.pt", self.key_)
        saved = load_checkpoint(path) if (path is not None and self.resume) else None
        model = CategoricalVAE(self.vocabulary_.sizes, config.hidden).to(device)
        if saved is not None and saved.get("key") == self.key_:
            model.load_state_dict(saved["state"])
            self.history_ = {k: saved[k] for k in HISTORY}
            self.resumed_ = True
        else:
            result = fit_vae(
                (train.rows, train.counts),
                None if val is None else (val.rows, val.counts),
                self.vocabulary_.sizes,
                config,
                seed=self._seed,
                device=device,
            )
            model.load_state_dict(result.state)
            self.history_ = {k: getattr(result, k) for k in HISTORY}
            self.resumed_ = False
            if path is not None:
                state = {k: v.detach().cpu() for k, v in result.state.items()}
                save_checkpoint(path, {"key": self.key_, "format": FORMAT, "state": state, **self.history_})
        model.eval()
        self.model_ = model

    def _fit_svm(self, train_stats: np.ndarray) -> None:
        """PCA + SGDOneClassSVM on every training row's statistics (or the saved one, resuming)."""

        def make() -> WhitenedOneClassSVM:
            return WhitenedOneClassSVM(nu=self.nu, random_state=self._seed)

        self.svm_key_ = fingerprint(self.stats_key_, self.nu)
        path = self._path("svm.npz", self.svm_key_)
        svm = load_svm(path, make) if (path is not None and self.resume) else None
        self.svm_resumed_ = svm is not None
        if svm is None:
            svm = make().fit(train_stats)
            if path is not None:
                save_svm(path, svm)
        self.svm_ = svm

    def _statistics(self, codes: np.ndarray, counts: np.ndarray | None, what: str) -> np.ndarray:
        """DoSE statistics of distinct category rows: from memory, from `work_dir`, or computed."""
        rows_key = fingerprint(codes)
        if rows_key in self.statistics_:
            return self.statistics_[rows_key]
        name = f"statistics-{what}.npz" if what != "scored" else f"statistics-scored-{rows_key}.npz"
        path = self._path(name, self.stats_key_)
        stats = load_statistics(path, codes) if (path is not None and self.resume) else None
        if stats is None:
            stats = dose_statistics(
                self.model_,
                codes,
                self.posterior_,
                passes=self.mc_passes,
                iwae_samples=self.iwae_samples,
                seed=self._seed,
                device=next(self.model_.parameters()).device,
            )
            if path is not None:
                save_statistics(path, codes, counts, stats)
        self.statistics_[rows_key] = stats
        return stats


__all__ = ["STATISTICS", "DoSE"]
