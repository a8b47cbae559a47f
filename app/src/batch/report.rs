//! Per-shard reports written next to the outputs (`_reports/shard-0007-of-0064.json`, and
//! `_reports/shard-0007-of-0064.SUCCESS` when the shard finished with no failed file), and
//! `clearpaint batch report URL`, which merges them and names the shards that are missing.

use std::collections::BTreeMap;

use anyhow::{Result, anyhow, bail};
use clearpaint_core::batch::{Report, Shard};
use serde::{Deserialize, Serialize};

use super::store::Place;

/// The folder under the output place that holds the reports.
pub const REPORTS: &str = "_reports";

/// What one shard did, as written to `_reports/`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ShardReport {
    /// `batch weather`, `batch inpaint`, `batch generate`.
    pub command: String,
    pub clearpaint: String,
    pub shard: u64,
    pub shards: u64,
    /// Unix time the shard started, in seconds.
    pub started: f64,
    pub seconds: f64,
    pub done: usize,
    pub skipped: usize,
    /// Of the skipped, those whose outputs were already there (an earlier or a concurrent
    /// attempt wrote them): `done + existing` outputs of this shard are in place.
    pub existing: usize,
    pub failed: usize,
    /// Images written per second of the shard's run.
    pub images_per_second: f64,
    pub files: Report,
}

/// `shard-0007-of-0064` (four digits at least, 0-based index).
pub fn shard_name(s: Shard) -> String {
    format!("shard-{:04}-of-{:04}", s.index, s.count)
}

impl ShardReport {
    pub fn new(
        command: &str,
        shard: Shard,
        started: std::time::SystemTime,
        files: &Report,
    ) -> Self {
        let seconds = started.elapsed().map(|d| d.as_secs_f64()).unwrap_or(0.0);
        let mut files = files.clone();
        files.done.sort();
        files.skipped.sort_by(|a, b| a.file.cmp(&b.file));
        files.failed.sort_by(|a, b| a.file.cmp(&b.file));
        ShardReport {
            command: command.to_string(),
            clearpaint: env!("CARGO_PKG_VERSION").to_string(),
            shard: shard.index,
            shards: shard.count,
            started: started
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_secs_f64())
                .unwrap_or(0.0),
            seconds,
            done: files.done.len(),
            skipped: files.skipped.len(),
            existing: files
                .skipped
                .iter()
                .filter(|e| {
                    e.reason == clearpaint_core::batch::OUTPUT_EXISTS
                        || e.reason == clearpaint_core::batch::WRITTEN_MEANWHILE
                })
                .count(),
            failed: files.failed.len(),
            images_per_second: if seconds > 0.0 {
                files.done.len() as f64 / seconds
            } else {
                0.0
            },
            files,
        }
    }

    /// Writes the report (replacing an earlier attempt's) and then, when nothing failed, the
    /// shard's success marker (removed when this attempt had failures).
    pub fn write(&self, out: &Place) -> Result<()> {
        let name = shard_name(Shard {
            index: self.shard,
            count: self.shards,
        });
        let json = serde_json::to_vec_pretty(self)?;
        let dir = out.child(REPORTS);
        dir.put(&format!("{name}.json"), json)?;
        let marker = format!("{name}.SUCCESS");
        if self.failed == 0 {
            dir.put(&marker, Vec::new())?;
        } else {
            dir.delete(&marker)?;
        }
        Ok(())
    }
}

/// The merged view of an output place's reports.
#[derive(Debug, Default, Serialize)]
pub struct Merged {
    pub shards: u64,
    pub reported: Vec<u64>,
    pub missing: Vec<u64>,
    /// Shards whose report has failures (or no success marker).
    pub unclean: Vec<u64>,
    pub done: usize,
    pub skipped: usize,
    pub existing: usize,
    pub failed: usize,
    pub seconds: f64,
    pub failures: Vec<(String, String)>,
}

/// Reads `_reports/` under `out` and merges what the shards of one run wrote.
pub fn merge(out: &Place) -> Result<Merged> {
    let dir = out.child(REPORTS);
    let keys = dir.list_all()?;
    let mut by_count: BTreeMap<u64, Vec<ShardReport>> = BTreeMap::new();
    for key in keys.iter().filter(|k| k.ends_with(".json")) {
        let bytes = dir.read(key)?;
        let r: ShardReport = serde_json::from_slice(&bytes)
            .map_err(|e| anyhow!("{}: not a shard report: {e}", dir.show(key)))?;
        by_count.entry(r.shards).or_default().push(r);
    }
    if by_count.is_empty() {
        bail!("{}: no shard reports (no batch has finished here yet)", dir);
    }
    if by_count.len() > 1 {
        let counts: Vec<String> = by_count.keys().map(|c| c.to_string()).collect();
        bail!(
            "{dir}: reports of runs with different shard counts ({}); merge one run's",
            counts.join(", ")
        );
    }
    let (shards, reports) = by_count.into_iter().next().expect("one count");
    let mut m = Merged {
        shards,
        ..Default::default()
    };
    for r in &reports {
        m.reported.push(r.shard);
        m.done += r.done;
        m.skipped += r.skipped;
        m.existing += r.existing;
        m.failed += r.failed;
        m.seconds = m.seconds.max(r.seconds);
        let marker = format!(
            "{}.SUCCESS",
            shard_name(Shard {
                index: r.shard,
                count: shards
            })
        );
        if r.failed > 0 || !keys.contains(&marker) {
            m.unclean.push(r.shard);
        }
        for f in &r.files.failed {
            m.failures.push((f.file.clone(), f.reason.clone()));
        }
    }
    m.reported.sort();
    m.unclean.sort();
    m.missing = (0..shards).filter(|i| !m.reported.contains(i)).collect();
    Ok(m)
}

/// Compresses sorted indices into ranges for messages: `0-3, 7, 9-12`.
pub fn ranges(v: &[u64]) -> String {
    let mut parts = Vec::new();
    let mut i = 0;
    while i < v.len() {
        let mut j = i;
        while j + 1 < v.len() && v[j + 1] == v[j] + 1 {
            j += 1;
        }
        parts.push(if i == j {
            v[i].to_string()
        } else {
            format!("{}-{}", v[i], v[j])
        });
        i = j + 1;
    }
    parts.join(", ")
}

/// `clearpaint batch report URL`: prints the merged summary; fails when shards are missing or
/// unclean, so a pipeline can wait on it.
pub fn run(out: &Place, json: Option<&std::path::Path>) -> Result<()> {
    let m = merge(out)?;
    println!(
        "{out}: {} of {} shard(s) reported, {} clean; done {}, skipped {} ({} already there), \
         failed {}; longest shard {:.1} s",
        m.reported.len(),
        m.shards,
        m.reported.len() - m.unclean.len(),
        m.done,
        m.skipped,
        m.existing,
        m.failed,
        m.seconds
    );
    if !m.missing.is_empty() {
        println!("  missing shards: {}", ranges(&m.missing));
    }
    if !m.unclean.is_empty() {
        println!("  shards with failures: {}", ranges(&m.unclean));
    }
    for (file, reason) in m.failures.iter().take(20) {
        println!("  failed {file}: {reason}");
    }
    if let Some(path) = json {
        let bytes = serde_json::to_vec_pretty(&m)?;
        clearpaint_core::files::write_atomic(path, &bytes)
            .map_err(|e| anyhow!("{}: cannot write: {e}", path.display()))?;
    }
    if !m.missing.is_empty() || !m.unclean.is_empty() {
        bail!(
            "{} shard(s) missing, {} with failures",
            m.missing.len(),
            m.unclean.len()
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges_compress_runs() {
        assert_eq!(ranges(&[0, 1, 2, 3, 7, 9, 10]), "0-3, 7, 9-10");
        assert_eq!(ranges(&[]), "");
    }

    /// Two of three shards reported, one with a failure: the merge counts both, names the
    /// missing one and the unclean one.
    #[test]
    fn merge_names_missing_and_unclean_shards() {
        let dir = tempfile::tempdir().unwrap();
        let out = Place::Local(dir.path().to_path_buf());
        let t = std::time::SystemTime::now();
        let a = Report {
            done: vec!["a.jpg".into(), "b.jpg".into()],
            ..Default::default()
        };
        ShardReport::new("batch weather", Shard { index: 0, count: 3 }, t, &a)
            .write(&out)
            .unwrap();
        let mut b = Report {
            done: vec!["c.jpg".into()],
            ..Default::default()
        };
        b.fail(std::path::Path::new("d.jpg"), "corrupt");
        ShardReport::new("batch weather", Shard { index: 2, count: 3 }, t, &b)
            .write(&out)
            .unwrap();
        let m = merge(&out).unwrap();
        assert_eq!((m.done, m.failed, m.shards), (3, 1, 3));
        assert_eq!(m.missing, [1]);
        assert_eq!(m.unclean, [2]);
        assert!(
            dir.path()
                .join("_reports/shard-0000-of-0003.SUCCESS")
                .is_file()
        );
        assert!(
            !dir.path()
                .join("_reports/shard-0002-of-0003.SUCCESS")
                .exists()
        );
        let e = run(&out, None).unwrap_err().to_string();
        assert_eq!(e, "1 shard(s) missing, 1 with failures");
    }
}
