//! Known models (`weights/manifest.toml`), where they are on this machine, and downloads from the
//! Hugging Face Hub (the `hf-hub` crate's blocking API) into the standard HF cache.
//!
//! Environment, as the Hugging Face tools read it: `HF_HOME` (cache at `$HF_HOME/hub`),
//! `HF_HUB_CACHE` (the cache folder itself), `HF_ENDPOINT` (a mirror or a local server),
//! `HF_TOKEN` (else the token file `$HF_HOME/token`).

use std::io::Read;
use std::net::{TcpStream, ToSocketAddrs};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result, anyhow, bail};
use hf_hub::api::sync::{Api, ApiBuilder, ApiRepo};
use hf_hub::{Cache, Repo, RepoType};
use serde::Deserialize;
use sha2::{Digest, Sha256};

static BUILTIN: &str = include_str!("../../weights/manifest.toml");

/// `weights/manifest.toml`.
#[derive(Debug, Clone, Deserialize)]
pub struct Manifest {
    pub model: Vec<KnownModel>,
}

#[derive(Debug, Clone, Deserialize)]
pub struct KnownModel {
    pub name: String,
    pub kind: String,
    pub description: String,
    /// Hugging Face repo id; `None` for weights that are not on the Hub.
    pub repo: Option<String>,
    #[serde(default = "default_revision")]
    pub revision: String,
    /// Folder (or file) under `weights/`.
    pub local_dir: String,
    #[serde(default)]
    pub files: Vec<String>,
    pub size_gb: Option<f64>,
    pub license: String,
    pub source: String,
    /// How to get weights that cannot be fetched.
    pub manual: Option<String>,
    /// Pinned checksums (file -> sha256 hex), beyond the Hub's own.
    #[serde(default)]
    pub sha256: std::collections::BTreeMap<String, String>,
}

fn default_revision() -> String {
    "main".into()
}

impl Manifest {
    /// The manifest built into the binary (`weights/manifest.toml`).
    pub fn builtin() -> Manifest {
        toml::from_str(BUILTIN).expect("weights/manifest.toml is valid")
    }

    /// A manifest file (`--manifest`), or the built-in one.
    pub fn load(path: Option<&Path>) -> Result<Manifest> {
        match path {
            None => Ok(Manifest::builtin()),
            Some(p) => {
                let text = std::fs::read_to_string(p).with_context(|| p.display().to_string())?;
                toml::from_str(&text).map_err(|e| anyhow!("{}: {}", p.display(), one_line(&e)))
            }
        }
    }

    pub fn find(&self, name: &str) -> Option<&KnownModel> {
        self.model
            .iter()
            .find(|m| m.name == name || m.repo.as_deref() == Some(name))
    }

    pub fn names(&self) -> Vec<&str> {
        self.model.iter().map(|m| m.name.as_str()).collect()
    }
}

fn one_line(e: &impl std::fmt::Display) -> String {
    e.to_string()
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ")
}

/// Where the Hub is and who we are, from the environment.
#[derive(Debug, Clone)]
pub struct HubSettings {
    pub endpoint: String,
    pub token: Option<String>,
    /// The hub cache folder (`$HF_HUB_CACHE`, `$HF_HOME/hub`, `~/.cache/huggingface/hub`).
    pub cache: PathBuf,
}

impl HubSettings {
    pub fn from_env() -> HubSettings {
        let var = |k: &str| std::env::var(k).ok().filter(|v| !v.trim().is_empty());
        let home = var("HF_HOME").map(PathBuf::from).unwrap_or_else(|| {
            std::env::var_os("HOME")
                .map(PathBuf::from)
                .unwrap_or_default()
                .join(".cache")
                .join("huggingface")
        });
        let cache = var("HF_HUB_CACHE")
            .map(PathBuf::from)
            .unwrap_or_else(|| home.join("hub"));
        let token = var("HF_TOKEN").or_else(|| {
            std::fs::read_to_string(home.join("token"))
                .ok()
                .map(|t| t.trim().to_string())
                .filter(|t| !t.is_empty())
        });
        let endpoint = var("HF_ENDPOINT")
            .unwrap_or_else(|| "https://huggingface.co".into())
            .trim_end_matches('/')
            .to_string();
        HubSettings {
            endpoint,
            token,
            cache,
        }
    }

    fn repo(&self, repo_id: &str, revision: &str) -> Repo {
        Repo::with_revision(repo_id.to_string(), RepoType::Model, revision.to_string())
    }

    /// The snapshot folder of `repo_id` at `revision` in the cache, if it was downloaded.
    pub fn cached_snapshot(&self, repo_id: &str, revision: &str) -> Option<PathBuf> {
        let repo = self.repo(repo_id, revision);
        let dir = self.cache.join(repo.folder_name());
        let commit = std::fs::read_to_string(dir.join("refs").join(revision)).ok()?;
        let snap = dir.join("snapshots").join(commit.trim());
        snap.is_dir().then_some(snap)
    }

    fn api(&self) -> Result<Api> {
        ApiBuilder::from_cache(Cache::new(self.cache.clone()))
            .with_endpoint(self.endpoint.clone())
            .with_token(self.token.clone())
            .with_progress(false)
            .build()
            .map_err(|e| anyhow!("Hugging Face client: {e}"))
    }

    /// Fails fast, in one line, when the endpoint cannot be reached (offline machine).
    pub fn check_reachable(&self) -> Result<(), String> {
        let rest = self
            .endpoint
            .split_once("://")
            .map(|(_, r)| r)
            .unwrap_or(&self.endpoint);
        let host_port = rest.split('/').next().unwrap_or(rest);
        let https = self.endpoint.starts_with("https://");
        let addr = if host_port.contains(':') && !host_port.ends_with(']') {
            host_port.to_string()
        } else {
            format!("{host_port}:{}", if https { 443 } else { 80 })
        };
        let addrs: Vec<_> = addr
            .to_socket_addrs()
            .map_err(|e| format!("cannot resolve {host_port}: {e}"))?
            .collect();
        let mut last = String::from("no address");
        for a in addrs {
            match TcpStream::connect_timeout(&a, Duration::from_secs(5)) {
                Ok(_) => return Ok(()),
                Err(e) => last = e.to_string(),
            }
        }
        Err(format!("cannot connect to {host_port}: {last}"))
    }
}

/// Where a known model is on this machine.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Presence {
    /// Every listed file is there.
    Present(PathBuf),
    /// Some files are missing.
    Partial {
        path: PathBuf,
        missing: Vec<String>,
    },
    Absent,
}

fn missing_files(dir: &Path, files: &[String]) -> Vec<String> {
    files
        .iter()
        .filter(|f| !dir.join(f).exists())
        .cloned()
        .collect()
}

/// Looks for `model` under `weights_dir` and in the HF cache (complete copies first).
pub fn locate(model: &KnownModel, weights_dir: &Path, hub: &HubSettings) -> Presence {
    let mut candidates = vec![weights_dir.join(&model.local_dir)];
    if let Some(repo) = &model.repo
        && let Some(snap) = hub.cached_snapshot(repo, &model.revision)
    {
        candidates.push(snap);
    }
    let mut partial = None;
    for c in candidates {
        if !c.exists() {
            continue;
        }
        let missing = missing_files(&c, &model.files);
        if missing.is_empty() {
            return Presence::Present(c);
        }
        partial.get_or_insert(Presence::Partial { path: c, missing });
    }
    partial.unwrap_or(Presence::Absent)
}

/// Resolves a `--model` / `--vae` argument: an existing path as is; else a known model's name
/// (or Hub repo id) where it is present on this machine.
pub fn resolve_model_arg(arg: &Path, weights_dir: &Path) -> PathBuf {
    if arg.exists() {
        return arg.to_path_buf();
    }
    let Some(name) = arg.to_str() else {
        return arg.to_path_buf();
    };
    let hub = HubSettings::from_env();
    if let Some(m) = Manifest::builtin().find(name)
        && let Presence::Present(p) = locate(m, weights_dir, &hub)
    {
        return p;
    }
    if name.matches('/').count() == 1
        && let Some(p) = hub.cached_snapshot(name, "main")
    {
        return p;
    }
    arg.to_path_buf()
}

/// What a download reports as it goes. Called from the downloading thread.
pub trait FetchObserver: Send + Sync {
    /// A file starts (or resumes at `done` bytes of `size`).
    fn file(&self, index: usize, count: usize, name: &str, size: u64, done: u64);
    /// `bytes` more were written.
    fn advance(&self, bytes: u64);
}

struct ProgressAdapter {
    observer: Arc<dyn FetchObserver>,
    index: usize,
    count: usize,
    name: String,
    size: u64,
}

impl hf_hub::api::Progress for ProgressAdapter {
    fn init(&mut self, size: usize, _filename: &str) {
        self.size = size as u64;
        // hf-hub follows init with update(already downloaded) when it resumes.
        self.observer
            .file(self.index, self.count, &self.name, self.size, 0);
    }
    fn update(&mut self, size: usize) {
        self.observer.advance(size as u64);
    }
    fn finish(&mut self) {}
}

/// What to download.
#[derive(Debug, Clone)]
pub struct FetchRequest {
    pub repo: String,
    pub revision: String,
    /// Files to download; `None` lists the repo and takes its safetensors, JSON and text
    /// files (never pickles).
    pub files: Option<Vec<String>>,
    pub sha256: std::collections::BTreeMap<String, String>,
}

impl FetchRequest {
    pub fn for_model(m: &KnownModel) -> Result<FetchRequest> {
        let Some(repo) = &m.repo else {
            bail!(
                "{} is not on the Hugging Face Hub. {}",
                m.name,
                m.manual.as_deref().unwrap_or("")
            );
        };
        Ok(FetchRequest {
            repo: repo.clone(),
            revision: m.revision.clone(),
            files: Some(m.files.clone()),
            sha256: m.sha256.clone(),
        })
    }

    /// The command a user on a connected machine would run instead.
    pub fn manual_command(&self, local_dir: &str) -> String {
        let files = self.files.as_ref().map(|f| f.join(" ")).unwrap_or_default();
        format!(
            "huggingface-cli download {} {files} --local-dir weights/{local_dir}",
            self.repo
        )
    }
}

fn wanted(file: &str) -> bool {
    let lower = file.to_ascii_lowercase();
    (lower.ends_with(".safetensors") || lower.ends_with(".json") || lower.ends_with(".txt"))
        && !lower.contains("onnx")
        && !lower.contains("flax")
}

fn sha256_file(path: &Path) -> Result<String> {
    let mut f = std::fs::File::open(path).with_context(|| path.display().to_string())?;
    let mut h = Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = f
            .read(&mut buf)
            .with_context(|| path.display().to_string())?;
        if n == 0 {
            break;
        }
        h.update(&buf[..n]);
    }
    Ok(h.finalize().iter().map(|b| format!("{b:02x}")).collect())
}

fn is_sha256(s: &str) -> bool {
    s.len() == 64 && s.bytes().all(|b| b.is_ascii_hexdigit())
}

/// Downloads `req` into the cache (resuming any interrupted file), verifies checksums, and
/// returns the snapshot folder.
pub fn fetch(
    hub: &HubSettings,
    req: &FetchRequest,
    observer: Arc<dyn FetchObserver>,
) -> Result<PathBuf> {
    hub.check_reachable().map_err(|why| {
        anyhow!(
            "{} is not reachable ({why}); clearpaint cannot download {} here. On a connected \
             machine run: {} -- then copy that folder here (or set HF_ENDPOINT to a mirror)",
            hub.endpoint,
            req.repo,
            req.manual_command(req.repo.rsplit('/').next().unwrap_or(&req.repo))
        )
    })?;
    let api = hub.api()?;
    let repo: ApiRepo = api.repo(hub.repo(&req.repo, &req.revision));
    let files = match &req.files {
        Some(f) => f.clone(),
        None => {
            let info = repo
                .info()
                .map_err(|e| anyhow!("{}: listing the repo: {e}", req.repo))?;
            info.siblings
                .into_iter()
                .map(|s| s.rfilename)
                .filter(|f| wanted(f))
                .collect()
        }
    };
    if files.is_empty() {
        bail!("{}: no safetensors or config files to download", req.repo);
    }
    let cache_repo = Cache::new(hub.cache.clone()).repo(hub.repo(&req.repo, &req.revision));
    let mut snapshot = None;
    for (i, file) in files.iter().enumerate() {
        if let Some(p) = cache_repo.get(file) {
            observer.file(i, files.len(), file, 0, 0);
            snapshot.get_or_insert(snapshot_of(&p, file));
            continue;
        }
        let url = repo.url(file);
        let meta = api
            .metadata(&url)
            .map_err(|e| anyhow!("{}/{file}: {e}", req.repo))?;
        // A complete `.part` left by an interrupted run would be asked for from its end (a 416
        // from the Hub): let the last byte come again.
        let part = cache_repo.blob_path(meta.etag()).with_extension("part");
        if let Ok(md) = std::fs::metadata(&part)
            && md.len() >= meta.size() as u64
            && meta.size() > 0
        {
            let f = std::fs::OpenOptions::new()
                .write(true)
                .open(&part)
                .with_context(|| part.display().to_string())?;
            f.set_len(meta.size() as u64 - 1)
                .with_context(|| part.display().to_string())?;
        }
        let progress = ProgressAdapter {
            observer: observer.clone(),
            index: i,
            count: files.len(),
            name: file.clone(),
            size: meta.size() as u64,
        };
        let path = repo.download_with_progress(file, progress).map_err(|e| {
            anyhow!(
                "{}/{file}: download interrupted: {e} (run the same command again to resume)",
                req.repo
            )
        })?;
        let expected = req
            .sha256
            .get(file)
            .cloned()
            .or_else(|| is_sha256(meta.etag()).then(|| meta.etag().to_string()));
        if let Some(want) = expected {
            let got = sha256_file(&path)?;
            if !got.eq_ignore_ascii_case(&want) {
                let blob = std::fs::canonicalize(&path).unwrap_or(path.clone());
                let _ = std::fs::remove_file(&path);
                let _ = std::fs::remove_file(&blob);
                bail!(
                    "{}/{file}: checksum mismatch (sha256 {got}, the Hub says {want}); the \
                     corrupt download was removed, run the command again",
                    req.repo
                );
            }
        }
        snapshot.get_or_insert(snapshot_of(&path, file));
    }
    snapshot.ok_or_else(|| anyhow!("{}: nothing downloaded", req.repo))
}

/// The snapshot folder holding `path` (which is `file`, possibly nested, inside it).
fn snapshot_of(path: &Path, file: &str) -> PathBuf {
    let depth = Path::new(file).components().count();
    let mut p = path.to_path_buf();
    for _ in 0..depth {
        p.pop();
    }
    p
}

/// Makes `dir` show the snapshot's files (symbolic links), e.g. `weights/stable-diffusion-inpainting`.
pub fn link_into(snapshot: &Path, dir: &Path) -> Result<()> {
    fn walk(src: &Path, dst: &Path) -> Result<()> {
        std::fs::create_dir_all(dst).with_context(|| dst.display().to_string())?;
        for e in std::fs::read_dir(src).with_context(|| src.display().to_string())? {
            let e = e?;
            let target = dst.join(e.file_name());
            let from = e.path();
            if from.is_dir() {
                walk(&from, &target)?;
            } else if !target.exists() {
                let real = std::fs::canonicalize(&from).unwrap_or(from.clone());
                #[cfg(unix)]
                std::os::unix::fs::symlink(&real, &target)
                    .with_context(|| target.display().to_string())?;
                #[cfg(not(unix))]
                std::fs::copy(&real, &target).with_context(|| target.display().to_string())?;
            }
        }
        Ok(())
    }
    walk(snapshot, dir)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_builtin_manifest_lists_the_models_the_issue_names() {
        let m = Manifest::builtin();
        for repo in [
            "stable-diffusion-v1-5/stable-diffusion-inpainting",
            "cross-attention/asymmetric-autoencoder-kl-x-1-5",
            "cross-attention/asymmetric-autoencoder-kl-x-2",
            "stable-diffusion-v1-5/stable-diffusion-v1-5",
            "Fantasy-Studio/Paint-by-Example",
        ] {
            let model = m.find(repo).unwrap_or_else(|| panic!("{repo} missing"));
            assert!(!model.files.is_empty());
            assert!(
                model.files.iter().all(|f| wanted(f)),
                "{repo}: {:?}",
                model.files
            );
            assert!(!model.license.is_empty());
        }
        let augan = m.find("augan-bdd100k").unwrap();
        assert!(augan.repo.is_none() && augan.manual.is_some());
        for model in &m.model {
            model
                .kind
                .parse::<clearpaint_core::models::check::ModelKind>()
                .unwrap();
        }
    }

    #[test]
    fn snapshot_folder_of_a_nested_file() {
        assert_eq!(
            snapshot_of(
                Path::new("/c/snapshots/abc/unet/config.json"),
                "unet/config.json"
            ),
            PathBuf::from("/c/snapshots/abc")
        );
    }
}
