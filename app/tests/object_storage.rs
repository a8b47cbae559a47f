//! Batch runs against a real S3 API on localhost: moto's server (from PyPI), started and
//! stopped by each test. s3:// to s3:// for batch weather and batch inpaint, shards from each
//! engine's variables, two concurrent attempts of one shard, a run killed with SIGKILL, and
//! the merged report. Without a moto server the tests install one (tools/s3/install-moto.sh);
//! if that fails they fail: they never skip.

mod common;

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use futures_util::TryStreamExt;
use image::{GrayImage, Luma, Rgba, RgbaImage};
use object_store::aws::AmazonS3Builder;
use object_store::path::Path as ObjPath;
use object_store::{ObjectStore, ObjectStoreExt, PutMode, PutPayload};

fn fixtures() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../tools/reference/fixtures")
}

/// moto_server: $CLEARPAINT_MOTO_SERVER, or the one installed under the target folder
/// (installed on first use).
fn moto_server() -> &'static Path {
    static BIN: OnceLock<PathBuf> = OnceLock::new();
    BIN.get_or_init(|| {
        if let Ok(p) = std::env::var("CLEARPAINT_MOTO_SERVER") {
            return PathBuf::from(p);
        }
        let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("moto");
        let bin = dir.join("bin/moto_server");
        if !bin.exists() {
            let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../tools/s3/install-moto.sh");
            let st = Command::new("bash").arg(script).arg(&dir).status();
            assert!(
                st.is_ok_and(|s| s.success()) && bin.exists(),
                "no S3 server for the object-storage tests: tools/s3/install-moto.sh {} failed \
                 (it needs python3 with venv and PyPI)",
                dir.display()
            );
        }
        bin
    })
}

/// A moto server on a free loopback port, killed when dropped.
struct S3 {
    child: Child,
    port: u16,
}

impl Drop for S3 {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl S3 {
    fn start() -> S3 {
        let port = TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let child = Command::new(moto_server())
            .args(["-H", "127.0.0.1", "-p", &port.to_string()])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start moto_server");
        let s3 = S3 { child, port };
        let start = Instant::now();
        while TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(
                start.elapsed() < Duration::from_secs(60),
                "moto did not start"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
        s3
    }

    fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// One unsigned CreateBucket (moto takes them): the response, or the I/O error.
    fn create_bucket(&self, name: &str) -> std::io::Result<String> {
        let mut c = TcpStream::connect(("127.0.0.1", self.port))?;
        write!(
            c,
            "PUT /{name} HTTP/1.1\r\nHost: 127.0.0.1:{}\r\nContent-Length: 0\r\n\
             Connection: close\r\n\r\n",
            self.port
        )?;
        let mut resp = String::new();
        c.read_to_string(&mut resp)?;
        Ok(resp)
    }

    /// Creates a bucket, retrying while the server is still starting (it may accept
    /// connections before it answers them).
    fn bucket(&self, name: &str) -> Bucket {
        let start = Instant::now();
        let resp = loop {
            match self.create_bucket(name) {
                Ok(r) => break r,
                Err(e) if start.elapsed() < Duration::from_secs(60) => {
                    let _ = e;
                    std::thread::sleep(Duration::from_millis(200));
                }
                Err(e) => panic!("create bucket {name}: {e}"),
            }
        };
        assert!(resp.starts_with("HTTP/1.1 200"), "create bucket: {resp}");
        rt(); // installs the TLS crypto provider the client needs
        let store = AmazonS3Builder::new()
            .with_endpoint(self.endpoint())
            .with_allow_http(true)
            .with_bucket_name(name)
            .with_region("us-east-1")
            .with_access_key_id("test")
            .with_secret_access_key("test")
            .build()
            .unwrap();
        Bucket {
            store: Arc::new(store),
            name: name.to_string(),
        }
    }

    /// clearpaint with this server's endpoint and test credentials.
    fn command(&self, args: &[&str]) -> Command {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_clearpaint"));
        cmd.args(args)
            .env("CLEARPAINT_DEVICE", "cpu")
            .env("CLEARPAINT_PRECISION", "f32") // f32 references: auto may be bf16
            .env("AWS_ENDPOINT_URL", self.endpoint())
            .env("AWS_ALLOW_HTTP", "true")
            .env("AWS_ACCESS_KEY_ID", "test")
            .env("AWS_SECRET_ACCESS_KEY", "test")
            .env("AWS_REGION", "us-east-1");
        for k in common::INDEX_VARS
            .iter()
            .chain(&["AWS_PROFILE", "AWS_SESSION_TOKEN"])
        {
            cmd.env_remove(k);
        }
        cmd
    }

    fn run(&self, args: &[&str]) -> Output {
        self.command(args).output().expect("run clearpaint")
    }
}

struct Bucket {
    store: Arc<dyn ObjectStore>,
    name: String,
}

fn rt() -> &'static tokio::runtime::Runtime {
    static RT: OnceLock<tokio::runtime::Runtime> = OnceLock::new();
    RT.get_or_init(|| {
        let _ = rustls::crypto::ring::default_provider().install_default();
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .unwrap()
    })
}

impl Bucket {
    fn url(&self, prefix: &str) -> String {
        format!("s3://{}/{prefix}", self.name)
    }

    fn put(&self, key: &str, bytes: Vec<u8>) {
        rt().block_on(self.store.put(&ObjPath::from(key), PutPayload::from(bytes)))
            .unwrap();
    }

    fn get(&self, key: &str) -> Vec<u8> {
        rt().block_on(async {
            self.store
                .get(&ObjPath::from(key))
                .await
                .unwrap()
                .bytes()
                .await
                .unwrap()
                .to_vec()
        })
    }

    /// Keys under `prefix/`, relative to it, with their ETags.
    fn list(&self, prefix: &str) -> BTreeMap<String, String> {
        let metas: Vec<_> = rt()
            .block_on(self.store.list(Some(&ObjPath::from(prefix))).try_collect())
            .unwrap();
        metas
            .into_iter()
            .map(|m| {
                let key = m.location.as_ref()[prefix.len() + 1..].to_string();
                (key, m.e_tag.unwrap_or_default())
            })
            .collect()
    }

    /// The image outputs under `prefix/` (not the reports).
    fn outputs(&self, prefix: &str) -> Vec<String> {
        self.list(prefix)
            .into_keys()
            .filter(|k| !k.starts_with("_reports/"))
            .collect()
    }
}

fn png(img: &RgbaImage) -> Vec<u8> {
    let mut v = Vec::new();
    img.write_to(&mut std::io::Cursor::new(&mut v), image::ImageFormat::Png)
        .unwrap();
    v
}

fn picture(w: u32, h: u32, k: u32) -> RgbaImage {
    RgbaImage::from_fn(w, h, |x, y| {
        Rgba([((x * k) % 256) as u8, ((y * 3 + k) % 256) as u8, 90, 255])
    })
}

fn err(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).to_string()
}

/// `n` night pictures under `prefix/` (a few in a subfolder); returns their keys.
fn upload_pictures(b: &Bucket, prefix: &str, n: u32, w: u32, h: u32) -> Vec<String> {
    (0..n)
        .map(|i| {
            let key = if i % 4 == 0 {
                format!("sub/n{i}.png")
            } else {
                format!("n{i}.png")
            };
            b.put(&format!("{prefix}/{key}"), png(&picture(w, h, i + 1)));
            key
        })
        .collect()
}

fn model() -> String {
    fixtures()
        .join("augan_tiny.safetensors")
        .display()
        .to_string()
}

fn weather_args<'a>(model: &'a str, input: &'a str, out: &'a str) -> Vec<&'a str> {
    vec![
        "batch",
        "weather",
        "--model",
        model,
        "--input",
        input,
        "--out",
        out,
        "--recursive",
        "--size",
        "16x32",
    ]
}

/// The shard reports under `prefix/_reports/`: (shard, done + existing outputs) per report.
fn merged(s3: &S3, url: &str) -> (bool, String) {
    let o = s3.run(&["batch", "report", url]);
    (
        o.status.success(),
        String::from_utf8_lossy(&o.stdout).to_string() + &err(&o),
    )
}

/// The server does what the outputs rely on: a second conditional create of a key fails.
#[test]
fn the_server_refuses_a_second_conditional_create() {
    let s3 = S3::start();
    let b = s3.bucket("cond");
    let put = |v: &[u8]| {
        let opts = object_store::PutOptions {
            mode: PutMode::Create,
            ..Default::default()
        };
        rt().block_on(
            b.store
                .put_opts(&ObjPath::from("k"), PutPayload::from(v.to_vec()), opts),
        )
    };
    assert!(put(b"one").is_ok());
    assert!(matches!(
        put(b"two"),
        Err(object_store::Error::AlreadyExists { .. })
    ));
    assert_eq!(b.get("k"), b"one");
}

/// batch weather and batch inpaint from s3:// to s3:// give the same pixels as the same runs
/// on local folders; the shard report lands beside the outputs and merges clean.
#[test]
fn batch_weather_and_inpaint_from_s3_to_s3_match_local_runs() {
    let s3 = S3::start();
    let b = s3.bucket("data");
    let keys = upload_pictures(&b, "night", 6, 24, 16);
    let dir = tempfile::tempdir().unwrap();
    let local_in = dir.path().join("night");
    for k in &keys {
        let p = local_in.join(k);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(&p, b.get(&format!("night/{k}"))).unwrap();
    }
    let m = model();
    let mut a = weather_args(&m, "", "");
    a.push("--uncertainty");
    let (input, out) = (b.url("night"), b.url("day"));
    a[5] = &input;
    a[7] = &out;
    let o = s3.run(&a);
    assert!(o.status.success(), "{}", err(&o));
    assert!(
        err(&o).contains("done 6, skipped 0, failed 0"),
        "{}",
        err(&o)
    );
    let local_out = dir.path().join("day");
    let (li, lo) = (
        local_in.display().to_string(),
        local_out.display().to_string(),
    );
    a[5] = &li;
    a[7] = &lo;
    let o = s3.run(&a);
    assert!(o.status.success(), "{}", err(&o));
    let outs = b.outputs("day");
    assert_eq!(outs.len(), 12, "{outs:?}");
    for k in &outs {
        let remote = image::load_from_memory(&b.get(&format!("day/{k}"))).unwrap();
        let local = image::open(local_out.join(k)).unwrap();
        assert_eq!(remote, local, "{k}: same pixels as the local run");
    }
    let reports = b.list("day/_reports");
    assert!(
        reports.contains_key("shard-0000-of-0001.json"),
        "{reports:?}"
    );
    assert!(
        reports.contains_key("shard-0000-of-0001.SUCCESS"),
        "{reports:?}"
    );
    let (ok, text) = merged(&s3, &out);
    assert!(
        ok && text.contains("1 of 1 shard(s) reported, 1 clean; done 6"),
        "{text}"
    );
    // A re-run finds every output there and writes nothing.
    let before = b.list("day");
    a[5] = &input;
    a[7] = &out;
    let o = s3.run(&a);
    assert!(
        err(&o).contains("done 0, skipped 6, failed 0"),
        "{}",
        err(&o)
    );
    let after = b.list("day");
    for k in &outs {
        assert_eq!(before[k], after[k], "{k} was not rewritten");
    }

    // batch inpaint: images and a mask folder in the bucket, the classical engine.
    let mask = GrayImage::from_fn(24, 16, |x, _| Luma([if x > 8 && x < 16 { 255 } else { 0 }]));
    let mut mask_png = Vec::new();
    mask.write_to(
        &mut std::io::Cursor::new(&mut mask_png),
        image::ImageFormat::Png,
    )
    .unwrap();
    for k in &keys {
        let stem = k.trim_end_matches(".png");
        b.put(&format!("masks/{stem}_mask.png"), mask_png.clone());
    }
    let (masks, filled) = (b.url("masks"), b.url("filled"));
    let inpaint = |images: &str, masks: &str, out: &str| {
        s3.run(&[
            "batch",
            "inpaint",
            "--images",
            images,
            "--masks",
            masks,
            "--out",
            out,
            "--recursive",
            "--engine",
            "classical",
            "--seed",
            "1",
        ])
    };
    let o = inpaint(&input, &masks, &filled);
    assert!(o.status.success(), "{}", err(&o));
    assert!(
        err(&o).contains("done 6, skipped 0, failed 0"),
        "{}",
        err(&o)
    );
    let local_masks = dir.path().join("masks");
    std::fs::create_dir_all(local_masks.join("sub")).unwrap();
    for k in &keys {
        mask.save(local_masks.join(k.replace(".png", "_mask.png")))
            .unwrap();
    }
    let local_filled = dir.path().join("filled");
    let o = inpaint(
        &li,
        &local_masks.display().to_string(),
        &local_filled.display().to_string(),
    );
    assert!(o.status.success(), "{}", err(&o));
    for k in &keys {
        let remote = image::load_from_memory(&b.get(&format!("filled/{k}"))).unwrap();
        assert_eq!(remote, image::open(local_filled.join(k)).unwrap(), "{k}");
    }
    // One mask object for every image: the same masks, so the same pixels.
    let (one, filled1) = (b.url("masks/n1_mask.png"), b.url("filled-one"));
    let o = inpaint(&input, &one, &filled1);
    assert!(
        err(&o).contains("done 6, skipped 0, failed 0"),
        "{}",
        err(&o)
    );
    for k in &keys {
        assert_eq!(
            b.get(&format!("filled-one/{k}")),
            b.get(&format!("filled/{k}")),
            "{k}"
        );
    }
    // An output bucket that does not exist fails before any work, in one line.
    let o = inpaint(&input, &one, "s3://no-such-bucket/out");
    let e = err(&o);
    assert!(
        !o.status.success()
            && e.contains("s3://no-such-bucket/out: cannot reach:")
            && e.contains("(NoSuchBucket)")
            && e.lines().count() == 1,
        "{e}"
    );
    // A missing input object is a one-line error naming its URL.
    let o = inpaint(&b.url("nothing-here"), &one, &b.url("x"));
    assert!(
        !o.status.success() && err(&o).contains("s3://data/nothing-here: no images"),
        "{}",
        err(&o)
    );
}

/// Four tasks started by each engine's variables cover every key exactly once (one engine
/// reads a manifest instead of listing), and the merged report counts them all.
#[test]
fn four_shards_from_each_engine_cover_every_key_once() {
    let s3 = S3::start();
    let b = s3.bucket("shards");
    let keys = upload_pictures(&b, "in", 10, 24, 16);
    let manifest = keys.join("\n") + "\n";
    b.put("lists/all.txt", manifest.into_bytes());
    let engines = common::engines();
    let m = model();
    let input = b.url("in");
    let list = b.url("lists/all.txt");
    for (engine, vars, extra) in engines {
        let name = engine.to_lowercase().replace(' ', "-");
        let name = name.as_str();
        let out = b.url(name);
        for k in 0..3u64 {
            let mut a = weather_args(&m, &input, &out);
            a.extend(["--shard", "env"]);
            a.extend(extra);
            if engine == "Kubernetes" {
                a.retain(|x| *x != "--recursive");
                a.extend(["--manifest", &list]);
            }
            let mut cmd = s3.command(&a);
            for (k, v) in vars(k) {
                cmd.env(k, v);
            }
            let o = cmd.output().unwrap();
            assert!(o.status.success(), "{name} task {k}: {}", err(&o));
        }
        // Three of four tasks: the merge names the missing one and fails.
        let (ok, text) = merged(&s3, &out);
        assert!(!ok && text.contains("missing shards: 3"), "{name}: {text}");
        let mut a = weather_args(&m, &input, &out);
        a.extend(["--shard", "env"]);
        a.extend(extra);
        let mut cmd = s3.command(&a);
        for (k, v) in vars(3) {
            cmd.env(k, v);
        }
        assert!(cmd.output().unwrap().status.success());
        let mut outs = b.outputs(name);
        outs.sort();
        let mut want = keys.clone();
        want.sort();
        assert_eq!(outs, want, "{name}: every key once");
        let (ok, text) = merged(&s3, &out);
        assert!(ok, "{name}: {text}");
        assert!(
            text.contains("4 of 4 shard(s) reported, 4 clean; done 10"),
            "{name}: {text}"
        );
    }
}

fn done_count(stderr: &str) -> usize {
    let line = stderr
        .lines()
        .find(|l| l.starts_with("done "))
        .expect("a summary");
    line["done ".len()..]
        .split(',')
        .next()
        .unwrap()
        .parse()
        .unwrap()
}

/// Two attempts of the same shard at once (a replaced pod whose predecessor still runs): each
/// output is written by exactly one of them, and both end successfully.
#[test]
fn two_concurrent_attempts_of_a_shard_write_each_output_once() {
    let s3 = S3::start();
    let b = s3.bucket("twice");
    let keys = upload_pictures(&b, "in", 16, 48, 32);
    let m = model();
    let (input, out) = (b.url("in"), b.url("out"));
    let mut a = weather_args(&m, &input, &out);
    a.extend(["--shard", "1/2", "--prefetch", "1"]);
    let spawn = || {
        s3.command(&a)
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap()
    };
    let (c1, c2) = (spawn(), spawn());
    let (o1, o2) = (
        c1.wait_with_output().unwrap(),
        c2.wait_with_output().unwrap(),
    );
    assert!(
        o1.status.success() && o2.status.success(),
        "{}\n{}",
        err(&o1),
        err(&o2)
    );
    let outs = b.outputs("out");
    assert!(
        !outs.is_empty() && outs.len() < keys.len(),
        "one shard of two: {outs:?}"
    );
    assert_eq!(
        done_count(&err(&o1)) + done_count(&err(&o2)),
        outs.len(),
        "each output written once:\n{}\n{}",
        err(&o1),
        err(&o2)
    );
}

/// A run killed with SIGKILL while it writes leaves only complete objects; the re-run writes
/// exactly the missing ones and the set is complete.
#[test]
fn a_killed_run_leaves_no_partial_object_and_a_rerun_completes() {
    let s3 = S3::start();
    let b = s3.bucket("killed");
    let keys = upload_pictures(&b, "in", 24, 160, 120);
    let m = model();
    let (input, out) = (b.url("in"), b.url("out"));
    let mut a = weather_args(&m, &input, &out);
    a.push("--uncertainty");
    let mut child = s3
        .command(&a)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let start = Instant::now();
    while b.outputs("out").len() < 3 {
        assert!(
            start.elapsed() < Duration::from_secs(120),
            "no output appeared"
        );
        if child.try_wait().unwrap().is_some() {
            break;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    child.kill().unwrap(); // SIGKILL
    child.wait().unwrap();
    // Let the server finish a request whose body it had received whole.
    std::thread::sleep(Duration::from_millis(300));
    let first = b.list("out");
    let n_first = b.outputs("out").len();
    assert!(
        n_first < 2 * keys.len(),
        "killed part way: {n_first} outputs"
    );
    for k in b.outputs("out") {
        let img = image::load_from_memory(&b.get(&format!("out/{k}")))
            .unwrap_or_else(|e| panic!("{k} is a partial object: {e}"));
        assert_eq!((img.width(), img.height()), (160, 120), "{k}");
    }
    // Items with both PNGs in place (the image is written last, so it marks an item done).
    let n_done = first
        .keys()
        .filter(|k| !k.starts_with("_reports/") && !k.ends_with("_uncertainty.png"))
        .count();
    let o = s3.run(&a);
    assert!(o.status.success(), "{}", err(&o));
    let all = b.outputs("out");
    assert_eq!(all.len(), 2 * keys.len(), "{all:?}");
    let now = b.list("out");
    for (k, etag) in first.iter().filter(|(k, _)| !k.starts_with("_reports/")) {
        assert_eq!(&now[k], etag, "{k} was written twice");
    }
    // The re-run's report: what it wrote plus what it found there is the whole set (an
    // upload the server had fully received when the client died may land after our listing).
    let (ok, text) = merged(&s3, &out);
    let count = |after: &str| -> usize {
        let rest = &text[text.find(after).unwrap_or_else(|| panic!("{text}")) + after.len()..];
        rest.split(|c: char| !c.is_ascii_digit())
            .next()
            .unwrap()
            .parse()
            .unwrap()
    };
    let (done, there) = (count("clean; done "), count("skipped "));
    assert!(
        ok && done + there == keys.len() && there >= n_done,
        "{n_done}: {text}"
    );
}
