//! Where a batch reads and writes: a local folder, or an object-store URL (`s3://`, `gs://`,
//! `az://`, `file://`) through the `object_store` crate, with credentials and endpoints from
//! the usual environment variables (`AWS_ACCESS_KEY_ID`, `AWS_ENDPOINT_URL`, `AWS_ALLOW_HTTP`,
//! `GOOGLE_SERVICE_ACCOUNT`, `AZURE_STORAGE_ACCOUNT_NAME`, ...).
//!
//! Keys are relative to the place, `/`-separated. Outputs are created once: locally a
//! temporary file linked into place only if nothing is there; in a bucket a conditional put
//! (`PutMode::Create`, `If-None-Match: *`). Either way a second attempt that finds the output
//! made is told so (`Created::Existed`), and an interrupted write leaves nothing behind (an S3
//! object exists only once its whole body has arrived).

use std::path::{Path, PathBuf};
use std::sync::{Arc, OnceLock};

use anyhow::{Context, Result, anyhow, bail};
use futures_util::TryStreamExt;
use object_store::path::Path as ObjPath;
use object_store::{ObjectStore, ObjectStoreExt, PutMode, PutOptions, PutPayload};

/// A folder or a bucket prefix.
#[derive(Clone)]
pub enum Place {
    Local(PathBuf),
    Remote(Remote),
}

#[derive(Clone)]
pub struct Remote {
    store: Arc<dyn ObjectStore>,
    prefix: ObjPath,
    /// The URL as given, without a trailing `/` (for messages and comparisons).
    url: String,
}

/// What a create did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Created {
    Written,
    /// Something was already there (another attempt of the same shard made it).
    Existed,
}

/// The schemes an argument may use; anything else is a local path.
const SCHEMES: [&str; 6] = ["s3://", "s3a://", "gs://", "az://", "abfs://", "file://"];

/// One shared runtime for every store call (object_store is async; batch runs are not).
fn runtime() -> &'static tokio::runtime::Runtime {
    static RT: OnceLock<tokio::runtime::Runtime> = OnceLock::new();
    RT.get_or_init(|| {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .expect("a tokio runtime (threads and timers) could not be started")
    })
}

fn block_on<F: std::future::Future>(f: F) -> F::Output {
    runtime().block_on(f)
}

/// An error as one line: the first line, without an XML error body a store sent (its
/// `<Code>` kept: `NoSuchBucket`, `AccessDenied`, ...).
fn short(e: impl std::fmt::Display) -> String {
    let s = e.to_string();
    let first = s.lines().next().unwrap_or("");
    let head = first.split("<?xml").next().unwrap_or(first).trim();
    let head = head.trim_end_matches(':').trim();
    let code = s
        .split_once("<Code>")
        .and_then(|(_, rest)| rest.split_once("</Code>"))
        .map(|(c, _)| c.trim());
    match code {
        Some(c) if !c.is_empty() && !head.contains(c) => format!("{head} ({c})"),
        _ => head.to_string(),
    }
}

/// A key as given by a user or a manifest: relative, `/`-separated, no `.` or `..` parts.
pub fn check_key(key: &str) -> Result<(), String> {
    if key.is_empty() || key.starts_with('/') || key.contains('\\') {
        return Err(format!("{key:?} is not a relative key"));
    }
    if key
        .split('/')
        .any(|p| p.is_empty() || p == "." || p == "..")
    {
        return Err(format!("{key:?} has an empty, `.` or `..` part"));
    }
    Ok(())
}

impl std::str::FromStr for Place {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        Place::parse(s).map_err(|e| format!("{e:#}"))
    }
}

impl std::fmt::Debug for Place {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.to_string())
    }
}

impl std::fmt::Display for Place {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Place::Local(p) => write!(f, "{}", p.display()),
            Place::Remote(r) => f.write_str(&r.url),
        }
    }
}

impl Place {
    /// A local path, or a URL with one of the object-store schemes.
    pub fn parse(s: &str) -> Result<Place> {
        let lower = s.to_ascii_lowercase();
        if !SCHEMES.iter().any(|p| lower.starts_with(p)) {
            if lower.contains("://") {
                bail!("{s}: unsupported URL scheme (s3://, gs://, az://, file:// or a local path)");
            }
            return Ok(Place::Local(PathBuf::from(s)));
        }
        let trimmed = s.trim_end_matches('/');
        let url = url::Url::parse(trimmed).map_err(|e| anyhow!("{s}: not a URL: {e}"))?;
        let (store, prefix): (Arc<dyn ObjectStore>, ObjPath) = match url.scheme() {
            "file" => {
                // The whole file system, the URL's path as the prefix: nothing needs to
                // exist yet (an output folder is made by its first write).
                url.to_file_path()
                    .map_err(|_| anyhow!("{s}: not a local file URL"))?;
                let prefix =
                    ObjPath::from_url_path(url.path()).map_err(|e| anyhow!("{s}: {}", short(e)))?;
                (
                    Arc::new(object_store::local::LocalFileSystem::new()),
                    prefix,
                )
            }
            _ => {
                let (store, prefix) = remote_store(&url).map_err(|e| anyhow!("{s}: {e:#}"))?;
                (store, prefix)
            }
        };
        Ok(Place::Remote(Remote {
            store,
            prefix,
            url: trimmed.to_string(),
        }))
    }

    /// The local folder, if this is one.
    pub fn local(&self) -> Option<&Path> {
        match self {
            Place::Local(p) => Some(p),
            Place::Remote(_) => None,
        }
    }

    /// How `key` under this place is named in messages.
    pub fn show(&self, key: &str) -> String {
        match self {
            Place::Local(p) => p.join(key).display().to_string(),
            Place::Remote(r) => format!("{}/{key}", r.url),
        }
    }

    /// A place `sub` below this one.
    pub fn child(&self, sub: &str) -> Place {
        match self {
            Place::Local(p) => Place::Local(p.join(sub)),
            Place::Remote(r) => Place::Remote(Remote {
                store: r.store.clone(),
                prefix: join(&r.prefix, sub),
                url: format!("{}/{sub}", r.url),
            }),
        }
    }

    /// Whether `other` lies inside this place (or is it).
    pub fn contains(&self, other: &Place) -> bool {
        match (self, other) {
            (Place::Remote(a), Place::Remote(b)) => {
                b.url == a.url || b.url.starts_with(&format!("{}/", a.url))
            }
            _ => false,
        }
    }

    /// Checks that a bucket place can be reached (the bucket exists, the credentials are
    /// accepted) with one listing request, so a wrong --out fails before any model loads.
    pub fn probe(&self) -> Result<()> {
        match self {
            Place::Local(_) => Ok(()),
            Place::Remote(r) => block_on(r.store.list_with_delimiter(Some(&r.prefix)))
                .map(|_| ())
                .map_err(|e| anyhow!("{}: cannot reach: {}", r.url, short(e))),
        }
    }

    /// The image files below this place (one level, or all with `recursive`), as keys
    /// relative to it, sorted.
    pub fn list_images(&self, recursive: bool) -> Result<Vec<String>> {
        match self {
            Place::Local(p) => Ok(clearpaint_core::batch::list_images(p, recursive)?
                .iter()
                .map(|r| clearpaint_core::batch::portable(r))
                .collect()),
            Place::Remote(r) => {
                let mut keys: Vec<String> = r
                    .list(recursive)?
                    .into_iter()
                    .filter(|k| clearpaint_core::imaging::is_image_path(Path::new(k)))
                    .collect();
                keys.sort();
                Ok(keys)
            }
        }
    }

    /// Every key below this place (for reports), sorted; none when it does not exist.
    pub fn list_all(&self) -> Result<Vec<String>> {
        match self {
            Place::Local(p) => {
                let Ok(entries) = std::fs::read_dir(p) else {
                    return Ok(Vec::new());
                };
                let mut keys: Vec<String> = entries
                    .flatten()
                    .filter(|e| e.path().is_file())
                    .map(|e| e.file_name().to_string_lossy().to_string())
                    .collect();
                keys.sort();
                Ok(keys)
            }
            Place::Remote(r) => {
                let mut keys = r.list(true)?;
                keys.sort();
                Ok(keys)
            }
        }
    }

    pub fn read(&self, key: &str) -> Result<Vec<u8>> {
        let name = self.show(key);
        match self {
            Place::Local(p) => {
                std::fs::read(p.join(key)).map_err(|e| anyhow!("{name}: cannot read: {}", short(e)))
            }
            Place::Remote(r) => {
                let bytes =
                    block_on(async { r.store.get(&join(&r.prefix, key)).await?.bytes().await })
                        .map_err(|e| anyhow!("{name}: cannot read: {}", short(e)))?;
                Ok(bytes.to_vec())
            }
        }
    }

    pub fn exists(&self, key: &str) -> Result<bool> {
        match self {
            Place::Local(p) => Ok(p.join(key).exists()),
            Place::Remote(r) => match block_on(r.store.head(&join(&r.prefix, key))) {
                Ok(_) => Ok(true),
                Err(object_store::Error::NotFound { .. }) => Ok(false),
                Err(e) => Err(anyhow!("{}: {}", self.show(key), short(e))),
            },
        }
    }

    /// Removes `key` (nothing to do when it is not there).
    pub fn delete(&self, key: &str) -> Result<()> {
        let err = |e: String| anyhow!("{}: cannot delete: {e}", self.show(key));
        match self {
            Place::Local(p) => match std::fs::remove_file(p.join(key)) {
                Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(err(short(e))),
                _ => Ok(()),
            },
            Place::Remote(r) => match block_on(r.store.delete(&join(&r.prefix, key))) {
                Err(e) if !matches!(e, object_store::Error::NotFound { .. }) => Err(err(short(e))),
                _ => Ok(()),
            },
        }
    }

    /// Writes `bytes` at `key` only if nothing is there.
    pub fn create(&self, key: &str, bytes: Vec<u8>) -> Result<Created> {
        self.write(key, bytes, PutMode::Create)
    }

    /// Writes `bytes` at `key`, replacing what is there.
    pub fn put(&self, key: &str, bytes: Vec<u8>) -> Result<()> {
        self.write(key, bytes, PutMode::Overwrite).map(|_| ())
    }

    fn write(&self, key: &str, bytes: Vec<u8>, mode: PutMode) -> Result<Created> {
        let name = self.show(key);
        let werr = |e: String| anyhow!("{name}: cannot write: {e}");
        match self {
            Place::Local(p) => {
                let path = p.join(key);
                if let Some(dir) = path.parent() {
                    std::fs::create_dir_all(dir).map_err(|e| werr(short(e)))?;
                }
                let r = match mode {
                    PutMode::Create => clearpaint_core::files::create_atomic(&path, &bytes),
                    _ => clearpaint_core::files::write_atomic(&path, &bytes),
                };
                match r {
                    Ok(()) => Ok(Created::Written),
                    Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Ok(Created::Existed),
                    Err(e) => Err(werr(short(e))),
                }
            }
            Place::Remote(r) => {
                let opts = PutOptions {
                    mode,
                    ..Default::default()
                };
                let loc = join(&r.prefix, key);
                match block_on(r.store.put_opts(&loc, PutPayload::from(bytes), opts)) {
                    Ok(_) => Ok(Created::Written),
                    Err(object_store::Error::AlreadyExists { .. }) => Ok(Created::Existed),
                    Err(e) => Err(werr(short(e))),
                }
            }
        }
    }
}

impl Remote {
    /// Keys below the prefix, relative to it.
    fn list(&self, recursive: bool) -> Result<Vec<String>> {
        let metas = block_on(async {
            if recursive {
                self.store
                    .list(Some(&self.prefix))
                    .try_collect::<Vec<_>>()
                    .await
            } else {
                self.store
                    .list_with_delimiter(Some(&self.prefix))
                    .await
                    .map(|l| l.objects)
            }
        })
        .map_err(|e| anyhow!("{}: cannot list: {}", self.url, short(e)))?;
        let base = self.prefix.as_ref();
        Ok(metas
            .into_iter()
            .filter_map(|m| {
                let loc = m.location.as_ref();
                let rel = if base.is_empty() {
                    loc
                } else {
                    loc.strip_prefix(base)?.strip_prefix('/')?
                };
                (!rel.is_empty()).then(|| rel.to_string())
            })
            .collect())
    }
}

fn join(prefix: &ObjPath, key: &str) -> ObjPath {
    let mut s = prefix.as_ref().to_string();
    for part in key.split('/').filter(|p| !p.is_empty()) {
        if !s.is_empty() {
            s.push('/');
        }
        s.push_str(part);
    }
    ObjPath::from(s)
}

/// An `s3://`, `gs://` or `az://` store, configured from the environment.
fn remote_store(url: &url::Url) -> Result<(Arc<dyn ObjectStore>, ObjPath)> {
    // rustls is built with ring only; it must be named before the first HTTP client is built
    // (an error here only means it was named already).
    let _ = rustls::crypto::ring::default_provider().install_default();
    let prefix = ObjPath::from_url_path(url.path()).context("the path")?;
    let store: Arc<dyn ObjectStore> = match url.scheme() {
        "s3" | "s3a" => Arc::new(
            object_store::aws::AmazonS3Builder::from_env()
                .with_url(url.as_str())
                .build()
                .map_err(|e| anyhow!("{}", short(e)))?,
        ),
        "gs" => Arc::new(
            object_store::gcp::GoogleCloudStorageBuilder::from_env()
                .with_url(url.as_str())
                .build()
                .map_err(|e| anyhow!("{}", short(e)))?,
        ),
        "az" | "abfs" => Arc::new(
            object_store::azure::MicrosoftAzureBuilder::from_env()
                .with_url(url.as_str())
                .build()
                .map_err(|e| anyhow!("{}", short(e)))?,
        ),
        other => bail!("unsupported scheme {other}://"),
    };
    Ok((store, prefix))
}

/// Keys from a manifest (one a line; blank lines and `#` comments skipped), each checked.
pub fn read_manifest(text: &str, name: &str) -> Result<Vec<String>> {
    let mut keys = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let key = line.trim();
        if key.is_empty() || key.starts_with('#') {
            continue;
        }
        check_key(key).map_err(|e| anyhow!("{name}: line {}: {e}", i + 1))?;
        keys.push(key.to_string());
    }
    if keys.is_empty() {
        bail!("{name}: the manifest lists no keys");
    }
    Ok(keys)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_from_users_are_relative_and_plain() {
        assert!(check_key("a/b.jpg").is_ok());
        for bad in [
            "",
            "/a.jpg",
            "a/../b.jpg",
            "a//b.jpg",
            "./a.jpg",
            "a\\b.jpg",
        ] {
            assert!(check_key(bad).is_err(), "{bad}");
        }
        let keys = read_manifest("# night\n\na.jpg\n  sub/b.png \n", "m.txt").unwrap();
        assert_eq!(keys, ["a.jpg", "sub/b.png"]);
        let e = read_manifest("a.jpg\n../x.jpg\n", "m.txt").unwrap_err();
        assert!(e.to_string().starts_with("m.txt: line 2:"), "{e}");
    }

    #[test]
    fn store_errors_are_one_line_with_their_code() {
        let e = "Generic S3 error: GET http://h/b failed: 404 Not Found: <?xml version=\"1.0\"?>\n\
                 <Error><Code>NoSuchBucket</Code><Message>The bucket does not exist</Message>";
        assert_eq!(
            short(e),
            "Generic S3 error: GET http://h/b failed: 404 Not Found (NoSuchBucket)"
        );
        assert_eq!(short("plain\nmore"), "plain");
    }

    #[test]
    fn places_parse_by_scheme_and_nest() {
        assert!(matches!(Place::parse("out/dir").unwrap(), Place::Local(_)));
        let e = Place::parse("ftp://host/x").unwrap_err();
        assert!(e.to_string().contains("unsupported URL scheme"), "{e}");
        let dir = tempfile::tempdir().unwrap();
        let url = format!("file://{}/", dir.path().display());
        let p = Place::parse(&url).unwrap();
        assert!(matches!(p, Place::Remote(_)));
        assert!(p.contains(&p.child("sub")));
        assert!(!p.child("sub").contains(&p));
        assert_eq!(
            p.create("a/b.txt", b"one".to_vec()).unwrap(),
            Created::Written
        );
        assert_eq!(
            p.create("a/b.txt", b"two".to_vec()).unwrap(),
            Created::Existed
        );
        assert_eq!(p.read("a/b.txt").unwrap(), b"one");
        assert_eq!(std::fs::read(dir.path().join("a/b.txt")).unwrap(), b"one");
        p.put("a/b.txt", b"three".to_vec()).unwrap();
        assert_eq!(p.read("a/b.txt").unwrap(), b"three");
        assert_eq!(p.list_all().unwrap(), ["a/b.txt"]);
        let e = p.read("missing.png").unwrap_err().to_string();
        assert!(
            e.starts_with(&format!(
                "{}/missing.png: cannot read",
                url.trim_end_matches('/')
            )),
            "{e}"
        );
    }
}
