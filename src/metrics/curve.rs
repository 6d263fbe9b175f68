//! The numerical routines the scorer borrows from NumPy and scikit-learn, reproduced operation
//! by operation so results match to the last bit: NumPy's pairwise `np.sum`, `np.interp` for
//! two points, sklearn's binary classification curve, ROC AUC, the scorer's partial AUC above a
//! sensitivity, average precision, and `sklearn.metrics.auc`.

/// NumPy's `np.sum` of a contiguous float64 array: pairwise summation in blocks of up to 128
/// with 8 interleaved accumulators, starting from the identity 0.0. Reproducing it (rather than
/// summing left to right) makes AUC and AP agree with the scorer to the last bit.
pub(super) fn numpy_sum(a: &[f64]) -> f64 {
    0.0 + pairwise(a)
}

fn pairwise(a: &[f64]) -> f64 {
    let n = a.len();
    if n < 8 {
        let mut res = 0.0;
        for &x in a {
            res += x;
        }
        res
    } else if n <= 128 {
        let mut r: [f64; 8] = a[..8].try_into().expect("8 elements");
        let mut i = 8;
        while i < n - n % 8 {
            for j in 0..8 {
                r[j] += a[i + j];
            }
            i += 8;
        }
        let mut res = ((r[0] + r[1]) + (r[2] + r[3])) + ((r[4] + r[5]) + (r[6] + r[7]));
        while i < n {
            res += a[i];
            i += 1;
        }
        res
    } else {
        let mut n2 = n / 2;
        n2 -= n2 % 8;
        pairwise(&a[..n2]) + pairwise(&a[n2..])
    }
}

/// sklearn's `_binary_clf_curve`: cumulative weighted true and false positives at each distinct
/// score, scores descending, rows of weight 0 dropped.
pub(super) struct Curve {
    tps: Vec<f64>,
    fps: Vec<f64>,
}

impl Curve {
    pub(super) fn new(y: &[bool], score: &[f64], w: &[f64]) -> Curve {
        let mut idx: Vec<usize> = (0..y.len()).filter(|&i| w[i] != 0.0).collect();
        // Stable, descending (ties keep their order).
        idx.sort_by(|&a, &b| score[b].partial_cmp(&score[a]).expect("finite scores"));
        let (mut tps, mut fps) = (Vec::new(), Vec::new());
        let (mut tp, mut fp) = (0.0, 0.0);
        for (k, &i) in idx.iter().enumerate() {
            if y[i] {
                tp += w[i];
            } else {
                fp += w[i];
            }
            // (1 - y) * w adds 0.0 to fp for positives: the same bits as skipping it.
            let last = k + 1 == idx.len();
            if last || score[idx[k + 1]] != score[i] {
                tps.push(tp);
                fps.push(fp);
            }
        }
        Curve { tps, fps }
    }

    /// `sklearn.metrics.roc_curve` (fpr, tpr), with or without dropping collinear points.
    fn roc(&self, drop_intermediate: bool) -> (Vec<f64>, Vec<f64>) {
        let (mut tps, mut fps) = (self.tps.clone(), self.fps.clone());
        if drop_intermediate && fps.len() > 2 {
            let d2 = |v: &[f64], i: usize| (v[i + 2] - v[i + 1]) - (v[i + 1] - v[i]);
            let n = fps.len();
            let keep: Vec<usize> = (0..n)
                .filter(|&i| {
                    i == 0 || i == n - 1 || d2(&fps, i - 1) != 0.0 || d2(&tps, i - 1) != 0.0
                })
                .collect();
            tps = keep.iter().map(|&i| self.tps[i]).collect();
            fps = keep.iter().map(|&i| self.fps[i]).collect();
        }
        tps.insert(0, 0.0);
        fps.insert(0, 0.0);
        let rate = |v: &[f64]| -> Vec<f64> {
            let last = *v.last().expect("non-empty");
            if last <= 0.0 {
                vec![f64::NAN; v.len()]
            } else {
                v.iter().map(|x| x / last).collect()
            }
        };
        (rate(&fps), rate(&tps))
    }

    pub(super) fn roc_auc(&self) -> f64 {
        let (fpr, tpr) = self.roc(true);
        sklearn_auc(&fpr, &tpr)
    }

    /// The scorer's `auc_above_sensitivity`.
    pub(super) fn auc_above_sensitivity(&self, sens: f64) -> f64 {
        let (fpr, tpr) = self.roc(false);
        // searchsorted(tpr, sens, 'left'). A class without positives has a NaN curve: no index
        // is found and the result is NaN (the scorer crashes there).
        let i = tpr.iter().position(|&t| t >= sens).unwrap_or(tpr.len());
        if i == 0 || i >= tpr.len() {
            return f64::NAN;
        }
        let fpt = numpy_interp2(sens, [tpr[i - 1], tpr[i]], [fpr[i - 1], fpr[i]]);
        let mut x = vec![fpt];
        x.extend_from_slice(&fpr[i..]);
        let mut y = vec![sens];
        y.extend_from_slice(&tpr[i..]);
        sklearn_auc(&x, &y)
    }

    /// `sklearn.metrics.average_precision_score` (binary).
    pub(super) fn average_precision(&self) -> f64 {
        let k = self.tps.len();
        let last_tp = self.tps[k - 1];
        let precision: Vec<f64> = (0..k)
            .map(|i| {
                let ps = self.tps[i] + self.fps[i];
                if ps != 0.0 { self.tps[i] / ps } else { 0.0 }
            })
            .collect();
        let recall: Vec<f64> = if last_tp == 0.0 {
            vec![1.0; k]
        } else {
            self.tps.iter().map(|t| t / last_tp).collect()
        };
        // Reversed, with (recall 0, precision 1) appended; sum of diff(recall) * precision[:-1].
        let r: Vec<f64> = recall.iter().rev().copied().chain([0.0]).collect();
        let p: Vec<f64> = precision.iter().rev().copied().collect();
        let terms: Vec<f64> = (0..k).map(|i| (r[i + 1] - r[i]) * p[i]).collect();
        let ap = -numpy_sum(&terms);
        // Python's max(0.0, ap): 0.0 unless ap > 0 (also for NaN).
        if ap > 0.0 { ap } else { 0.0 }
    }
}

/// `np.interp(x, xp, fp)` for two sample points (NumPy's C code path).
fn numpy_interp2(x: f64, xp: [f64; 2], fp: [f64; 2]) -> f64 {
    if x.is_nan() {
        return x;
    }
    if x > xp[1] {
        return fp[1];
    }
    if x < xp[0] {
        return fp[0];
    }
    if x >= xp[1] {
        return fp[1];
    }
    if xp[0] == x {
        return fp[0];
    }
    let slope = (fp[1] - fp[0]) / (xp[1] - xp[0]);
    let mut r = slope * (x - xp[0]) + fp[0];
    if r.is_nan() {
        r = slope * (x - xp[1]) + fp[1];
        if r.is_nan() && fp[0] == fp[1] {
            r = fp[0];
        }
    }
    r
}

/// `sklearn.metrics.auc(x, y)`: trapezoids summed as `scipy.integrate.trapezoid` does; NaN where
/// sklearn raises (x neither increasing nor decreasing).
fn sklearn_auc(x: &[f64], y: &[f64]) -> f64 {
    let dx: Vec<f64> = x.windows(2).map(|p| p[1] - p[0]).collect();
    let direction = if dx.iter().any(|&d| d < 0.0) {
        if dx.iter().all(|&d| d <= 0.0) {
            -1.0
        } else {
            return f64::NAN;
        }
    } else {
        1.0
    };
    let terms: Vec<f64> = (0..dx.len())
        .map(|i| dx[i] * (y[i + 1] + y[i]) / 2.0)
        .collect();
    direction * numpy_sum(&terms)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pairwise_sum_matches_sequential_for_short_and_exact_inputs() {
        let v: Vec<f64> = (1..=300).map(f64::from).collect();
        assert_eq!(numpy_sum(&v), 45150.0);
        assert_eq!(numpy_sum(&[0.1, 0.2, 0.3]), 0.1 + 0.2 + 0.3);
        // 9 elements: ((r0+r1)+(r2+r3))+((r4+r5)+(r6+r7)) then + a8.
        let a = [1e16, 1.0, -1e16, 1.0, 0.0, 0.0, 0.0, 0.0, 1.0];
        assert_eq!(numpy_sum(&a), ((1e16 + 1.0) + (-1e16 + 1.0)) + 0.0 + 1.0);
    }

    #[test]
    fn interp_two_points() {
        assert_eq!(
            numpy_interp2(0.8, [0.5, 1.0], [0.2, 0.4]),
            ((0.4 - 0.2) / (1.0 - 0.5)) * (0.8 - 0.5) + 0.2
        );
        assert_eq!(numpy_interp2(1.0, [0.5, 1.0], [0.2, 0.4]), 0.4);
    }
}
