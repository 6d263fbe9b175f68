#!/usr/bin/env python3
"""Writes the ISIC 2019 Task 1 scoring fixtures in tests/fixtures/scorer/ (used by
tests/metrics.rs), the way tools/make_scorer_fixture.py writes ISIC 2018's: a small
ground-truth CSV and prediction CSV per case, generated deterministically (`random.Random(seed)`),
scored by the official scorer `isic-challenge-scoring` 5.6.0 through its Python API (the code
path of `isic-challenge-scoring classification TRUTH PRED`), the result written as JSON with
every float as its Python `repr` ("NaN" for NaN), plus the values skinengine reports that the
scorer does not (accuracy, mean_precision, confusion, tied rows), computed here with
scikit-learn from the scorer's own argmax labels.

The scorer has no class list of its own: its categories are the truth file's columns in file
order. These cases check that skinengine takes ISIC 2019's columns the same way.

Setup (about 1 minute):
    python3 -m venv /tmp/venv-scorer
    /tmp/venv-scorer/bin/pip install isic-challenge-scoring==5.6.0 'pandas<3'
Run from the repository root:
    /tmp/venv-scorer/bin/python tools/make_scorer_fixture_2019.py [--out tests/fixtures/scorer]

Cases:
  isic2019_test     120 rows over the 9 columns MEL..SCC,UNK of the 2019 test ground truth,
                    UNK images included, with score_weight/validation_weight columns; the
                    predictions are what `skinengine infer` writes for an ISIC 2019 model (UNK
                    always 0.0), columns in another order, some tied maxima, `.jpg` suffixes.
  isic2019_trained  100 rows over the 8 trained classes (train's val_truth.csv/val_pred.csv),
                    4-decimal softmax-like scores.
A truth file with an all-zero column (the 2019 *training* ground truth's UNK) is not a case:
the scorer crashes on it (`ValueError: array of sample points is empty`).
"""
import argparse
import importlib.metadata as md
import json
import math
import pathlib
import random

import numpy as np
import sklearn.metrics

from isic_challenge_scoring.classification import ClassificationMetric, ClassificationScore
from isic_challenge_scoring.load_csv import parse_csv, parse_truth_csv, sort_rows, validate_rows
from isic_challenge_scoring.metrics import _to_labels

TRAINED = ["MEL", "NV", "BCC", "AK", "BKL", "DF", "VASC", "SCC"]
ALL = TRAINED + ["UNK"]
# ISIC 2019 training proportions; UNK as a test-set share.
WEIGHTS = [4522, 12875, 3323, 867, 2624, 239, 253, 628, 1500]


def labels_for(rng, n, k):
    labels = [c for c in range(k) for _ in range(2)]
    while len(labels) < n:
        labels.append(rng.choices(range(k), WEIGHTS[:k])[0])
    rng.shuffle(labels)
    return labels


def one_hot(label, k):
    return ["1.0" if c == label else "0.0" for c in range(k)]


def case_isic2019_test(rng):
    n, k = 120, len(ALL)
    ids = [f"ISIC_{60000 + i:07d}" for i in range(n)]
    labels = labels_for(rng, n, k)
    truth = ["image," + ",".join(ALL) + ",score_weight,validation_weight"]
    for j, (i, l) in enumerate(zip(ids, labels)):
        sw = ["1.0", "1.0", "2.0", "0.5", "1.0"][j % 5]
        vw = ["1.0", "0.0"][j % 4 == 0]
        truth.append(",".join([i] + one_hot(l, k) + [sw, vw]))
    order = [8, 7, 0, 1, 2, 3, 4, 5, 6]  # UNK, SCC, MEL..VASC
    rows = []
    for j, (image, label) in enumerate(zip(ids, labels)):
        s = [rng.random() * 0.5 for _ in TRAINED]
        if label < len(TRAINED) and rng.random() < 0.7:
            s[label] += rng.random() * 0.5
        s = [round(x, 3) for x in s]
        if j % 15 == 4:
            m = max(s)
            s[(s.index(m) + 3) % len(TRAINED)] = m
        s.append(0.0)  # UNK, as skinengine writes it
        image = image + ".jpg" if j % 9 == 2 else image
        rows.append(",".join([image] + [f"{s[c]:.3f}" if c < 8 else "0.0" for c in order]))
    rng.shuffle(rows)
    return truth, ["image," + ",".join(ALL[c] for c in order)] + rows


def case_isic2019_trained(rng):
    n, k = 100, len(TRAINED)
    ids = [f"ISIC_{24306 + i:07d}" for i in range(n)]
    labels = labels_for(rng, n, k)
    head = "image," + ",".join(TRAINED)
    truth = [head] + [",".join([i] + one_hot(l, k)) for i, l in zip(ids, labels)]
    rows = []
    for image, label in zip(ids, labels):
        z = [rng.gauss(0.0, 1.0) for _ in range(k)]
        z[label] += 1.5
        e = [math.exp(x) for x in z]
        t = sum(e)
        rows.append(",".join([image] + [f"{x / t:.4f}" for x in e]))
    return truth, [head] + rows


CASES = {
    "isic2019_test": (case_isic2019_test, 2019),
    "isic2019_trained": (case_isic2019_trained, 8),
}


def floats_to_str(x):
    if isinstance(x, dict):
        return {k: floats_to_str(v) for k, v in x.items()}
    if isinstance(x, (float, np.floating)):
        return repr(float(x)) if not math.isnan(x) else "NaN"
    return x


def extra_metrics(truth_path, pred_path):
    """Values skinengine reports beyond the scorer, from the scorer's own parsing and labels."""
    with open(truth_path) as f:
        truth, weights = parse_truth_csv(f)
    with open(pred_path) as f:
        pred = parse_csv(f, truth.columns)
    validate_rows(truth, pred)
    sort_rows(truth)
    sort_rows(pred)
    weights = weights.sort_index()
    w = weights.score_weight
    k = len(truth.columns)
    tl = _to_labels(truth)
    pl = _to_labels(pred)
    labels = list(truth.columns) + ["undecided"]
    cm = sklearn.metrics.confusion_matrix(tl, pl, labels=labels, sample_weight=w)
    counts = sklearn.metrics.confusion_matrix(tl[w.ne(0)], pl[w.ne(0)], labels=labels)
    diag = cm.diagonal()[:k]
    col = cm[:, :k].sum(axis=0)
    precisions = [diag[c] / col[c] for c in range(k) if col[c] > 0]
    return {
        "classes": list(truth.columns),
        "accuracy": repr(float(diag.sum() / w.sum())),
        "mean_precision": repr(float(np.mean(precisions))),
        "classes_predicted": int(sum(1 for c in range(k) if col[c] > 0)),
        "confusion": counts[:k, :k].tolist(),
        "undecided": counts[:k, k].tolist(),
    }


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", default="tests/fixtures/scorer")
    args = ap.parse_args()
    versions = {
        p: md.version(p) for p in ["isic-challenge-scoring", "pandas", "numpy", "scikit-learn", "scipy"]
    }
    assert versions["isic-challenge-scoring"] == "5.6.0", versions
    for name, (make, seed) in CASES.items():
        truth, pred = make(random.Random(seed))
        d = pathlib.Path(args.out) / name
        d.mkdir(parents=True, exist_ok=True)
        (d / "truth.csv").write_text("\n".join(truth) + "\n")
        (d / "pred.csv").write_text("\n".join(pred) + "\n")
        score = ClassificationScore.from_file(
            d / "truth.csv", d / "pred.csv", ClassificationMetric.BALANCED_ACCURACY
        )
        out = {
            "generator": "tools/make_scorer_fixture_2019.py",
            "case": name,
            "versions": versions,
            "score": floats_to_str(score.to_dict(rocs=False)),
            "extra": extra_metrics(d / "truth.csv", d / "pred.csv"),
        }
        (d / "expected.json").write_text(json.dumps(out, indent=1) + "\n")
        print(f"{name}: balanced_accuracy {score.overall:.6f}, validation {score.validation:.6f}")


if __name__ == "__main__":
    main()
