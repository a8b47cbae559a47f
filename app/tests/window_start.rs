//! The real desktop window under Xvfb (software rendering through lavapipe): `clearpaint
//! IMAGE` starts, shows the canvas with the image, and is on screen within 10 s. The models'
//! GPU (`--device gpu`, lavapipe here) is shared with the window's renderer.
//!
//! Needs `xvfb-run` (Debian: `xvfb`, `xauth`) and Mesa's Vulkan driver; `.ci/run` installs
//! them. Without them this test fails: it is not skipped.

use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

fn assets() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../assets")
}

#[test]
fn the_window_shows_the_image_within_10_seconds() {
    assert!(
        Command::new("xvfb-run")
            .arg("--help")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok(),
        "xvfb-run is not installed (apt-get install xvfb xauth); .ci/run installs it"
    );
    let dir = tempfile::tempdir().unwrap();
    let shot = dir.path().join("window.png");
    let config = dir.path().join("config");
    let start = Instant::now();
    let mut child = Command::new("xvfb-run")
        .args(["-a", "-s", "-screen 0 1280x800x24"])
        .arg(env!("CARGO_BIN_EXE_clearpaint"))
        .arg(assets().join("sample.png"))
        .env("CLEARPAINT_SCREENSHOT", &shot)
        .env("CLEARPAINT_DEVICE", "gpu")
        .env("CLEARPAINT_CONFIG_DIR", &config)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start xvfb-run");
    // The screenshot is taken on the fifth frame once the image is open, then the window
    // closes; allow 10 s from launch.
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        if start.elapsed() > Duration::from_secs(10) {
            let _ = child.kill();
            let out = child.wait_with_output().unwrap();
            panic!(
                "the window did not show the image within 10 s: {}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    let out = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(status.success(), "{stderr}");
    assert!(
        stderr.contains("sharing one wgpu device between the window and the models"),
        "{stderr}"
    );
    let window = image::open(&shot)
        .unwrap_or_else(|e| panic!("no screenshot ({e}): {stderr}"))
        .to_rgba8();
    assert_eq!(window.dimensions(), (1280, 800));
    // The sample image is drawn 1:1 somewhere on the canvas: find its top-left 16x16 block
    // and compare the whole image there.
    let sample = image::open(assets().join("sample.png")).unwrap().to_rgba8();
    let (sw, sh) = sample.dimensions();
    let close = |a: &image::Rgba<u8>, b: &image::Rgba<u8>| {
        (0..3).all(|c| (a[c] as i32 - b[c] as i32).abs() <= 2)
    };
    let mut found = None;
    'search: for y in 0..(800 - sh) {
        for x in 0..(1280 - sw) {
            if (0..16).all(|k| close(window.get_pixel(x + k, y + k), sample.get_pixel(k, k))) {
                found = Some((x, y));
                break 'search;
            }
        }
    }
    let (x0, y0) = found.expect("the sample image is not on the canvas");
    let matching = sample
        .enumerate_pixels()
        .filter(|(x, y, p)| close(window.get_pixel(x0 + x, y0 + y), p))
        .count();
    // All but the brush cursor's outline.
    assert!(
        matching as f64 > 0.98 * (sw * sh) as f64,
        "{matching} of {} pixels match",
        sw * sh
    );
    // The settings file of a scripted run is not written.
    assert!(!config.join("settings.json").exists());
}
