//! Planning batch runs over folders: which images, which masks, which outputs, which shard,
//! which seed. Pure functions (no models, no printing), so the CLI and tests share them.

use std::path::{Path, PathBuf};

use crate::imaging::is_image_path;

/// Errors planning a batch.
#[derive(Debug, thiserror::Error)]
pub enum BatchError {
    #[error("{}: {problem}", path.display())]
    Path { path: PathBuf, problem: String },
    #[error("{0}")]
    Usage(String),
}

/// Image files under `root` (recursively if asked), as paths relative to `root`, sorted.
pub fn list_images(root: &Path, recursive: bool) -> Result<Vec<PathBuf>, BatchError> {
    if !root.is_dir() {
        return Err(BatchError::Path {
            path: root.to_path_buf(),
            problem: "not a folder".into(),
        });
    }
    let mut out = Vec::new();
    let mut stack = vec![PathBuf::new()];
    while let Some(rel) = stack.pop() {
        let dir = root.join(&rel);
        let entries = std::fs::read_dir(&dir).map_err(|e| BatchError::Path {
            path: dir.clone(),
            problem: e.to_string(),
        })?;
        for e in entries.flatten() {
            let p = e.path();
            let name = rel.join(e.file_name());
            if p.is_dir() {
                if recursive {
                    stack.push(name);
                }
            } else if is_image_path(&p) {
                out.push(name);
            }
        }
    }
    out.sort();
    Ok(out)
}

/// Where masks come from.
#[derive(Debug, Clone)]
pub enum MaskSource {
    /// One mask for every image.
    File(PathBuf),
    /// A folder mirroring the images: `photo.jpg` ↔ `photo.png` or `photo_mask.png` (any image
    /// extension), in the same relative subfolder.
    Dir(PathBuf),
}

impl MaskSource {
    pub fn from_path(p: &Path) -> Result<Self, BatchError> {
        if p.is_dir() {
            Ok(MaskSource::Dir(p.to_path_buf()))
        } else if p.is_file() {
            Ok(MaskSource::File(p.to_path_buf()))
        } else {
            Err(BatchError::Path {
                path: p.to_path_buf(),
                problem: "no such mask file or folder".into(),
            })
        }
    }

    /// The mask for image `rel` (relative to the images folder), if there is one.
    pub fn mask_for(&self, rel: &Path) -> Option<PathBuf> {
        match self {
            MaskSource::File(f) => Some(f.clone()),
            MaskSource::Dir(d) => {
                let stem = rel.file_stem()?.to_string_lossy().to_string();
                let parent = d.join(rel.parent().unwrap_or(Path::new("")));
                let exts = crate::imaging::IMAGE_EXTENSIONS;
                for name in [stem.clone(), format!("{stem}_mask")] {
                    for ext in exts {
                        let p = parent.join(format!("{name}.{ext}"));
                        if p.is_file() {
                            return Some(p);
                        }
                    }
                }
                None
            }
        }
    }
}

/// `I/N`: this machine's share of a batch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Shard {
    pub index: u64,
    pub count: u64,
}

impl std::str::FromStr for Shard {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let bad = || format!("'{s}' is not a shard: expected I/N with 0 <= I < N, e.g. 0/4");
        let (i, n) = s.split_once('/').ok_or_else(bad)?;
        let (index, count): (u64, u64) = (
            i.trim().parse().map_err(|_| bad())?,
            n.trim().parse().map_err(|_| bad())?,
        );
        if count == 0 || index >= count {
            return Err(bad());
        }
        Ok(Shard { index, count })
    }
}

fn fnv64(s: &str) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in s.bytes() {
        h ^= b as u64;
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    h
}

/// A relative path with `/` separators on every platform.
pub fn portable(rel: &Path) -> String {
    rel.components()
        .map(|c| c.as_os_str().to_string_lossy().to_string())
        .collect::<Vec<_>>()
        .join("/")
}

impl Shard {
    /// Whether file `rel` belongs to this shard (by a hash of its relative path, so every
    /// machine decides the same way without coordination).
    pub fn contains(&self, rel: &Path) -> bool {
        fnv64(&portable(rel)) % self.count == self.index
    }
}

/// The seed of image `rel` in a batch with base seed `base`: the same file always gets the
/// same seed, so any single result can be reproduced alone.
pub fn derive_seed(base: u64, rel: &Path) -> u64 {
    let mut z = base ^ fnv64(&portable(rel));
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    (z ^ (z >> 31)) % 4_294_967_296
}

/// The output file for image `rel`: `out/rel` with a `.png` extension (plus `suffix` before it).
pub fn output_for(out: &Path, rel: &Path, suffix: &str) -> PathBuf {
    let stem = rel
        .file_stem()
        .map(|s| s.to_string_lossy().to_string())
        .unwrap_or_default();
    out.join(rel.parent().unwrap_or(Path::new("")))
        .join(format!("{stem}{suffix}.png"))
}

/// The largest prompts file `batch generate` reads.
pub const MAX_PROMPTS_BYTES: u64 = 16 << 20;

/// One prompt of a prompts file: its output name (`00012.png` for line 12; `00012-2.png` for
/// its second image) comes from the line number, so appending prompts or re-running keeps
/// every earlier file's name and seed.
#[derive(Debug, Clone, PartialEq)]
pub struct PromptLine {
    pub line: usize,
    pub prompt: String,
}

/// The prompts of a file, one a line (blank lines and lines starting with `#` skipped; CRLF
/// and a UTF-8 BOM accepted).
pub fn read_prompts(path: &Path) -> Result<Vec<PromptLine>, BatchError> {
    let problem = |problem: String| BatchError::Path {
        path: path.to_path_buf(),
        problem,
    };
    let meta = std::fs::metadata(path).map_err(|e| problem(format!("cannot read: {e}")))?;
    if meta.len() > MAX_PROMPTS_BYTES {
        return Err(problem(format!(
            "{} bytes; a prompts file may hold at most {MAX_PROMPTS_BYTES}",
            meta.len()
        )));
    }
    let bytes = std::fs::read(path).map_err(|e| problem(format!("cannot read: {e}")))?;
    let text = String::from_utf8(bytes).map_err(|e| {
        problem(format!(
            "not UTF-8 text (byte {})",
            e.utf8_error().valid_up_to()
        ))
    })?;
    let prompts: Vec<PromptLine> = text
        .trim_start_matches('\u{feff}')
        .lines()
        .enumerate()
        .map(|(i, l)| (i + 1, l.trim()))
        .filter(|(_, l)| !l.is_empty() && !l.starts_with('#'))
        .map(|(line, l)| PromptLine {
            line,
            prompt: l.to_string(),
        })
        .collect();
    if prompts.is_empty() {
        return Err(problem(
            "no prompts (one a line; # starts a comment)".into(),
        ));
    }
    Ok(prompts)
}

/// The output name of image `k` (0-based) of `line` when each prompt gets `per` images.
pub fn prompt_output(line: usize, k: usize, per: usize) -> PathBuf {
    if per <= 1 {
        PathBuf::from(format!("{line:05}.png"))
    } else {
        PathBuf::from(format!("{line:05}-{}.png", k + 1))
    }
}

/// Refuses an output folder inside the input folder (outputs would become inputs).
pub fn check_out_not_inside(input: &Path, out: &Path) -> Result<(), BatchError> {
    let inp = input.canonicalize().map_err(|e| BatchError::Path {
        path: input.to_path_buf(),
        problem: e.to_string(),
    })?;
    // The output folder may not exist yet: resolve its nearest existing ancestor.
    let mut probe = out.to_path_buf();
    let mut tail = Vec::new();
    let resolved = loop {
        if let Ok(c) = probe.canonicalize() {
            break tail
                .iter()
                .rev()
                .fold(c, |acc: PathBuf, t: &std::ffi::OsString| acc.join(t));
        }
        match (probe.file_name().map(|n| n.to_os_string()), probe.parent()) {
            (Some(n), Some(p)) => {
                tail.push(n);
                probe = if p.as_os_str().is_empty() {
                    PathBuf::from(".")
                } else {
                    p.to_path_buf()
                };
            }
            _ => break out.to_path_buf(),
        }
    };
    if resolved.starts_with(&inp) {
        return Err(BatchError::Usage(format!(
            "--out {} is inside the input folder {}; choose a folder outside it",
            out.display(),
            input.display()
        )));
    }
    Ok(())
}

/// Deletes `.clearpaint-*.tmp` files under `out` (left when a run was killed while writing);
/// returns how many.
pub fn remove_stale_temp_files(out: &Path) -> usize {
    let mut n = 0;
    let mut stack = vec![out.to_path_buf()];
    while let Some(dir) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&dir) else {
            continue;
        };
        for e in entries.flatten() {
            let p = e.path();
            let name = e.file_name().to_string_lossy().to_string();
            if p.is_dir() {
                stack.push(p);
            } else if name.starts_with(".clearpaint-")
                && name.ends_with(".tmp")
                && std::fs::remove_file(&p).is_ok()
            {
                n += 1;
            }
        }
    }
    n
}

/// Why a file was skipped because its output is there.
pub const OUTPUT_EXISTS: &str = "output exists (use --overwrite to redo)";
/// Why a file was skipped when another attempt wrote its output while this one worked on it.
pub const WRITTEN_MEANWHILE: &str = "output written meanwhile by another run";

/// What happened to each file, for the summary and `--report`.
#[derive(Debug, Default, Clone, serde::Serialize, serde::Deserialize)]
pub struct Report {
    pub done: Vec<String>,
    pub skipped: Vec<Entry>,
    pub failed: Vec<Entry>,
}

#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct Entry {
    pub file: String,
    pub reason: String,
}

impl Report {
    pub fn skip(&mut self, rel: &Path, reason: impl Into<String>) {
        self.skipped.push(Entry {
            file: portable(rel),
            reason: reason.into(),
        });
    }

    pub fn fail(&mut self, rel: &Path, reason: impl Into<String>) {
        self.failed.push(Entry {
            file: portable(rel),
            reason: reason.into(),
        });
    }

    /// Writes the report as JSON, atomically.
    pub fn write_json(&self, path: &Path) -> std::io::Result<()> {
        crate::files::write_atomic_with(path, |w| {
            serde_json::to_writer_pretty(w, self).map_err(std::io::Error::other)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The file-to-shard rule is a specification: FNV-1a 64 of the `/`-separated relative
    /// path (UTF-8), modulo the count. Values from an independent implementation.
    #[test]
    fn the_shard_hash_is_pinned() {
        let cases = [
            ("night/0001.jpg", 5780617233562051716u64, 4u64),
            ("a.png", 11714431857497495417, 57),
            ("sub dir/ünï.png", 3514040453605762269, 29),
        ];
        for (path, hash, shard) in cases {
            assert_eq!(fnv64(path), hash, "{path}");
            let rel = Path::new(path);
            assert!(
                Shard {
                    index: shard,
                    count: 64
                }
                .contains(rel),
                "{path}"
            );
        }
        let nested: PathBuf = ["night", "0001.jpg"].iter().collect();
        assert!(
            Shard {
                index: 4,
                count: 64
            }
            .contains(&nested)
        );
    }

    #[test]
    fn shards_partition_the_files() {
        let files: Vec<PathBuf> = (0..100)
            .map(|i| PathBuf::from(format!("d{}/img{i}.png", i % 3)))
            .collect();
        let shards: Vec<Shard> = (0..3).map(|i| format!("{i}/3").parse().unwrap()).collect();
        for f in &files {
            assert_eq!(shards.iter().filter(|s| s.contains(f)).count(), 1);
        }
        assert!(shards.iter().all(|s| files.iter().any(|f| s.contains(f))));
        assert!("3/3".parse::<Shard>().is_err());
        assert!("1-3".parse::<Shard>().is_err());
    }

    #[test]
    fn seeds_depend_on_base_and_path_only() {
        let a = derive_seed(42, Path::new("sub/a.png"));
        assert_eq!(a, derive_seed(42, Path::new("sub/a.png")));
        assert_ne!(a, derive_seed(43, Path::new("sub/a.png")));
        assert_ne!(a, derive_seed(42, Path::new("sub/b.png")));
    }

    #[test]
    fn outputs_mirror_subfolders() {
        assert_eq!(
            output_for(Path::new("out"), Path::new("a/b/photo.jpg"), ""),
            PathBuf::from("out/a/b/photo.png")
        );
        assert_eq!(
            output_for(Path::new("out"), Path::new("x.webp"), "_uncertainty"),
            PathBuf::from("out/x_uncertainty.png")
        );
    }

    #[test]
    fn prompts_files_keep_line_numbers_and_refuse_bad_files() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("prompts.txt");
        std::fs::write(
            &p,
            "\u{feff}a red fox\r\n\n# a comment\n  (snow:1.2), hills  \r\n",
        )
        .unwrap();
        let got = read_prompts(&p).unwrap();
        assert_eq!(
            got,
            vec![
                PromptLine {
                    line: 1,
                    prompt: "a red fox".into()
                },
                PromptLine {
                    line: 4,
                    prompt: "(snow:1.2), hills".into()
                },
            ]
        );
        assert_eq!(prompt_output(4, 0, 1), PathBuf::from("00004.png"));
        assert_eq!(prompt_output(4, 1, 3), PathBuf::from("00004-2.png"));
        std::fs::write(&p, "# only comments\n\n").unwrap();
        assert!(
            read_prompts(&p)
                .unwrap_err()
                .to_string()
                .contains("no prompts")
        );
        std::fs::write(&p, b"ok\n\xff\xfe").unwrap();
        let e = read_prompts(&p).unwrap_err().to_string();
        assert!(e.contains("prompts.txt") && e.contains("not UTF-8"), "{e}");
        let e = read_prompts(&dir.path().join("none.txt"))
            .unwrap_err()
            .to_string();
        assert!(e.contains("none.txt") && e.contains("cannot read"), "{e}");
    }
}
