//! The desktop app driven through egui_kittest (no window, no GPU needed): open an image,
//! paint a stroke with the pointer, erase, undo / redo, run the classical engine on the worker
//! thread and get a result into the history, cancel, and a missing model shown as an error.

use clearpaint::gui::ClearpaintApp;
use clearpaint::gui::app::EngineChoice;
use eframe::egui;
use egui_kittest::Harness;
use egui_kittest::kittest::Queryable;

fn assets() -> std::path::PathBuf {
    std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../assets")
}

fn harness(app: ClearpaintApp) -> Harness<'static, ClearpaintApp> {
    Harness::builder()
        .with_size(egui::vec2(1200.0, 800.0))
        .build_ui_state(|ui, app: &mut ClearpaintApp| app.show(ui), app)
}

fn opened() -> ClearpaintApp {
    let mut app = ClearpaintApp::new();
    app.open_path(&assets().join("sample.png"));
    assert!(app.editor.is_some(), "{:?}", app.error);
    app
}

/// The sample image with the sample mask painted.
fn opened_with_mask() -> ClearpaintApp {
    let mut app = opened();
    let mask = image::open(assets().join("sample_mask.png"))
        .unwrap()
        .to_luma8();
    app.editor.as_mut().unwrap().set_mask(mask).unwrap();
    app
}

/// The canvas centre, where the image is drawn.
/// Clicks Run and waits for the job to end.
fn run_to_the_end(app: ClearpaintApp) -> Harness<'static, ClearpaintApp> {
    let mut h = harness(app);
    h.run();
    h.get_by_label("Run").click();
    // A running job repaints as it reports progress: step frames, don't wait for a settle.
    h.run_steps(2);
    h.state_mut().wait_for_job();
    h.run();
    h
}

fn canvas_point(h: &Harness<'_, ClearpaintApp>) -> egui::Pos2 {
    let _ = h;
    egui::pos2(450.0, 420.0)
}

#[test]
fn painting_with_the_pointer_sets_mask_pixels_and_undo_restores() {
    let mut h = harness(opened());
    h.run();
    let p = canvas_point(&h);
    h.hover_at(p);
    h.run();
    h.drag_at(p);
    h.run();
    // Move like a mouse does: small steps.
    for k in 1..=12 {
        h.hover_at(p + egui::vec2(6.0 * k as f32, 0.0));
        h.run();
    }
    h.drop_at(p + egui::vec2(72.0, 0.0));
    h.run();
    let painted = h.state().editor.as_ref().unwrap().mask.clone();
    let n = painted.pixels().filter(|v| v[0] == 255).count();
    // A 24 px brush dragged ~72 screen px: far more than one dab (~450 px).
    assert!(n > 1200, "the stroke painted {n} pixels");

    // Undo (Ctrl+Z) clears it, redo (Ctrl+Shift+Z) brings it back exactly.
    h.key_press_modifiers(egui::Modifiers::COMMAND, egui::Key::Z);
    h.run();
    assert_eq!(h.state().editor.as_ref().unwrap().mask_pixels(), 0);
    h.key_press_modifiers(
        egui::Modifiers::COMMAND | egui::Modifiers::SHIFT,
        egui::Key::Z,
    );
    h.run();
    assert_eq!(h.state().editor.as_ref().unwrap().mask, painted);
}

#[test]
fn run_with_the_classical_engine_adds_a_result() {
    let mut app = opened_with_mask();
    app.settings.engine = EngineChoice::Classical;
    let mut h = harness(app);
    h.run();
    h.get_by_label("Run").click();
    // A running job repaints as it reports progress: step frames, don't wait for a settle.
    h.run_steps(2);
    h.state_mut().wait_for_job();
    h.run();
    let app = h.state();
    assert!(app.error.is_none(), "{:?}", app.error);
    let ed = app.editor.as_ref().unwrap();
    assert_eq!(ed.history.len(), 1);
    assert!(ed.before.is_some());
    assert_ne!(ed.before.as_ref().unwrap(), &ed.image);
    assert!(h.query_by_label_contains("done in").is_some());
}

#[test]
fn a_missing_model_is_an_error_in_the_window() {
    let mut app = opened_with_mask();
    app.settings.engine = EngineChoice::Diffusion;
    app.settings.model_dir = "/nonexistent/stable-diffusion-inpainting".into();
    let h = run_to_the_end(app);
    let err = h.state().error.clone().expect("an error");
    assert!(
        err.contains("no such model folder") && err.contains("weights/README.md"),
        "{err}"
    );
    assert!(h.query_by_label_contains("no such model folder").is_some());
}

#[test]
fn precision_is_a_setting_and_f16_on_the_cpu_is_an_error_in_the_window() {
    let mut app = opened_with_mask();
    app.settings.engine = EngineChoice::Diffusion;
    app.settings.model_dir = assets()
        .join("../tools/reference/fixtures/tiny_sd_inpaint9")
        .display()
        .to_string();
    app.settings.device = clearpaint_core::device::DeviceChoice::Cpu;
    app.settings.precision = clearpaint_core::precision::Precision::F16;
    let h = run_to_the_end(app);
    assert!(h.query_by_label_contains("Precision").is_some());
    let err = h.state().error.clone().expect("an error");
    assert!(err.contains("f16") && err.contains("CPU"), "{err}");
    assert!(
        h.state().editor.as_ref().unwrap().before.is_none(),
        "no result"
    );
}

#[test]
fn a_broken_model_under_auto_is_an_error_not_a_classical_fill() {
    let dir = tempfile::tempdir().unwrap();
    let src = assets().join("../tools/reference/fixtures/tiny_sd_inpaint9");
    let model = dir.path().join("model");
    for sub in ["", "unet", "vae", "text_encoder", "tokenizer", "scheduler"] {
        std::fs::create_dir_all(model.join(sub)).unwrap();
        for e in std::fs::read_dir(src.join(sub)).unwrap() {
            let e = e.unwrap();
            if e.file_type().unwrap().is_file() {
                std::fs::copy(e.path(), model.join(sub).join(e.file_name())).unwrap();
            }
        }
    }
    let weights = model.join("unet/diffusion_pytorch_model.safetensors");
    let bytes = std::fs::read(&weights).unwrap();
    std::fs::write(&weights, &bytes[..bytes.len() / 2]).unwrap();
    let mut app = opened_with_mask();
    app.settings.engine = EngineChoice::Auto;
    app.settings.model_dir = model.display().to_string();
    app.settings.device = clearpaint_core::device::DeviceChoice::Cpu;
    let h = run_to_the_end(app);
    let err = h.state().error.clone().expect("an error");
    assert!(err.contains("diffusion_pytorch_model.safetensors"), "{err}");
    assert!(h.state().editor.as_ref().unwrap().history.is_empty());
}

#[test]
fn an_empty_mask_is_explained_not_run() {
    let mut h = harness(opened());
    h.run();
    h.get_by_label("Run").click();
    h.run();
    assert!(!h.state().is_running());
    assert!(h.state().error.as_ref().unwrap().contains("mask is empty"));
}

#[test]
fn cancel_stops_a_diffusion_run() {
    let mut app = opened_with_mask();
    app.settings.engine = EngineChoice::Diffusion;
    app.settings.model_dir = std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../tools/reference/fixtures/tiny_sd_inpaint9")
        .display()
        .to_string();
    app.settings.request.steps = 1000;
    app.settings.device = clearpaint_core::device::DeviceChoice::Cpu;
    let mut h = harness(app);
    h.run();
    h.get_by_label("Run").click();
    h.run_steps(2);
    // Cancel at once: on a fast CPU the tiny model's 1000 steps take about 0.3 s.
    assert!(h.state().is_running());
    h.get_by_label("Cancel").click();
    // The job repaints as it reports progress: step frames rather than wait for it to settle.
    h.run_steps(2);
    let start = std::time::Instant::now();
    h.state_mut().wait_for_job();
    assert!(start.elapsed().as_secs() < 30, "cancel took too long");
    h.run();
    assert_eq!(h.state().status, "cancelled");
    assert!(h.state().editor.as_ref().unwrap().history.is_empty());
}

#[test]
fn masks_save_and_load_as_grayscale_png_and_zoom_buttons_work() {
    let dir = tempfile::tempdir().unwrap();
    let mut app = opened();
    let mask = image::open(assets().join("sample_mask.png"))
        .unwrap()
        .to_luma8();
    app.editor.as_mut().unwrap().set_mask(mask.clone()).unwrap();
    let saved = dir.path().join("m.png");
    app.mask_path_input = saved.display().to_string();
    let mut h = harness(app);
    h.run();
    h.get_by_label("Save mask").click();
    h.run();
    assert_eq!(image::open(&saved).unwrap().to_luma8(), mask);
    // Clear, then load it back: the same pixels, and the load is undoable.
    h.get_by_label("Clear").click();
    h.run();
    assert_eq!(h.state().editor.as_ref().unwrap().mask_pixels(), 0);
    h.get_by_label("Load mask").click();
    h.run();
    assert_eq!(h.state().editor.as_ref().unwrap().mask, mask);
    // A mask of another size is refused in the window.
    let small = dir.path().join("small.png");
    image::GrayImage::new(10, 10).save(&small).unwrap();
    h.state_mut().mask_path_input = small.display().to_string();
    h.get_by_label("Load mask").click();
    h.run();
    assert!(
        h.state()
            .error
            .as_ref()
            .unwrap()
            .contains("the mask is 10x10"),
        "{:?}",
        h.state().error
    );
    // 100% then Fit, in a window too small for the image at 1:1.
    let state = std::mem::replace(h.state_mut(), ClearpaintApp::new());
    drop(h);
    let mut h = Harness::builder()
        .with_size(egui::vec2(640.0, 480.0))
        .build_ui_state(|ui, app: &mut ClearpaintApp| app.show(ui), state);
    h.run();
    h.get_by_label("100%").click();
    h.run();
    assert!(
        h.state().zoom() > 1.0,
        "100% on a 512 px image in a smaller canvas zooms in"
    );
    h.get_by_label("Fit").click();
    h.run();
    assert_eq!(h.state().zoom(), 1.0);
}

#[test]
fn known_models_section_uses_and_checks_models() {
    let dir = tempfile::tempdir().unwrap();
    let asym = dir.path().join("asymmetric-autoencoder-kl-x-1-5");
    let fixtures = assets().join("../tools/reference/fixtures");
    std::fs::create_dir_all(&asym).unwrap();
    for f in ["config.json", "diffusion_pytorch_model.safetensors"] {
        std::fs::copy(fixtures.join("vae_asym_tiny").join(f), asym.join(f)).unwrap();
    }
    let mut app = ClearpaintApp::new();
    app.models.weights_dir = dir.path().to_path_buf();
    app.settings.model_dir = fixtures.join("tiny_sd_inpaint9").display().to_string();
    // Tall enough that the whole settings panel is on screen (it scrolls in a smaller window).
    let mut h = Harness::builder()
        .with_size(egui::vec2(1200.0, 2000.0))
        .build_ui_state(|ui, app: &mut ClearpaintApp| app.show(ui), app);
    h.run();
    h.get_by_label("Known models").click();
    h.run();
    // Every known model is listed with where it is; absent ones offer a download.
    assert!(h.query_by_label_contains("present: ").is_some());
    assert!(h.query_by_label("Fetch sd15-inpainting").is_some());
    assert!(h.query_by_label("Fetch asym-vae-x2").is_some());
    // Use fills the VAE field with the folder found.
    h.get_by_label("Use asym-vae-x1.5").click();
    h.run();
    assert_eq!(h.state().settings.vae_dir, asym.display().to_string());
    // Check validates it (and the model folder) as `weights check` does.
    h.get_by_label("Check asym-vae-x1.5").click();
    h.run();
    let msg = h.state().models.message.clone().unwrap();
    assert!(msg.ends_with("OK (1 part(s) checked)"), "{msg}");
    h.get_by_label("Check model").click();
    h.run();
    let msg = h.state().models.message.clone().unwrap();
    assert!(msg.contains("OK (4 part(s) checked)"), "{msg}");
    // A broken file is named with its problem.
    std::fs::write(asym.join("diffusion_pytorch_model.safetensors"), b"garbage").unwrap();
    h.get_by_label("Check asym-vae-x1.5").click();
    h.run();
    let msg = h.state().models.message.clone().unwrap();
    assert!(msg.contains("not a safetensors file"), "{msg}");
    assert!(
        h.query_by_label_contains("not a safetensors file")
            .is_some()
    );
}

#[test]
fn results_history_compare_and_feather() {
    let mut app = opened();
    let mask = image::open(assets().join("sample_mask.png"))
        .unwrap()
        .to_luma8();
    app.editor.as_mut().unwrap().set_mask(mask.clone()).unwrap();
    app.settings.engine = EngineChoice::Classical;
    let mut h = Harness::builder()
        .with_size(egui::vec2(1200.0, 1600.0))
        .build_ui_state(|ui, app: &mut ClearpaintApp| app.show(ui), app);
    h.run();
    // Two passes: the second works on the first one's result.
    for grow in [0, 12] {
        h.state_mut().editor.as_mut().unwrap().grow_mask(grow);
        h.get_by_label("Run").click();
        // A running job repaints as it reports progress: step frames, don't wait for a settle.
        h.run_steps(2);
        h.state_mut().wait_for_job();
        h.run();
    }
    let (first, second) = {
        let ed = h.state().editor.as_ref().unwrap();
        assert_eq!(ed.history.len(), 2);
        (ed.history[0].clone(), ed.history[1].clone())
    };
    assert!(first != second, "the second pass changed nothing");
    // The compare slider is offered once there is a result; the divider can be set.
    assert!(
        h.query_by_label_contains("drag the slider to compare")
            .is_some()
    );
    h.state_mut().compare_split = 0.5;
    h.run();
    // Going back to the first result, and undoing that.
    h.get_by_label("Result 1").click();
    h.run();
    assert_eq!(h.state().editor.as_ref().unwrap().image, first);
    h.key_press_modifiers(egui::Modifiers::COMMAND, egui::Key::Z);
    h.run();
    assert_eq!(h.state().editor.as_ref().unwrap().image, second);
    // Feather turns the hard mask edge into a gradient.
    let hard = |m: &image::GrayImage| m.pixels().filter(|p| p[0] != 0 && p[0] != 255).count();
    assert_eq!(hard(&h.state().editor.as_ref().unwrap().mask), hard(&mask));
    h.get_by_label("Feather").click();
    h.run();
    assert!(hard(&h.state().editor.as_ref().unwrap().mask) > hard(&mask) + 100);
    assert!(h.query_by_label("Mask colour").is_some());
}

#[test]
fn weather_tab_translates_shows_uncertainty_and_saves_all() {
    let dir = tempfile::tempdir().unwrap();
    let inputs = dir.path().join("night");
    std::fs::create_dir(&inputs).unwrap();
    for name in ["a.png", "b.png"] {
        std::fs::copy(assets().join("sample.png"), inputs.join(name)).unwrap();
    }
    let out = dir.path().join("day");
    let mut app = ClearpaintApp::new();
    app.settings.device = clearpaint_core::device::DeviceChoice::Cpu;
    let mut h = harness(app);
    h.run();
    h.get_by_label("Weather").click();
    h.run();
    {
        let w = &mut h.state_mut().weather;
        w.model_path = assets()
            .join("../tools/reference/fixtures/augan_tiny.safetensors")
            .display()
            .to_string();
        w.input_path = inputs.display().to_string();
        w.out_dir = out.display().to_string();
    }
    h.run();
    h.get_by_label("Add").click();
    h.run();
    assert_eq!(
        h.state().weather.items.len(),
        2,
        "{:?} {}",
        h.state().weather.error,
        h.state().weather.status
    );
    h.get_by_label("Translate").click();
    // A running job repaints as it reports progress: step frames, don't wait for a settle.
    h.run_steps(2);
    h.state_mut().weather.wait();
    h.run();
    let w = &h.state().weather;
    assert!(w.error.is_none(), "{:?}", w.error);
    for it in &w.items {
        let o = it.output.as_ref().expect("translated");
        assert_eq!(o.image.dimensions(), it.input.dimensions());
        assert!(o.sigma.is_some(), "the uncertainty map was computed");
    }
    h.get_by_label("Uncertainty").click();
    h.run();
    h.get_by_label("Save all").click();
    h.run();
    assert!(
        h.state().weather.error.is_none(),
        "{:?}",
        h.state().weather.error
    );
    for f in [
        "a.png",
        "a_uncertainty.png",
        "a_overlay.png",
        "b.png",
        "b_uncertainty.png",
    ] {
        assert!(out.join(f).is_file(), "{f} written");
    }
    // Saving again does not overwrite without being asked.
    h.get_by_label("Save all").click();
    h.run();
    let e = h.state().weather.error.clone().unwrap();
    assert!(e.contains("already exists"), "{e}");
    // A missing model is explained in the window.
    h.state_mut().weather.model_path = "/nonexistent.safetensors".into();
    h.state_mut().weather.items[0].output = None;
    h.get_by_label("Translate").click();
    h.run();
    assert!(h.query_by_label_contains("no AU-GAN model file").is_some());
}

#[test]
fn file_dialogs_do_not_block_the_window_and_their_choice_is_used() {
    let mut h = harness(ClearpaintApp::new());
    h.run();
    // No desktop portal here: the dialog thread comes back empty-handed while the window
    // keeps drawing frames, and the status says what to do instead.
    h.get_by_label("Browse…").click();
    h.run();
    let start = std::time::Instant::now();
    // (Without a portal the thread may come back within the first frames: the window having
    // drawn them while it ran is what shows it does not block.)
    while !h.state().status.starts_with("no file chosen") {
        assert!(
            start.elapsed().as_secs() < 30,
            "the dialog thread never returned"
        );
        h.step();
        std::thread::sleep(std::time::Duration::from_millis(5));
    }
    // What a dialog returns is opened / saved like a typed path.
    use clearpaint::gui::dialogs::Purpose;
    let dir = tempfile::tempdir().unwrap();
    h.state_mut()
        .dialog_done(Purpose::OpenImage, vec![assets().join("sample.png")]);
    assert!(h.state().editor.is_some());
    let out = dir.path().join("saved.png");
    h.state_mut()
        .dialog_done(Purpose::SaveImage, vec![out.clone()]);
    assert!(out.is_file(), "{:?}", h.state().error);
    h.state_mut()
        .dialog_done(Purpose::AddWeatherFolder, vec![assets().to_path_buf()]);
    assert!(!h.state().weather.items.is_empty());
}

#[test]
fn a_diffusion_run_with_a_tiny_model_adds_a_result_saved_with_its_parameters() {
    let dir = tempfile::tempdir().unwrap();
    let mut app = opened();
    let mask = image::open(assets().join("sample_mask.png"))
        .unwrap()
        .to_luma8();
    app.editor.as_mut().unwrap().set_mask(mask.clone()).unwrap();
    app.settings.engine = EngineChoice::Diffusion;
    app.settings.model_dir = assets()
        .join("../tools/reference/fixtures/tiny_sd_inpaint9")
        .display()
        .to_string();
    app.settings.request.prompt = "a lake".into();
    app.settings.request.steps = 3;
    app.settings.request.seed = 11;
    app.settings.request.mask_blur = 0;
    app.settings.device = clearpaint_core::device::DeviceChoice::Cpu;
    let before = app.editor.as_ref().unwrap().image.clone();
    let mut h = harness(app);
    h.run();
    h.get_by_label("Run").click();
    // A running job repaints as it reports progress: step frames, don't wait for a settle.
    h.run_steps(2);
    h.state_mut().wait_for_job();
    h.run();
    assert!(h.state().error.is_none(), "{:?}", h.state().error);
    let ed = h.state().editor.as_ref().unwrap();
    assert_eq!(ed.history.len(), 1);
    assert!(ed.image != before, "the masked area was repainted");
    // Paste-back (mask blur 0) keeps every unmasked pixel.
    for (x, y, p) in ed.image.enumerate_pixels() {
        if mask.get_pixel(x, y)[0] == 0 {
            assert_eq!(p, before.get_pixel(x, y));
        }
    }
    let out = dir.path().join("result.png");
    h.state_mut().save_path(&out);
    let text = clearpaint_core::imaging::png_text(&out).unwrap();
    let params = &text.iter().find(|(k, _)| k == "parameters").unwrap().1;
    assert!(
        params.starts_with("a lake\nSteps: 3, Sampler: DPM++ 2M Karras")
            && params.contains("Seed: 11")
            && params.contains("Model: tiny_sd_inpaint9"),
        "{params}"
    );
}

#[test]
fn loras_are_listed_switched_on_with_a_weight_and_used_by_the_run() {
    let dir = tempfile::tempdir().unwrap();
    let fixtures = assets().join("../tools/reference/fixtures");
    std::fs::create_dir_all(dir.path().join("styles")).unwrap();
    std::fs::copy(
        fixtures.join("lora/locon.safetensors"),
        dir.path().join("styles/locon.safetensors"),
    )
    .unwrap();
    std::fs::copy(
        fixtures.join("lora/peft.safetensors"),
        dir.path().join("peft.safetensors"),
    )
    .unwrap();
    let mut app = opened_with_mask();
    app.settings.engine = EngineChoice::Diffusion;
    app.settings.model_dir = fixtures.join("tiny_sd_inpaint9").display().to_string();
    app.settings.request.steps = 2;
    app.settings.request.prompt = "a red fox, ".repeat(375);
    app.settings.device = clearpaint_core::device::DeviceChoice::Cpu;
    app.loras.dir = dir.path().display().to_string();
    let mut h = Harness::builder()
        .with_size(egui::vec2(1200.0, 1600.0))
        .build_ui_state(|ui, app: &mut ClearpaintApp| app.show(ui), app);
    h.run();
    // 1500 tokens: the words past the 1200-token limit are shown.
    assert!(h.query_by_label_contains("1500 tokens").is_some());
    assert!(h.query_by_label_contains("dropped: a red fox").is_some());
    h.get_by_label("LoRAs and embeddings").click();
    h.run();
    h.get_by_label("Refresh").click();
    h.run();
    h.run();
    let names: Vec<String> = h
        .state()
        .loras
        .found
        .iter()
        .map(|e| e.path.display().to_string())
        .collect();
    assert_eq!(names.len(), 2, "{names:?}");
    assert!(names[0].ends_with("peft.safetensors") && names[1].ends_with("locon.safetensors"));
    h.get_by_label("locon").click();
    h.run();
    assert!(h.state().loras.found[1].on && !h.state().loras.found[0].on);
    h.state_mut().loras.found[1].weight = 0.7;
    h.state_mut().settings.request.prompt = "a red fox".into();
    h.run();
    h.get_by_label("Run").click();
    // A running job repaints as it reports progress: step frames, don't wait for a settle.
    h.run_steps(2);
    h.state_mut().wait_for_job();
    h.run();
    assert!(h.state().error.is_none(), "{:?}", h.state().error);
    let params = h
        .state()
        .editor
        .as_ref()
        .unwrap()
        .params
        .clone()
        .expect("parameters");
    assert!(params.starts_with("a red fox <lora:locon:0.7>"), "{params}");
    assert!(params.contains("Lora hashes: \"locon: "), "{params}");
}

fn fixture(name: &str) -> String {
    assets()
        .join("../tools/reference/fixtures")
        .join(name)
        .display()
        .to_string()
}

/// A diffusion run in `mode` (chosen by clicking its button) with a tiny model.
fn run_mode(mut app: ClearpaintApp, mode: &str, model: &str) -> Harness<'static, ClearpaintApp> {
    app.settings.engine = EngineChoice::Diffusion;
    app.settings.model_dir = fixture(model);
    app.settings.request.prompt = "a lake".into();
    app.settings.request.steps = 2;
    app.settings.request.seed = 5;
    app.settings.device = clearpaint_core::device::DeviceChoice::Cpu;
    let mut h = harness(app);
    h.run();
    h.get_by_label(mode).click();
    h.run();
    h.get_by_label("Run").click();
    // A running job repaints as it reports progress: step frames, don't wait for a settle.
    h.run_steps(2);
    h.state_mut().wait_for_job();
    h.run();
    h
}

fn params_of(h: &Harness<'_, ClearpaintApp>) -> String {
    h.state().editor.as_ref().unwrap().params.clone().unwrap()
}

#[test]
fn generate_mode_makes_a_new_image_of_the_chosen_size_without_one_open() {
    let mut app = ClearpaintApp::new();
    app.settings.width = 72;
    app.settings.height = 64;
    let h = run_mode(app, "Generate", "tiny_sd_inpaint4");
    assert!(h.state().error.is_none(), "{:?}", h.state().error);
    assert_eq!(
        h.state().settings.mode,
        clearpaint::gui::app::Mode::Generate
    );
    let ed = h.state().editor.as_ref().expect("a new image");
    assert_eq!(ed.image.dimensions(), (72, 64));
    assert_eq!(ed.mask.dimensions(), (72, 64));
    let params = params_of(&h);
    assert!(
        params.starts_with("a lake\nSteps: 2") && params.contains("Size: 72x64"),
        "{params}"
    );
    assert!(!params.contains("Denoising strength"), "{params}");
}

#[test]
fn edit_mode_reworks_the_whole_image_by_the_strength() {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("in.png");
    image::RgbaImage::from_fn(48, 40, |x, y| {
        image::Rgba([(x * 5) as u8, (y * 6) as u8, 90, 255])
    })
    .save(&input)
    .unwrap();
    let mut app = ClearpaintApp::new();
    app.open_path(&input);
    app.settings.request.strength = 0.5;
    let before = app.editor.as_ref().unwrap().image.clone();
    // No mask painted: Edit does not need one.
    let h = run_mode(app, "Edit", "tiny_sd_inpaint4");
    assert!(h.state().error.is_none(), "{:?}", h.state().error);
    let ed = h.state().editor.as_ref().unwrap();
    assert_eq!(ed.image.dimensions(), (48, 40));
    // Every part of the image changes (not only a masked area).
    let changed = |x0: u32, y0: u32| {
        (0..8).any(|d| ed.image.get_pixel(x0 + d, y0 + d) != before.get_pixel(x0 + d, y0 + d))
    };
    assert!(
        changed(0, 0) && changed(40, 32),
        "the whole image is reworked"
    );
    assert!(
        params_of(&h).contains("Denoising strength: 0.5"),
        "{}",
        params_of(&h)
    );
}

#[test]
fn by_example_mode_repaints_after_the_exemplar_and_needs_one() {
    let dir = tempfile::tempdir().unwrap();
    let exemplar = dir.path().join("ref.png");
    image::RgbaImage::from_fn(45, 37, |x, y| {
        image::Rgba([(x * 3) as u8, 200, (y * 4) as u8, 255])
    })
    .save(&exemplar)
    .unwrap();
    // Without an exemplar: an error saying what to do.
    let h = run_mode(opened_with_mask(), "By example", "tiny_pbe");
    let err = h.state().error.clone().expect("an error");
    assert!(err.contains("Pick an exemplar"), "{err}");

    let mut app = opened_with_mask();
    app.settings.example_path = exemplar.display().to_string();
    app.settings.request.mask_blur = 0;
    let before = app.editor.as_ref().unwrap().image.clone();
    let mask = app.editor.as_ref().unwrap().mask.clone();
    let h = run_mode(app, "By example", "tiny_pbe");
    assert!(h.state().error.is_none(), "{:?}", h.state().error);
    let ed = h.state().editor.as_ref().unwrap();
    assert!(ed.image != before, "the masked area was repainted");
    for (x, y, p) in ed.image.enumerate_pixels() {
        if mask.get_pixel(x, y)[0] == 0 {
            assert_eq!(p, before.get_pixel(x, y));
        }
    }
    assert!(h.query_by_label_contains("prompt is not used").is_some());
    let params = params_of(&h);
    assert!(
        params.contains("Exemplar: ref.png") && params.contains("Model: tiny_pbe"),
        "{params}"
    );

    // An SD folder in By example mode names what is missing.
    let mut app = opened_with_mask();
    app.settings.example_path = exemplar.display().to_string();
    let h = run_mode(app, "By example", "tiny_sd_inpaint9");
    let err = h.state().error.clone().expect("an error");
    assert!(err.contains("no image_encoder/"), "{err}");
}

#[test]
fn edit_mode_with_a_painted_mask_reworks_only_that_part() {
    let mut app = opened_with_mask();
    app.settings.request.strength = 0.6;
    app.settings.request.mask_blur = 0;
    let before = app.editor.as_ref().unwrap().image.clone();
    let mask = app.editor.as_ref().unwrap().mask.clone();
    let h = run_mode(app, "Edit", "tiny_sd_inpaint4");
    assert!(h.state().error.is_none(), "{:?}", h.state().error);
    let ed = h.state().editor.as_ref().unwrap();
    assert!(ed.image != before, "the painted part was reworked");
    for (x, y, p) in ed.image.enumerate_pixels() {
        if mask.get_pixel(x, y)[0] == 0 {
            assert_eq!(p, before.get_pixel(x, y));
        }
    }
    assert!(
        params_of(&h).contains("Denoising strength: 0.6"),
        "{}",
        params_of(&h)
    );
}

#[test]
fn after_a_run_the_result_shows_without_the_mask_and_m_brings_it_back() {
    let mut app = opened_with_mask();
    app.settings.engine = EngineChoice::Classical;
    assert!(app.show_mask);
    let mut h = run_to_the_end(app);
    assert!(h.state().error.is_none(), "{:?}", h.state().error);
    assert!(!h.state().show_mask, "the overlay hides the result");
    // The mask is kept for a re-run.
    assert!(h.state().editor.as_ref().unwrap().mask_pixels() > 0);
    h.key_press(egui::Key::M);
    h.run();
    assert!(h.state().show_mask);
    h.key_press(egui::Key::M);
    h.run();
    assert!(!h.state().show_mask);
}

#[test]
fn outpaint_buttons_grow_the_canvas_and_the_run_paints_the_border() {
    let mut app = opened();
    app.settings.engine = EngineChoice::Classical;
    app.settings.extend_px = 32;
    let (w, h0) = app.editor.as_ref().unwrap().image.dimensions();
    let original = app.editor.as_ref().unwrap().image.clone();
    let mut h = harness(app);
    h.run();
    h.get_by_label("Extend right").click();
    h.run();
    {
        let ed = h.state().editor.as_ref().unwrap();
        assert_eq!(ed.image.dimensions(), (w + 32, h0));
        assert_eq!(
            ed.mask.get_pixel(w + 5, 3)[0],
            255,
            "the new border is masked"
        );
        assert_eq!(ed.mask.get_pixel(w - 1, 3)[0], 0, "the image itself is not");
        assert!(h.state().show_mask);
    }
    h.get_by_label("Run").click();
    // A running job repaints as it reports progress: step frames, don't wait for a settle.
    h.run_steps(2);
    h.state_mut().wait_for_job();
    h.run();
    let app = h.state();
    assert!(app.error.is_none(), "{:?}", app.error);
    let ed = app.editor.as_ref().unwrap();
    assert_eq!(
        ed.image.dimensions(),
        (w + 32, h0),
        "the result has the extended size"
    );
    for (x, y, p) in original.enumerate_pixels() {
        if x + 8 < w {
            assert_eq!(
                ed.image.get_pixel(x, y),
                p,
                "the original area is kept ({x}, {y})"
            );
        }
    }
    // Undo goes back to the result's input, then to the original canvas.
    let mut app = h.into_state();
    let ed = app.editor.as_mut().unwrap();
    assert!(ed.undo() && ed.undo());
    assert_eq!(ed.image, original);
}

#[test]
fn weather_tab_runs_day_to_night_without_an_uncertainty_map() {
    use clearpaint_core::models::augan::{AuganGenerator, Direction};
    let model = assets().join("../tools/reference/fixtures/augan_tiny.safetensors");
    let mut app = ClearpaintApp::new();
    app.settings.device = clearpaint_core::device::DeviceChoice::Cpu;
    app.weather.model_path = model.display().to_string();
    app.weather.input_path = assets().join("sample.png").display().to_string();
    let mut h = harness(app);
    h.run();
    h.get_by_label("Weather").click();
    h.run();
    h.get_by_label("Add").click();
    h.run();
    h.state_mut().weather.direction = Direction::DayToNight;
    h.run();
    h.get_by_label("Translate").click();
    // A running job repaints as it reports progress: step frames, don't wait for a settle.
    h.run_steps(2);
    h.state_mut().weather.wait();
    h.run();
    let w = &h.state().weather;
    assert!(w.error.is_none(), "{:?}", w.error);
    let it = &w.items[0];
    let o = it.output.as_ref().expect("translated");
    assert!(o.sigma.is_none(), "day-to-night has no uncertainty head");
    let dev = burn::tensor::Device::flex();
    let (g, _) = AuganGenerator::load_direction(&model, Direction::DayToNight, &dev).unwrap();
    let req = clearpaint_core::pipelines::weather::WeatherRequest::default();
    let want = clearpaint_core::pipelines::weather::run(&g, &dev, &it.input, &req).unwrap();
    assert_eq!(o.image, want.image);
}
