//! `clearpaint weights check | list | fetch | load`: problems named in deliberately broken
//! folders, a fetch from a local Hub-layout server with an interrupted download that resumes,
//! the offline message, and peak memory while loading a real-size f16 UNet.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use clearpaint_core::weights::SafetensorsFile;
use safetensors::Dtype;
use safetensors::tensor::TensorView;

fn fixtures() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../tools/reference/fixtures")
}

fn clearpaint(args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut c = Command::new(env!("CARGO_BIN_EXE_clearpaint"));
    c.args(args)
        .env("CLEARPAINT_DEVICE", "cpu")
        .env("CLEARPAINT_PRECISION", "f32"); // f32 references: auto may be bf16
    for (k, v) in env {
        c.env(k, v);
    }
    c.output().expect("run clearpaint")
}

fn text(o: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

fn copy_dir(src: &Path, dst: &Path) {
    std::fs::create_dir_all(dst).unwrap();
    for e in std::fs::read_dir(src).unwrap() {
        let e = e.unwrap();
        let to = dst.join(e.file_name());
        if e.path().is_dir() {
            copy_dir(&e.path(), &to);
        } else {
            std::fs::copy(e.path(), to).unwrap();
        }
    }
}

/// Rewrites a safetensors file, letting `edit` drop (None) or replace a tensor
/// (dtype, shape, bytes).
fn rewrite(
    path: &Path,
    edit: impl Fn(&str, Dtype, &[usize], &[u8]) -> Option<(Dtype, Vec<usize>, Vec<u8>)>,
) {
    let file = SafetensorsFile::open(path).unwrap();
    let tensors: Vec<(String, Dtype, Vec<usize>, Vec<u8>)> = file
        .keys()
        .filter_map(|k| {
            let e = file.entry(k).unwrap();
            edit(k, e.dtype, &e.shape, file.raw(k).unwrap())
                .map(|(d, s, b)| (k.to_string(), d, s, b))
        })
        .collect();
    drop(file);
    let views: Vec<(String, TensorView<'_>)> = tensors
        .iter()
        .map(|(k, d, s, b)| (k.clone(), TensorView::new(*d, s.clone(), b).unwrap()))
        .collect();
    safetensors::serialize_to_file(views, None, path).unwrap();
}

fn keep(_: &str, d: Dtype, s: &[usize], b: &[u8]) -> Option<(Dtype, Vec<usize>, Vec<u8>)> {
    Some((d, s.to_vec(), b.to_vec()))
}

fn pipeline_copy(dir: &Path) -> PathBuf {
    let p = dir.join("pipe");
    copy_dir(&fixtures().join("tiny_sd_inpaint9"), &p);
    p
}

fn check(path: &Path, extra: &[&str]) -> (bool, String) {
    let mut args = vec!["weights", "check", path.to_str().unwrap()];
    args.extend(extra);
    let o = clearpaint(&args, &[]);
    (o.status.success(), text(&o))
}

#[test]
fn check_passes_correct_weights() {
    let dir = tempfile::tempdir().unwrap();
    let pipe = pipeline_copy(dir.path());
    let (ok, out) = check(&pipe, &[]);
    assert!(ok, "{out}");
    for part in ["unet: OK", "vae: OK", "text_encoder: OK"] {
        assert!(out.contains(part), "{part}: {out}");
    }
    // A single-file LDM checkpoint: its three models; an AU-GAN file; an asymmetric VAE.
    let (ok, out) = check(&fixtures().join("sd15_ldm_tiny.safetensors"), &[]);
    assert!(ok, "{out}");
    assert_eq!(out.matches(": OK").count(), 3, "{out}");
    let (ok, out) = check(
        &fixtures().join("augan_tiny.safetensors"),
        &["--as", "augan"],
    );
    assert!(ok && out.contains("AU-GAN"), "{out}");
    let (ok, out) = check(&fixtures().join("vae_asym_tiny"), &["--as", "asym-vae"]);
    assert!(ok, "{out}");
}

#[test]
fn check_names_each_problem() {
    let dir = tempfile::tempdir().unwrap();

    // Missing tensor.
    let pipe = pipeline_copy(&dir.path().join("missing"));
    rewrite(
        &pipe.join("unet/diffusion_pytorch_model.safetensors"),
        |k, d, s, b| (k != "conv_in.bias").then(|| (d, s.to_vec(), b.to_vec())),
    );
    let (ok, out) = check(&pipe, &[]);
    assert!(!ok);
    assert!(out.contains("missing tensor: conv_in.bias [16]"), "{out}");
    assert!(out.contains("unet: 1 problem"), "{out}");
    assert!(
        out.contains("vae: OK"),
        "only the broken part is reported: {out}"
    );

    // Wrong shape.
    let pipe = pipeline_copy(&dir.path().join("shape"));
    rewrite(
        &pipe.join("vae/diffusion_pytorch_model.safetensors"),
        |k, d, s, b| {
            if k == "decoder.conv_out.bias" {
                Some((d, vec![4], vec![0; 16]))
            } else {
                keep(k, d, s, b)
            }
        },
    );
    let (ok, out) = check(&pipe, &[]);
    assert!(!ok);
    assert!(
        out.contains("wrong shape: decoder.conv_out.bias is [4] in the file, the model needs [3]"),
        "{out}"
    );

    // Wrong dtype.
    let pipe = pipeline_copy(&dir.path().join("dtype"));
    rewrite(
        &pipe.join("text_encoder/model.safetensors"),
        |k, d, s, b| {
            if k.ends_with("final_layer_norm.weight") {
                Some((Dtype::I32, s.to_vec(), b.to_vec()))
            } else {
                keep(k, d, s, b)
            }
        },
    );
    let (ok, out) = check(&pipe, &[]);
    assert!(!ok);
    assert!(
        out.contains("wrong dtype: ") && out.contains("final_layer_norm.weight has dtype I32"),
        "{out}"
    );

    // Truncated file.
    let pipe = pipeline_copy(&dir.path().join("truncated"));
    let f = pipe.join("unet/diffusion_pytorch_model.safetensors");
    let len = std::fs::metadata(&f).unwrap().len();
    std::fs::OpenOptions::new()
        .write(true)
        .open(&f)
        .unwrap()
        .set_len(len / 2)
        .unwrap();
    let (ok, out) = check(&pipe, &[]);
    assert!(!ok);
    assert!(
        out.contains("diffusion_pytorch_model.safetensors") && out.contains("truncated"),
        "{out}"
    );

    // Wrong model type: a VAE's files in unet/ ...
    let pipe = pipeline_copy(&dir.path().join("type"));
    std::fs::copy(
        pipe.join("vae/diffusion_pytorch_model.safetensors"),
        pipe.join("unet/diffusion_pytorch_model.safetensors"),
    )
    .unwrap();
    let (ok, out) = check(&pipe, &[]);
    assert!(!ok);
    assert!(
        out.contains("wrong model type: the tensors are an AutoencoderKL (VAE)'s, not a UNet2DConditionModel's"),
        "{out}"
    );
    // ... a VAE folder checked as a UNet, and a folder that is no model at all.
    let (ok, out) = check(&pipe.join("vae"), &["--as", "unet"]);
    assert!(!ok);
    assert!(
        out.contains("wrong model type: config.json describes an AutoencoderKL (VAE), expected a UNet2DConditionModel"),
        "{out}"
    );
    let (ok, out) = check(&fixtures().join("loader_block_io.safetensors"), &[]);
    assert!(
        !ok && out.contains("not a model clearpaint recognises"),
        "{out}"
    );
}

#[test]
fn list_says_where_each_model_is() {
    let dir = tempfile::tempdir().unwrap();
    let weights = dir.path().join("weights");
    let asym = weights.join("asymmetric-autoencoder-kl-x-1-5");
    std::fs::create_dir_all(&asym).unwrap();
    std::fs::write(asym.join("config.json"), "{}").unwrap();
    std::fs::write(asym.join("diffusion_pytorch_model.safetensors"), "").unwrap();
    let inpaint = weights.join("stable-diffusion-inpainting");
    std::fs::create_dir_all(inpaint.join("unet")).unwrap();
    std::fs::write(inpaint.join("model_index.json"), "{}").unwrap();
    let hf_home = dir.path().join("hf");
    let o = clearpaint(
        &["weights", "list", "--dir", weights.to_str().unwrap()],
        &[("HF_HOME", hf_home.to_str().unwrap())],
    );
    let out = text(&o);
    assert!(o.status.success(), "{out}");
    assert!(
        out.contains(&format!("present: {}", asym.display())),
        "{out}"
    );
    assert!(
        out.contains("incomplete: ") && out.contains("unet/config.json"),
        "{out}"
    );
    assert!(
        out.contains("missing: clearpaint weights fetch asym-vae-x2"),
        "{out}"
    );
    assert!(out.contains("convert_augan_tf.py"), "{out}");
    assert!(
        out.contains(&hf_home.join("hub").display().to_string()),
        "{out}"
    );
}

/// A Hub-layout server: `GET /api/models/{repo}/revision/main` and
/// `GET /{repo}/resolve/main/{file}` with `Range: bytes=N-` (and hf-hub's `bytes=0-0` probe).
struct FakeHub {
    port: u16,
    ranges: Arc<Mutex<Vec<String>>>,
    cut_next: Arc<AtomicBool>,
}

const COMMIT: &str = "0123456789abcdef0123456789abcdef01234567";

fn sha256_hex(b: &[u8]) -> String {
    use sha2::Digest;
    sha2::Sha256::digest(b)
        .iter()
        .map(|x| format!("{x:02x}"))
        .collect()
}

impl FakeHub {
    fn start(repo: &'static str, files: Vec<(String, Vec<u8>)>, token: &'static str) -> FakeHub {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let ranges = Arc::new(Mutex::new(Vec::new()));
        let cut_next = Arc::new(AtomicBool::new(false));
        let (r, c) = (ranges.clone(), cut_next.clone());
        let files = Arc::new(files);
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(stream) = stream else { continue };
                let (r, c, files) = (r.clone(), c.clone(), files.clone());
                std::thread::spawn(move || serve(stream, repo, &files, token, &r, &c));
            }
        });
        FakeHub {
            port,
            ranges,
            cut_next,
        }
    }

    fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }
}

fn serve(
    mut stream: TcpStream,
    repo: &str,
    files: &[(String, Vec<u8>)],
    token: &str,
    ranges: &Mutex<Vec<String>>,
    cut_next: &AtomicBool,
) {
    let mut reader = BufReader::new(stream.try_clone().unwrap());
    let mut request = String::new();
    if reader.read_line(&mut request).unwrap_or(0) == 0 {
        return; // a reachability probe
    }
    let mut range = None;
    let mut auth = None;
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line).unwrap_or(0) == 0 || line == "\r\n" {
            break;
        }
        let lower = line.to_ascii_lowercase();
        if let Some(v) = lower.strip_prefix("range: bytes=") {
            range = Some(v.trim().to_string());
        }
        if lower.starts_with("authorization:") {
            auth = Some(line["authorization:".len()..].trim().to_string());
        }
    }
    let path = request.split_whitespace().nth(1).unwrap_or("/").to_string();
    let mut reply = |status: &str, headers: Vec<String>, body: &[u8], cut: bool| {
        let mut head = format!("HTTP/1.1 {status}\r\nConnection: close\r\n");
        for h in headers {
            head.push_str(&h);
            head.push_str("\r\n");
        }
        head.push_str("\r\n");
        let _ = stream.write_all(head.as_bytes());
        let body = if cut { &body[..body.len() / 2] } else { body };
        let _ = stream.write_all(body);
        let _ = stream.flush();
    };
    if auth.as_deref() != Some(&format!("Bearer {token}")) {
        reply(
            "401 Unauthorized",
            vec!["Content-Length: 0".into()],
            b"",
            false,
        );
        return;
    }
    if path == format!("/api/models/{repo}/revision/main") {
        let siblings: Vec<String> = files
            .iter()
            .map(|(n, _)| format!("{{\"rfilename\":\"{n}\"}}"))
            .collect();
        let body = format!(
            "{{\"sha\":\"{COMMIT}\",\"siblings\":[{}]}}",
            siblings.join(",")
        );
        reply(
            "200 OK",
            vec![
                "Content-Type: application/json".into(),
                format!("Content-Length: {}", body.len()),
            ],
            body.as_bytes(),
            false,
        );
        return;
    }
    let prefix = format!("/{repo}/resolve/main/");
    let Some((_, content)) = path
        .strip_prefix(&prefix)
        .and_then(|f| files.iter().find(|(n, _)| n == f))
    else {
        reply(
            "404 Not Found",
            vec!["Content-Length: 0".into()],
            b"",
            false,
        );
        return;
    };
    let etag = if content.len() > 1000 {
        sha256_hex(content) // LFS files: the ETag is the sha256
    } else {
        "fedcba9876543210fedcba9876543210fedcba98".into()
    };
    let size = content.len();
    let (start, end) = match range.as_deref() {
        Some("0-0") => (0, 0),
        Some(r) => (r.trim_end_matches('-').parse::<usize>().unwrap(), size - 1),
        None => (0, size - 1),
    };
    if range.as_deref() != Some("0-0") {
        ranges
            .lock()
            .unwrap()
            .push(format!("{}:{start}", path.rsplit('/').next().unwrap()));
    }
    let body = &content[start..=end];
    let cut =
        range.as_deref() != Some("0-0") && size > 1000 && cut_next.swap(false, Ordering::SeqCst);
    reply(
        "206 Partial Content",
        vec![
            format!("ETag: \"{etag}\""),
            format!("X-Repo-Commit: {COMMIT}"),
            format!("Content-Range: bytes {start}-{end}/{size}"),
            format!("Content-Length: {}", body.len()),
        ],
        body,
        cut,
    );
    let _ = stream.shutdown(std::net::Shutdown::Both);
    let _ = reader.read(&mut [0u8; 1]);
}

#[test]
fn fetch_downloads_resumes_and_verifies() {
    let vae = fixtures().join("tiny_sd_inpaint9/vae");
    let files = vec![
        (
            "config.json".to_string(),
            std::fs::read(vae.join("config.json")).unwrap(),
        ),
        (
            "diffusion_pytorch_model.safetensors".to_string(),
            std::fs::read(vae.join("diffusion_pytorch_model.safetensors")).unwrap(),
        ),
    ];
    let weights = files[1].1.clone();
    let hub = FakeHub::start("test-org/tiny-vae", files, "hf_secret");
    let dir = tempfile::tempdir().unwrap();
    let hf_home = dir.path().join("hf");
    let endpoint = hub.endpoint();
    let env = [
        ("HF_HOME", hf_home.to_str().unwrap()),
        ("HF_ENDPOINT", endpoint.as_str()),
        ("HF_TOKEN", "hf_secret"),
        ("NO_PROXY", "127.0.0.1"),
    ];
    let into = dir.path().join("weights");
    let args = [
        "weights",
        "fetch",
        "test-org/tiny-vae",
        "--into",
        into.to_str().unwrap(),
    ];

    // The connection drops halfway through the weights: the run fails and says to re-run.
    hub.cut_next.store(true, Ordering::SeqCst);
    let o = clearpaint(&args, &env);
    let out = text(&o);
    assert!(!o.status.success(), "{out}");
    assert!(
        out.contains("run the same command again to resume"),
        "{out}"
    );
    let blobs = hf_home.join("hub/models--test-org--tiny-vae/blobs");
    let part = blobs.join(format!("{}.part", sha256_hex(&weights)));
    assert_eq!(
        std::fs::metadata(&part).unwrap().len(),
        weights.len() as u64 / 2,
        "half the file is kept"
    );
    assert!(!into.join("tiny-vae").exists());

    // Again: the download resumes from the byte where it stopped.
    let o = clearpaint(&args, &env);
    let out = text(&o);
    assert!(o.status.success(), "{out}");
    let seen = hub.ranges.lock().unwrap().clone();
    assert!(
        seen.contains(&format!(
            "diffusion_pytorch_model.safetensors:{}",
            weights.len() / 2
        )),
        "{seen:?}"
    );
    let snapshot = hf_home.join(format!("hub/models--test-org--tiny-vae/snapshots/{COMMIT}"));
    assert_eq!(
        std::fs::read(snapshot.join("diffusion_pytorch_model.safetensors")).unwrap(),
        weights
    );
    assert_eq!(
        std::fs::read_to_string(hf_home.join("hub/models--test-org--tiny-vae/refs/main")).unwrap(),
        COMMIT
    );
    assert!(!part.exists());
    // --into made weights/tiny-vae, which checks OK.
    let (ok, out) = check(&into.join("tiny-vae"), &[]);
    assert!(ok, "{out}");
    // A third run finds everything cached and downloads nothing.
    let before = hub.ranges.lock().unwrap().len();
    let o = clearpaint(&args, &env);
    assert!(o.status.success(), "{}", text(&o));
    assert_eq!(hub.ranges.lock().unwrap().len(), before);

    // A wrong token is refused by the server; the message names the repo.
    let bad = [
        (
            "HF_HOME",
            dir.path().join("hf2").to_str().unwrap().to_string(),
        ),
        ("HF_ENDPOINT", endpoint.clone()),
        ("HF_TOKEN", "wrong".into()),
        ("NO_PROXY", "127.0.0.1".into()),
    ];
    let bad: Vec<(&str, &str)> = bad.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let o = clearpaint(&["weights", "fetch", "test-org/tiny-vae"], &bad);
    assert!(!o.status.success());
    assert!(text(&o).contains("test-org/tiny-vae"), "{}", text(&o));
}

#[test]
fn fetch_offline_fails_fast_and_says_what_to_download() {
    // A port nothing listens on.
    let port = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let dir = tempfile::tempdir().unwrap();
    let endpoint = format!("http://127.0.0.1:{port}");
    let start = std::time::Instant::now();
    let o = clearpaint(
        &["weights", "fetch", "sd15-inpainting"],
        &[
            ("HF_HOME", dir.path().to_str().unwrap()),
            ("HF_ENDPOINT", &endpoint),
        ],
    );
    let out = text(&o);
    assert!(!o.status.success());
    assert!(start.elapsed().as_secs() < 20);
    assert!(out.contains("is not reachable"), "{out}");
    assert!(
        out.contains("huggingface-cli download stable-diffusion-v1-5/stable-diffusion-inpainting")
            && out.contains("unet/diffusion_pytorch_model.fp16.safetensors")
            && out.contains("weights/stable-diffusion-inpainting"),
        "{out}"
    );
    // Weights not on the Hub say how to get them.
    let o = clearpaint(&["weights", "fetch", "augan-bdd100k"], &[]);
    assert!(!o.status.success());
    assert!(text(&o).contains("convert_augan_tf.py"), "{}", text(&o));
    let o = clearpaint(&["weights", "fetch", "no-such-model"], &[]);
    assert!(
        text(&o).contains("known models are sd15-inpainting"),
        "{}",
        text(&o)
    );
}

#[test]
fn loading_a_real_size_f16_unet_peaks_below_1_5x_its_f32_size() {
    use clearpaint_core::models::unet;
    let dir = tempfile::tempdir().unwrap();
    let unet_dir = dir.path().join("unet");
    std::fs::create_dir(&unet_dir).unwrap();
    std::fs::copy(
        fixtures().join("unet_sd15_inpaint_config.json"),
        unet_dir.join("config.json"),
    )
    .unwrap();
    let config: unet::UNetConfig =
        clearpaint_core::weights::read_config(unet_dir.join("config.json")).unwrap();
    clearpaint_core::testing::write_formula_weights_as(
        unet::UNet2DConditionModel::new(&config, &burn::tensor::Device::flex()),
        &unet_dir.join("diffusion_pytorch_model.fp16.safetensors"),
        Dtype::F16,
        |k| {
            k.replace(".ff.net.geglu.proj.", ".ff.net.0.proj.")
                .replace(".ff.net.out.", ".ff.net.2.")
        },
    );
    let o = clearpaint(&["weights", "load", unet_dir.to_str().unwrap()], &[]);
    let out = text(&o);
    assert!(o.status.success(), "{out}");
    println!("{out}");
    assert!(out.contains("859.5M parameters"), "{out}");
    let ratio: f64 = out
        .split("MiB (")
        .nth(1)
        .and_then(|s| s.split('x').next())
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("no ratio in {out}"));
    assert!(
        ratio < 1.5,
        "peak resident memory is {ratio}x the f32 model: {out}"
    );
}
