"""The authors' benchmark procedure, re-implemented straightforwardly and independently of beth.

What the paper's code (github.com/jinxmirror13/BETH_Dataset_Analysis, run_benchmark.py) does, with
its known defects fixed and nothing else changed:
  - read each split with pandas, map the seven Appendix-A features with Python lambdas;
  - per method and seed 1..5: rcov = EllipticEnvelope(contamination=0.05); svm = PCA(whiten=True) then
    SGDOneClassSVM(random_state=seed); ifor = PCA(whiten=True) then IsolationForest(contamination=0.05,
    random_state=seed); fit once on every training row;
  - `predict` every test row, map to 0/1, average the five seeds' vectors, roc_auc_score vs `sus`.
Fixed: the polarity (their test step scored inliers as positives: here -1 -> 1), the unseeded
EllipticEnvelope (random_state=seed here), the 20 identical re-fits (one fit), the features are
handed to scikit-learn as float64 (they passed int64 tensors; the values are the same integers).

It also computes the `scores` protocol the straightforward way (score every training row and every
test row per seed; standardize by the training scores' mean and std; average; AUROC and AUPRC), so
benchmarks/bench_classic.py can time the whole protocol against beth's. Used by a test on small data
(tests/evaluation/test_reference_agreement.py) and by bench_classic.py on full-size data.

    python benchmarks/reference_authors.py DATA_DIR [--methods rcov,svm,ifor] [--seeds 5] [--json OUT]
"""

from __future__ import annotations

import argparse
import glob
import json
import os
import time
import warnings

import numpy as np
import pandas as pd
from sklearn.covariance import EllipticEnvelope
from sklearn.decomposition import PCA
from sklearn.ensemble import IsolationForest
from sklearn.linear_model import SGDOneClassSVM
from sklearn.metrics import average_precision_score, roc_auc_score

FEATURES = ["processId", "parentProcessId", "userId", "mountNamespace", "eventId", "argsNum", "returnValue"]


def read_split(data_dir: str, split: str) -> tuple[np.ndarray, pd.DataFrame]:
    """The authors' BETHDataset: pandas, every column, one lambda per feature."""
    (path,) = glob.glob(os.path.join(data_dir, f"labelled_{split}_data*.csv"))
    data = pd.read_csv(path)
    labels = data[["sus", "evil"]]
    data = pd.DataFrame(data[FEATURES])
    data["processId"] = data["processId"].map(lambda x: 0 if x in [0, 1, 2] else 1)
    data["parentProcessId"] = data["parentProcessId"].map(lambda x: 0 if x in [0, 1, 2] else 1)
    data["userId"] = data["userId"].map(lambda x: 0 if x < 1000 else 1)
    data["mountNamespace"] = data["mountNamespace"].map(lambda x: 0 if x == 4026531840 else 1)
    data["returnValue"] = data["returnValue"].map(lambda x: 0 if x == 0 else (1 if x > 0 else 2))
    return data.values.astype(np.float64), labels


class Whitened:
    """The authors' WhitenedBenchmark: PCA(whiten=True) fitted on the training data, then the model."""

    def __init__(self, model) -> None:
        self.pca, self.clf = PCA(whiten=True), model

    def fit(self, X):
        self.pca.fit(X)
        self.clf.fit(self.pca.transform(X))
        return self

    def predict(self, X):
        return self.clf.predict(self.pca.transform(X))

    def anomaly_score(self, X):
        Z = self.pca.transform(X)
        if isinstance(self.clf, IsolationForest):
            return -self.clf.score_samples(Z)
        return -self.clf.decision_function(Z)


def make(method: str, seed: int):
    if method == "rcov":
        return EllipticEnvelope(contamination=0.05, random_state=seed)
    if method == "svm":
        return Whitened(SGDOneClassSVM(random_state=seed))
    if method == "ifor":
        return Whitened(IsolationForest(contamination=0.05, random_state=seed))
    raise SystemExit(f"unknown method {method!r}")


def anomaly_score(model, X) -> np.ndarray:
    return model.mahalanobis(X) if isinstance(model, EllipticEnvelope) else model.anomaly_score(X)


def run(data_dir: str, methods: list[str], seeds: list[int]) -> dict:
    """Every number of both protocols, keyed 'method/protocol/label/metric/aggregate/seed'."""
    t0 = time.perf_counter()
    X_train, _ = read_split(data_dir, "training")
    X_test, labels = read_split(data_dir, "testing")
    timings = {"load": time.perf_counter() - t0}
    results = {}
    for method in methods:
        t0 = time.perf_counter()
        votes, scores = [], []
        for seed in seeds:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                model = make(method, seed)
                model.fit(X_train)
            votes.append(np.array([1 if y == -1 else 0 for y in model.predict(X_test)]))  # polarity fixed
            train_scores = anomaly_score(model, X_train)
            std = np.std(train_scores)
            scores.append((anomaly_score(model, X_test) - np.mean(train_scores)) / (std if std > 0 else 1.0))
        for label in ("sus", "evil"):
            y = labels[label].values
            key = f"{method}/paper/{label}/auroc"
            results[f"{key}/ensemble/"] = roc_auc_score(y, np.stack(votes).mean(axis=0))
            for seed, v in zip(seeds, votes, strict=True):
                results[f"{key}/seed/{seed}"] = roc_auc_score(y, v)
            for metric, fn in (("auroc", roc_auc_score), ("auprc", average_precision_score)):
                key = f"{method}/scores/{label}/{metric}"
                results[f"{key}/ensemble/"] = fn(y, np.stack(scores).mean(axis=0))
                for seed, s in zip(seeds, scores, strict=True):
                    results[f"{key}/seed/{seed}"] = fn(y, s)
        timings[method] = time.perf_counter() - t0
    return {"results": results, "timings": timings}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("data_dir")
    ap.add_argument("--methods", default="rcov,svm,ifor")
    ap.add_argument("--seeds", type=int, default=5)
    ap.add_argument("--json", help="write the results here (default: print)")
    args = ap.parse_args()
    out = run(args.data_dir, args.methods.split(","), list(range(1, args.seeds + 1)))
    text = json.dumps(out, indent=1)
    if args.json:
        with open(args.json, "w") as fh:
            fh.write(text)
    else:
        print(text)


if __name__ == "__main__":
    main()
