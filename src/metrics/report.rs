//! A [`Report`] as text: the `--json` object, the same laid out for reading, and the table
//! `skinengine eval` prints. NaN (an undefined metric) is `null` in JSON and `-` in the table.

use super::scorer::{ClassMetrics, Report};
use std::fmt::Write as _;

fn num(v: f64) -> serde_json::Value {
    // NaN (undefined) becomes null.
    serde_json::Number::from_f64(v).map_or(serde_json::Value::Null, serde_json::Value::Number)
}

fn metrics_json(m: &ClassMetrics) -> serde_json::Value {
    serde_json::Value::Object(
        m.fields()
            .iter()
            .map(|(k, v)| (k.to_string(), num(*v)))
            .collect(),
    )
}

impl Report {
    /// The `--json` output: `bmca`, `mean_precision`, `accuracy`, `per_class` (keyed by class
    /// name: sensitivity, specificity, ppv, npv, f1, accuracy, auc, auc_sens_80, ap),
    /// `macro_average`, `confusion` (k x k, rows truth, columns prediction, in `classes` order),
    /// `undecided`, `n`, `classes`, and `validation_bmca` when known. NaN is written as null.
    pub fn to_json(&self) -> serde_json::Value {
        let mut o = serde_json::Map::new();
        o.insert("n".into(), self.n.into());
        o.insert("bmca".into(), num(self.bmca));
        o.insert("mean_precision".into(), num(self.mean_precision));
        o.insert("accuracy".into(), num(self.accuracy));
        if let Some(v) = self.validation_bmca {
            o.insert("validation_bmca".into(), num(v));
        }
        o.insert("classes".into(), self.classes.clone().into());
        o.insert(
            "per_class".into(),
            serde_json::Value::Object(
                self.classes
                    .iter()
                    .zip(&self.per_class)
                    .map(|(c, m)| (c.to_string(), metrics_json(m)))
                    .collect(),
            ),
        );
        o.insert("macro_average".into(), metrics_json(&self.macro_average));
        o.insert(
            "confusion".into(),
            self.confusion
                .iter()
                .map(|r| r.to_vec())
                .collect::<Vec<_>>()
                .into(),
        );
        o.insert("undecided".into(), self.undecided.to_vec().into());
        serde_json::Value::Object(o)
    }

    /// [`Report::to_json`] as text laid out for reading: keys in the order documented there,
    /// classes in ISIC order, one line per class and per confusion row.
    pub fn to_json_string(&self) -> String {
        let v = |x: f64| num(x).to_string();
        let obj = |m: &ClassMetrics| {
            let kv: Vec<String> = m
                .fields()
                .iter()
                .map(|(k, x)| format!("\"{k}\": {}", v(*x)))
                .collect();
            format!("{{{}}}", kv.join(", "))
        };
        let list = |r: &[usize]| {
            let s: Vec<String> = r.iter().map(usize::to_string).collect();
            format!("[{}]", s.join(", "))
        };
        let mut s = String::from("{\n");
        let _ = writeln!(s, "  \"n\": {},", self.n);
        let _ = writeln!(s, "  \"bmca\": {},", v(self.bmca));
        let _ = writeln!(s, "  \"mean_precision\": {},", v(self.mean_precision));
        let _ = writeln!(s, "  \"accuracy\": {},", v(self.accuracy));
        if let Some(x) = self.validation_bmca {
            let _ = writeln!(s, "  \"validation_bmca\": {},", v(x));
        }
        let names: Vec<String> = self.classes.iter().map(|c| format!("\"{c}\"")).collect();
        let _ = writeln!(s, "  \"classes\": [{}],", names.join(", "));
        s.push_str("  \"per_class\": {\n");
        for (c, m) in self.per_class.iter().enumerate() {
            let comma = if c + 1 < self.classes.len() { "," } else { "" };
            let _ = writeln!(s, "    \"{}\": {}{comma}", self.classes[c], obj(m));
        }
        s.push_str("  },\n");
        let _ = writeln!(s, "  \"macro_average\": {},", obj(&self.macro_average));
        s.push_str("  \"confusion\": [\n");
        for (t, r) in self.confusion.iter().enumerate() {
            let comma = if t + 1 < self.classes.len() { "," } else { "" };
            let _ = writeln!(s, "    {}{comma}", list(r));
        }
        s.push_str("  ],\n");
        let _ = writeln!(s, "  \"undecided\": {}", list(&self.undecided));
        s.push_str("}\n");
        s
    }

    /// Number of classes predicted (argmax) at least once.
    pub fn classes_predicted(&self) -> usize {
        let k = self.classes.len();
        (0..k)
            .filter(|&c| (0..k).any(|t| self.confusion[t][c] > 0))
            .count()
    }

    /// A readable table of everything.
    pub fn to_table(&self) -> String {
        let f = |v: f64| {
            if v.is_nan() {
                "     -".to_string()
            } else {
                format!("{v:6.4}")
            }
        };
        let mut s = String::new();
        let tied: usize = self.undecided.iter().sum();
        let _ = writeln!(s, "images scored            {}", self.n);
        let _ = writeln!(
            s,
            "bmca (official metric)   {}   balanced multiclass accuracy = mean recall",
            f(self.bmca)
        );
        if let Some(v) = self.validation_bmca
            && v.to_bits() != self.bmca.to_bits()
        {
            let _ = writeln!(s, "bmca, validation weights {}", f(v));
        }
        let _ = writeln!(
            s,
            "mean_precision           {}   the seed's \"MCA\": mean precision over the {} classes predicted",
            f(self.mean_precision),
            self.classes_predicted()
        );
        let _ = writeln!(s, "accuracy                 {}", f(self.accuracy));
        if tied > 0 {
            let _ = writeln!(
                s,
                "tied rows                {tied}   (maximum shared by several classes: counted wrong)"
            );
        }
        let _ = writeln!(
            s,
            "\nper class (sens..acc at p > 0.5 on the class's own column; auc80 = partial AUC above 80% sensitivity):"
        );
        let _ = writeln!(
            s,
            "{:<7} {:>6} {:>6} {:>6} {:>6} {:>6} {:>6} {:>6} {:>6} {:>6}",
            "class", "sens", "spec", "ppv", "npv", "f1", "acc", "auc", "auc80", "ap"
        );
        let rows = self
            .classes
            .iter()
            .cloned()
            .zip(self.per_class.iter())
            .chain(std::iter::once(("macro".to_string(), &self.macro_average)));
        for (name, m) in rows {
            let _ = write!(s, "{name:<7}");
            for (_, v) in m.fields() {
                let _ = write!(s, " {}", f(v));
            }
            s.push('\n');
        }
        let _ = writeln!(s, "\nconfusion (rows truth, columns argmax prediction):");
        let _ = write!(s, "{:<7}", "");
        for c in &self.classes {
            let _ = write!(s, " {c:>6}");
        }
        let _ = writeln!(s, " {:>6}", "tied");
        for (t, row) in self.confusion.iter().enumerate() {
            let _ = write!(s, "{:<7}", self.classes[t]);
            for v in row {
                let _ = write!(s, " {v:>6}");
            }
            let _ = writeln!(s, " {:>6}", self.undecided[t]);
        }
        s
    }
}
