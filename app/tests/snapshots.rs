//! Rendered snapshots of the desktop app: egui_kittest draws the real app state with the wgpu
//! renderer (on lavapipe, software Vulkan, in CI and here) and compares the pixels with the
//! committed images in `tests/snapshots/`. A run where no wgpu adapter is found fails.
//! Update the images after an intended UI change: `UPDATE_SNAPSHOTS=1 cargo test -p clearpaint
//! --test snapshots`.

use clearpaint::gui::ClearpaintApp;
use eframe::egui;
use egui_kittest::Harness;
use egui_kittest::kittest::Queryable;

/// Relative to the package (cargo runs tests there), so no absolute path of the checkout
/// shows up in a snapshot.
fn assets() -> std::path::PathBuf {
    std::path::PathBuf::from("../assets")
}

fn harness(app: ClearpaintApp) -> Harness<'static, ClearpaintApp> {
    Harness::builder()
        .with_size(egui::vec2(1100.0, 720.0))
        .wgpu()
        .build_ui_state(|ui, app: &mut ClearpaintApp| app.show(ui), app)
}

#[test]
fn snapshot_canvas_with_a_painted_mask() {
    let mut app = ClearpaintApp::new();
    app.open_path(&assets().join("sample.png"));
    let mask = image::open(assets().join("sample_mask.png"))
        .unwrap()
        .to_luma8();
    app.editor.as_mut().unwrap().set_mask(mask).unwrap();
    let mut h = harness(app);
    h.run();
    h.snapshot("canvas_with_mask");
}

#[test]
fn snapshot_compare_slider_after_a_run() {
    let mut app = ClearpaintApp::new();
    app.open_path(&assets().join("sample.png"));
    let mask = image::open(assets().join("sample_mask.png"))
        .unwrap()
        .to_luma8();
    app.editor.as_mut().unwrap().set_mask(mask).unwrap();
    app.settings.engine = clearpaint::gui::app::EngineChoice::Classical;
    let mut h = harness(app);
    h.run();
    h.get_by_label("Run").click();
    h.run();
    h.state_mut().wait_for_job();
    h.state_mut().compare_split = 0.5;
    h.state_mut().status = "done".into(); // not the run's time, which varies
    h.run();
    h.snapshot("compare_half");
}

#[test]
fn snapshot_weather_tab_uncertainty() {
    let mut app = ClearpaintApp::new();
    app.settings.device = clearpaint_core::device::DeviceChoice::Cpu;
    app.tab = clearpaint::gui::app::Tab::Weather;
    app.weather.model_path = assets()
        .join("../tools/reference/fixtures/augan_tiny.safetensors")
        .display()
        .to_string();
    app.weather.add(&assets().join("sample.png"));
    let mut h = harness(app);
    h.run();
    h.get_by_label("Translate").click();
    h.run();
    h.state_mut().weather.wait();
    h.state_mut().weather.view = clearpaint::gui::weather::View::Overlay;
    h.run();
    h.snapshot("weather_overlay");
}
