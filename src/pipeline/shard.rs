//! Scoring an archive on several machines: `infer --shard K/N` classifies the images whose id
//! falls in shard K of N (a deterministic partition by a stable hash of the image id, so every
//! machine agrees without coordination), and `merge` joins the shard CSVs into the CSV one run
//! over all images writes, byte for byte (rows sorted by image id, as `infer` sorts them).
//!
//! Each shard CSV gets a sidecar `<csv>.shard.json` (shard, count, model file hash, rows) so
//! `merge` can refuse what would silently be wrong: a missing or repeated shard, shards of
//! different partitions or models, an image in two files or in the wrong shard.

use std::collections::{BTreeMap, HashSet};
use std::path::{Path, PathBuf};

use serde_json::json;

use crate::error::{Result, file_err, invalid};
use crate::io::atomic::write_atomic;
use crate::io::hash::fnv1a64;

/// Shard `k` (1-based) of `n`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Shard {
    pub k: usize,
    pub n: usize,
}

impl std::str::FromStr for Shard {
    type Err = String;
    /// "K/N" with 1 <= K <= N.
    fn from_str(s: &str) -> std::result::Result<Self, String> {
        let bad = || format!("shard {s:?} is not K/N with 1 <= K <= N (e.g. 2/8)");
        let (k, n) = s.split_once('/').ok_or_else(bad)?;
        let (k, n): (usize, usize) = (
            k.trim().parse().map_err(|_| bad())?,
            n.trim().parse().map_err(|_| bad())?,
        );
        if k == 0 || k > n {
            return Err(bad());
        }
        Ok(Shard { k, n })
    }
}

impl Shard {
    /// The shard (1-based) image `id` belongs to among `n`.
    pub fn of(id: &str, n: usize) -> usize {
        (fnv1a64(id.as_bytes()) % n.max(1) as u64) as usize + 1
    }

    pub fn contains(&self, id: &str) -> bool {
        Shard::of(id, self.n) == self.k
    }
}

/// The sidecar of a shard CSV.
pub fn sidecar_path(csv: &Path) -> PathBuf {
    let mut s = csv.as_os_str().to_owned();
    s.push(".shard.json");
    PathBuf::from(s)
}

/// Writes the sidecar of shard CSV `csv` (written first) with `rows` rows, for model hash `model`.
pub fn write_sidecar(csv: &Path, shard: Shard, rows: usize, model: &str) -> Result<()> {
    let v = json!({"shard": shard.k, "of": shard.n, "rows": rows, "model": model});
    write_atomic(&sidecar_path(csv), v.to_string().as_bytes())
}

/// Joins shard CSVs into `out`: rows sorted by image id under the common header, exactly what
/// one `infer` over all images writes. Refuses an incomplete or inconsistent set (see the
/// module doc); nothing is written then.
pub fn merge(out: &Path, inputs: &[PathBuf]) -> Result<usize> {
    if inputs.is_empty() {
        return Err(invalid("merge", "no shard CSVs given"));
    }
    let mut header: Option<String> = None;
    let mut rows: BTreeMap<String, (String, PathBuf)> = BTreeMap::new();
    let mut seen_shards = HashSet::new();
    let (mut total, mut model) = (None, None);
    for csv in inputs {
        let side = sidecar_path(csv);
        let meta: serde_json::Value = std::fs::read_to_string(&side)
            .map_err(|e| {
                file_err(
                    &side,
                    format!("cannot read the shard record ({e}): was this CSV written by `infer --shard`?"),
                )
            })
            .and_then(|t| {
                serde_json::from_str(&t).map_err(|e| file_err(&side, format!("not JSON: {e}")))
            })?;
        let num = |k: &str| {
            meta.get(k)
                .and_then(|v| v.as_u64())
                .map(|v| v as usize)
                .ok_or_else(|| file_err(&side, format!("no `{k}` in the shard record")))
        };
        let shard = Shard {
            k: num("shard")?,
            n: num("of")?,
        };
        if shard.k == 0 || shard.k > shard.n {
            return Err(file_err(
                &side,
                format!("shard {}/{} is not K/N with 1 <= K <= N", shard.k, shard.n),
            ));
        }
        let m = meta.get("model").and_then(|v| v.as_str()).unwrap_or("");
        if *total.get_or_insert(shard.n) != shard.n {
            return Err(file_err(
                csv,
                format!(
                    "is shard {}/{} but an earlier file is of {} shards",
                    shard.k,
                    shard.n,
                    total.unwrap()
                ),
            ));
        }
        if *model.get_or_insert(m.to_string()) != m {
            return Err(file_err(csv, "was written with another model file"));
        }
        if !seen_shards.insert(shard.k) {
            return Err(file_err(
                csv,
                format!("shard {}/{} given twice", shard.k, shard.n),
            ));
        }
        let text =
            std::fs::read_to_string(csv).map_err(|e| file_err(csv, format!("cannot read: {e}")))?;
        let mut lines = text.lines();
        let h = lines
            .next()
            .ok_or_else(|| file_err(csv, "empty file: no header line"))?;
        if *header.get_or_insert_with(|| h.to_string()) != h {
            return Err(file_err(csv, "its header differs from the other shards'"));
        }
        let mut count = 0;
        for (i, line) in lines.enumerate() {
            let id = line.split(',').next().unwrap_or("").to_string();
            if !shard.contains(&id) {
                return Err(file_err(
                    csv,
                    format!(
                        "line {}: image {id} belongs to shard {}/{}, not {}/{}",
                        i + 2,
                        Shard::of(&id, shard.n),
                        shard.n,
                        shard.k,
                        shard.n
                    ),
                ));
            }
            if let Some((_, other)) = rows.insert(id.clone(), (line.to_string(), csv.clone())) {
                return Err(file_err(
                    csv,
                    format!("image {id} is also in {}", other.display()),
                ));
            }
            count += 1;
        }
        if count != num("rows")? {
            return Err(file_err(
                csv,
                format!("holds {count} rows, its shard record says {}", num("rows")?),
            ));
        }
    }
    let n = total.unwrap_or(0);
    // Every seen shard is in 1..=n, so this many are missing; N comes from a file and may be
    // huge, so at most 10 are listed.
    let missing = n - seen_shards.len();
    if missing > 0 {
        let shown: Vec<String> = (1..=n)
            .filter(|k| !seen_shards.contains(k))
            .take(10)
            .map(|k| format!("{k}/{n}"))
            .collect();
        let more = if missing > shown.len() {
            format!(" and {} more", missing - shown.len())
        } else {
            String::new()
        };
        return Err(invalid(
            "merge",
            format!(
                "incomplete set of shards: missing {}{more}",
                shown.join(", ")
            ),
        ));
    }
    if rows.is_empty() {
        return Err(invalid("merge", "no image in any shard; nothing written"));
    }
    let mut text = header.unwrap_or_default();
    text.push('\n');
    for (line, _) in rows.values() {
        text.push_str(line);
        text.push('\n');
    }
    write_atomic(out, text.as_bytes())?;
    Ok(rows.len())
}

#[cfg(test)]
mod tests {
    use super::Shard;

    #[test]
    fn shards_parse_and_partition_every_id_once() {
        assert_eq!("2/8".parse::<Shard>(), Ok(Shard { k: 2, n: 8 }));
        for bad in ["0/3", "4/3", "3", "a/b", "1/0", ""] {
            assert!(bad.parse::<Shard>().is_err(), "{bad}");
        }
        let ids: Vec<String> = (0..1000).map(|i| format!("ISIC_{i:07}")).collect();
        let mut sizes = [0usize; 4];
        for id in &ids {
            let owners: Vec<usize> = (1..=4)
                .filter(|&k| Shard { k, n: 4 }.contains(id))
                .collect();
            assert_eq!(owners.len(), 1, "{id}");
            sizes[owners[0] - 1] += 1;
        }
        // A stable hash spreads ids about evenly (expected 250 each; 5 sigma ~ 70).
        assert!(sizes.iter().all(|&s| (180..=320).contains(&s)), "{sizes:?}");
    }
}
