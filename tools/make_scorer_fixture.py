#!/usr/bin/env python3
"""Writes the ISIC 2018 Task 3 scoring fixtures in tests/fixtures/scorer/ (used by tests/metrics.rs).

For each case a small ground-truth CSV and prediction CSV are generated deterministically
(Python's `random.Random(seed)`, no NumPy randomness), scored by the official scorer
`isic-challenge-scoring` 5.6.0 through its Python API (the same code path as
`isic-challenge-scoring classification TRUTH PRED`), and the result is written as JSON:

    tests/fixtures/scorer/<case>/truth.csv
    tests/fixtures/scorer/<case>/pred.csv
    tests/fixtures/scorer/<case>/expected.json

`expected.json` holds `score`: the scorer's `to_dict(rocs=False)` (overall, validation,
per_category, macro_average, aggregate) with every float written as its Python `repr` string
("NaN" for NaN), so that Rust reads back exactly the bits the scorer computed; and `extra`: the
values skinengine reports that the scorer does not (plain accuracy, mean_precision, confusion
matrix, tied rows), computed here independently with scikit-learn from the scorer's own argmax
labels (`isic_challenge_scoring.metrics._to_labels`, tied rows labelled 'undecided').

Setup (about 1 minute):
    python3.11 -m venv /tmp/venv-scorer
    /tmp/venv-scorer/bin/pip install isic-challenge-scoring==5.6.0 'pandas<3'
Run from the repository root:
    /tmp/venv-scorer/bin/python tools/make_scorer_fixture.py [--out tests/fixtures/scorer]

Versions used for the committed files: see `versions` in each expected.json.
Cases:
  basic     60 rows; 2-decimal scores (many tied scores within a column), rows whose maximum is
            shared by two classes, a class (DF) that is never the argmax, rows with several or no
            values above 0.5, values exactly 0.5, rows not normalised, shuffled row order,
            some ids with a `.jpg` suffix.
  isic_test 80 rows in the legacy test-set format including ISIC_0035068, which the scorer
            weights 0 (its prediction is deliberately wrong); prediction columns in another
            order; `.JPG` suffixes; 4-decimal scores; exact 0.0 and 1.0 values.
  weighted  90 rows with explicit `score_weight` / `validation_weight` columns (weights 0, 0.5,
            1, 2), so validation differs from overall.
  large     250 rows of softmax-like 4-decimal probabilities (exercises NumPy's pairwise
            summation beyond 128 terms in AUC and AP).
A class with no positive in the ground truth is not a case: the scorer crashes on it
(`ValueError: array of sample points is empty` in `auc_above_sensitivity`).
"""
import argparse
import importlib.metadata as md
import json
import math
import pathlib
import random

import numpy as np
import pandas as pd
import sklearn.metrics

from isic_challenge_scoring.classification import ClassificationMetric, ClassificationScore
from isic_challenge_scoring.load_csv import parse_csv, parse_truth_csv, sort_rows, validate_rows
from isic_challenge_scoring.metrics import _to_labels

CLASSES = ["MEL", "NV", "BCC", "AKIEC", "BKL", "DF", "VASC"]
HEADER = "image," + ",".join(CLASSES)


def truth_labels(rng, n, base_id):
    """Class labels with every class at least twice, then random (NV-heavy) draws."""
    labels = [c for c in range(7) for _ in range(2)]
    weights = [0.15, 0.45, 0.1, 0.08, 0.12, 0.05, 0.05]
    while len(labels) < n:
        labels.append(rng.choices(range(7), weights)[0])
    rng.shuffle(labels)
    ids = [f"ISIC_{base_id + i:07d}" for i in range(n)]
    return ids, labels


def one_hot_row(image, label, extra=()):
    vals = ["1.0" if c == label else "0.0" for c in range(7)]
    return ",".join([image] + vals + list(extra))


def noisy_scores(rng, label, decimals, never=None):
    """Unnormalised scores in [0,1]; the true class is usually, not always, the largest."""
    s = [rng.random() * 0.6 for _ in range(7)]
    if rng.random() < 0.7:
        s[label] = min(1.0, s[label] + rng.random() * 0.6)
    if never is not None:
        s[never] = min(s[never], max(x for i, x in enumerate(s) if i != never) * 0.9)
    return [round(x, decimals) for x in s]


def case_basic(rng):
    ids, labels = truth_labels(rng, 60, 24306)
    truth = [HEADER] + [one_hot_row(i, l) for i, l in zip(ids, labels)]
    rows = []
    for k, (image, label) in enumerate(zip(ids, labels)):
        s = noisy_scores(rng, label, 2, never=5)
        if k % 11 == 3:  # tied maximum between two classes
            m = max(s)
            other = (s.index(m) + 1 + rng.randrange(5)) % 7
            other = other if other != 5 else 6
            s[other] = m
        if k % 13 == 5:  # a value exactly at the threshold
            s[label] = 0.5
        if k % 17 == 7:  # nothing above 0.5
            s = [round(x * 0.5, 2) for x in s]
            s[5] = min(s[5], max(s) - 0.01)
        image = image + ".jpg" if k % 9 == 2 else image
        rows.append(",".join([image] + [f"{x:.2f}" for x in s]))
    rng.shuffle(rows)
    return truth, [HEADER] + rows


def case_isic_test(rng):
    ids, labels = truth_labels(rng, 79, 34524)
    ids.append("ISIC_0035068")
    labels.append(1)
    truth = [HEADER] + [one_hot_row(i, l) for i, l in zip(ids, labels)]
    order = [6, 5, 4, 3, 2, 1, 0]  # prediction columns VASC..MEL
    rows = []
    for k, (image, label) in enumerate(zip(ids, labels)):
        if image == "ISIC_0035068":
            s = [0.0] * 7
            s[0] = 1.0  # confidently wrong: must not count
        else:
            s = noisy_scores(rng, label, 4)
            if k % 10 == 4:
                s = [0.0] * 7
                s[label if k % 20 == 4 else (label + 1) % 7] = 1.0
        image = image + ".JPG" if k % 7 == 1 else image
        vals = [s[c] for c in order]
        rows.append(",".join([image] + [f"{x:.4f}" if 0 < x < 1 else f"{x:.1f}" for x in vals]))
    rng.shuffle(rows)
    pred_header = "image," + ",".join(CLASSES[c] for c in order)
    return truth, [pred_header] + rows


def case_weighted(rng):
    ids, labels = truth_labels(rng, 90, 10015)
    truth = [HEADER + ",score_weight,validation_weight"]
    for k, (i, l) in enumerate(zip(ids, labels)):
        sw = ["1.0", "1.0", "2.0", "0.5", "0.0", "1.0", "1.0"][k % 7]
        vw = ["1.0", "0.0"][k % 3 == 0]
        truth.append(one_hot_row(i, l, (sw, vw)))
    rows = []
    for k, (image, label) in enumerate(zip(ids, labels)):
        s = noisy_scores(rng, label, 3)
        if k % 12 == 6:
            m = max(s)
            s[(s.index(m) + 2) % 7] = m
        rows.append(",".join([image] + [f"{x:.3f}" for x in s]))
    return truth, [HEADER] + rows


def case_large(rng):
    ids, labels = truth_labels(rng, 250, 30000)
    truth = [HEADER] + [one_hot_row(i, l) for i, l in zip(ids, labels)]
    rows = []
    for image, label in zip(ids, labels):
        z = [rng.gauss(0.0, 1.0) for _ in range(7)]
        z[label] += 1.5
        e = [math.exp(x) for x in z]
        t = sum(e)
        rows.append(",".join([image] + [f"{x / t:.4f}" for x in e]))
    return truth, [HEADER] + rows


CASES = {
    "basic": (case_basic, 2018),
    "isic_test": (case_isic_test, 35068),
    "weighted": (case_weighted, 7),
    "large": (case_large, 250),
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
    tl = _to_labels(truth)
    pl = _to_labels(pred)
    labels = list(truth.columns) + ["undecided"]
    cm = sklearn.metrics.confusion_matrix(tl, pl, labels=labels, sample_weight=w)
    counts = sklearn.metrics.confusion_matrix(tl[w.ne(0)], pl[w.ne(0)], labels=labels)
    diag = cm.diagonal()[:7]
    col = cm[:, :7].sum(axis=0)
    precisions = [diag[c] / col[c] for c in range(7) if col[c] > 0]
    return {
        "accuracy": repr(float(diag.sum() / w.sum())),
        "mean_precision": repr(float(np.mean(precisions))),
        "classes_predicted": int(sum(1 for c in range(7) if col[c] > 0)),
        "confusion": counts[:7, :7].tolist(),
        "undecided": counts[:7, 7].tolist(),
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
            "generator": "tools/make_scorer_fixture.py",
            "case": name,
            "versions": versions,
            "score": floats_to_str(score.to_dict(rocs=False)),
            "extra": extra_metrics(d / "truth.csv", d / "pred.csv"),
        }
        (d / "expected.json").write_text(json.dumps(out, indent=1) + "\n")
        print(f"{name}: balanced_accuracy {score.overall:.6f}, validation {score.validation:.6f}")


if __name__ == "__main__":
    main()
