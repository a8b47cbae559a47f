//! The desktop window: a canvas to paint masks on, an inpainting panel, runs on a worker
//! thread with progress and cancel, before/after compare, undo/redo, save.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc::{Receiver, channel};

use clearpaint_core::device::{self, DeviceChoice};
use clearpaint_core::imaging;
use clearpaint_core::pipelines::inpaint::{
    self, DecoderChoice, InpaintModels, InpaintRequest, Region,
};
use clearpaint_core::progress::CancelToken;
use clearpaint_core::schedulers::SchedulerKind;
use eframe::egui;
use image::RgbaImage;

use super::editor::Editor;

/// Which engine the panel runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EngineChoice {
    /// Diffusion when a model folder is set and loads, else the classical fill.
    Auto,
    Diffusion,
    Classical,
}

/// The inpainting panel's settings.
#[derive(Debug, Clone)]
pub struct Settings {
    pub model_dir: String,
    pub vae_dir: String,
    pub engine: EngineChoice,
    pub request: InpaintRequest,
    pub device: DeviceChoice,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            model_dir: String::new(),
            vae_dir: String::new(),
            engine: EngineChoice::Auto,
            request: InpaintRequest {
                mask_blur: 4,
                ..Default::default()
            },
            device: DeviceChoice::Auto,
        }
    }
}

enum JobResult {
    Done(RgbaImage, Vec<String>),
    Failed(String),
    Cancelled,
}

struct Job {
    rx: Receiver<JobResult>,
    done: Arc<AtomicUsize>,
    total: Arc<AtomicUsize>,
    cancel: CancelToken,
    started: std::time::Instant,
}

pub struct ClearpaintApp {
    pub editor: Option<Editor>,
    pub settings: Settings,
    /// The path in the open / save fields.
    pub path_input: String,
    pub status: String,
    pub error: Option<String>,
    pub show_help: bool,
    /// The path in the mask field (load / save the mask as a grayscale PNG).
    pub mask_path_input: String,
    /// Known models: where they are, Use / Fetch / Check.
    pub models: super::models::ModelsPanel,
    job: Option<Job>,
    texture: Option<(u64, egui::TextureHandle, egui::TextureHandle)>,
    zoom: f32,
    pan: egui::Vec2,
    last_pos: Option<(f32, f32)>,
}

impl Default for ClearpaintApp {
    fn default() -> Self {
        Self::new()
    }
}

impl ClearpaintApp {
    pub fn new() -> Self {
        ClearpaintApp {
            editor: None,
            settings: Settings::default(),
            path_input: String::new(),
            status: "Open an image to start (type a path, or drop a file on the window).".into(),
            error: None,
            show_help: false,
            mask_path_input: String::new(),
            models: super::models::ModelsPanel::default(),
            job: None,
            texture: None,
            zoom: 1.0,
            pan: egui::Vec2::ZERO,
            last_pos: None,
        }
    }

    /// Opens an image file; errors are shown in the window.
    pub fn open_path(&mut self, path: &Path) {
        match imaging::load(path) {
            Ok(l) => {
                self.editor = Some(Editor::new(l.rgba, l.has_alpha));
                self.texture = None;
                self.zoom = 1.0;
                self.pan = egui::Vec2::ZERO;
                self.error = None;
                self.status = format!("opened {}", path.display());
            }
            Err(e) => self.error = Some(e.to_string()),
        }
    }

    /// Saves the current image as PNG with the run's parameters.
    pub fn save_path(&mut self, path: &Path) {
        let Some(ed) = &self.editor else { return };
        let text = vec![(
            "Software",
            format!("clearpaint {}", env!("CARGO_PKG_VERSION")),
        )];
        match imaging::save_png(path, &ed.image, ed.has_alpha, &text) {
            Ok(()) => self.status = format!("saved {}", path.display()),
            Err(e) => self.error = Some(e.to_string()),
        }
    }

    /// Loads a mask (white = repaint) of the image's size; errors are shown in the window.
    pub fn load_mask(&mut self, path: &Path) {
        let Some(ed) = &mut self.editor else { return };
        let result = imaging::load(path)
            .map_err(|e| e.to_string())
            .and_then(|m| {
                ed.set_mask(image::DynamicImage::ImageRgba8(m.rgba).to_luma8())
                    .map_err(|e| format!("{}: {e}", path.display()))
            });
        match result {
            Ok(()) => self.status = format!("loaded mask {}", path.display()),
            Err(e) => self.error = Some(e),
        }
    }

    /// Saves the mask as a grayscale PNG (white = repaint), atomically.
    pub fn save_mask(&mut self, path: &Path) {
        let Some(ed) = &self.editor else { return };
        let rgba = image::DynamicImage::ImageLuma8(ed.mask.clone()).to_rgba8();
        match imaging::save_png(
            path,
            &rgba,
            false,
            &[(
                "Software",
                format!("clearpaint {}", env!("CARGO_PKG_VERSION")),
            )],
        ) {
            Ok(()) => self.status = format!("saved mask {}", path.display()),
            Err(e) => self.error = Some(e.to_string()),
        }
    }

    /// Zoom relative to "fit in the window" (1 = fit).
    pub fn zoom(&self) -> f32 {
        self.zoom
    }

    pub fn is_running(&self) -> bool {
        self.job.is_some()
    }

    /// Starts a run on a worker thread.
    pub fn start_run(&mut self, ctx: &egui::Context) {
        let Some(ed) = &self.editor else { return };
        if ed.mask_pixels() == 0 {
            self.error = Some("Paint the area to repaint first (the mask is empty).".into());
            return;
        }
        let (tx, rx) = channel();
        let done = Arc::new(AtomicUsize::new(0));
        let total = Arc::new(AtomicUsize::new(self.settings.request.steps));
        let cancel = CancelToken::new();
        let image = ed.image.clone();
        let mask = ed.mask.clone();
        let settings = self.settings.clone();
        let (d, t, c, ctx2) = (done.clone(), total.clone(), cancel.clone(), ctx.clone());
        std::thread::spawn(move || {
            let result = run_job(&settings, &image, &mask, &d, &t, &c, &ctx2);
            let _ = tx.send(result);
            ctx2.request_repaint();
        });
        self.error = None;
        self.status = "running…".into();
        self.job = Some(Job {
            rx,
            done,
            total,
            cancel,
            started: std::time::Instant::now(),
        });
    }

    pub fn cancel_run(&mut self) {
        if let Some(j) = &self.job {
            j.cancel.cancel();
            self.status = "cancelling…".into();
        }
    }

    /// Picks up a finished job's result.
    pub fn poll_job(&mut self) {
        let Some(job) = &self.job else { return };
        let Ok(result) = job.rx.try_recv() else {
            return;
        };
        let secs = job.started.elapsed().as_secs_f32();
        self.job = None;
        match result {
            JobResult::Done(img, notes) => {
                if let Some(ed) = &mut self.editor {
                    ed.apply_result(img);
                }
                self.status = format!(
                    "done in {secs:.1}s{}",
                    notes.iter().map(|n| format!("; {n}")).collect::<String>()
                );
            }
            JobResult::Failed(e) => {
                self.error = Some(e);
                self.status = "failed".into();
            }
            JobResult::Cancelled => self.status = "cancelled".into(),
        }
    }

    /// Waits (for tests) until the running job has finished, polling its result.
    pub fn wait_for_job(&mut self) {
        while let Some(job) = &self.job {
            if let Ok(r) = job.rx.recv_timeout(std::time::Duration::from_millis(20)) {
                let (tx, rx) = channel();
                let _ = tx.send(r);
                if let Some(j) = &mut self.job {
                    j.rx = rx;
                }
                self.poll_job();
            }
        }
    }

    fn textures(
        &mut self,
        ctx: &egui::Context,
    ) -> Option<(egui::TextureId, egui::TextureId, egui::Vec2)> {
        let ed = self.editor.as_ref()?;
        let fresh = !matches!(&self.texture, Some((rev, _, _)) if *rev == ed.revision);
        if fresh {
            let (w, h) = (ed.image.width() as usize, ed.image.height() as usize);
            let img = egui::ColorImage::from_rgba_unmultiplied([w, h], ed.image.as_raw());
            let overlay: Vec<u8> = ed
                .mask
                .pixels()
                .flat_map(|p| {
                    if p[0] >= 128 {
                        [255, 40, 60, 110]
                    } else {
                        [0, 0, 0, 0]
                    }
                })
                .collect();
            let ov = egui::ColorImage::from_rgba_unmultiplied([w, h], &overlay);
            let t1 = ctx.load_texture("image", img, egui::TextureOptions::NEAREST);
            let t2 = ctx.load_texture("mask", ov, egui::TextureOptions::NEAREST);
            self.texture = Some((ed.revision, t1, t2));
        }
        let (_, t1, t2) = self.texture.as_ref()?;
        Some((t1.id(), t2.id(), t1.size_vec2()))
    }

    /// The whole window; eframe's `App::ui` and the tests call this.
    pub fn show(&mut self, ui: &mut egui::Ui) {
        let ctx = ui.ctx().clone();
        self.poll_job();
        if self.job.is_some() {
            ctx.request_repaint_after(std::time::Duration::from_millis(100));
        }
        self.shortcuts(&ctx);
        for f in ctx.input(|i| i.raw.dropped_files.clone()) {
            let p = f.path().to_path_buf();
            if !p.as_os_str().is_empty() {
                self.open_path(&p);
            }
        }
        egui::Panel::top("toolbar").show(ui, |ui| self.toolbar(ui));
        egui::Panel::right("settings").show(ui, |ui| {
            egui::ScrollArea::vertical().show(ui, |ui| self.settings_panel(ui))
        });
        egui::Panel::bottom("status").show(ui, |ui| {
            ui.horizontal(|ui| {
                if let Some(e) = &self.error {
                    ui.colored_label(egui::Color32::from_rgb(220, 60, 60), format!("Error: {e}"));
                } else {
                    ui.label(&self.status);
                }
            });
        });
        egui::CentralPanel::default().show(ui, |ui| self.canvas(ui));
        if self.show_help {
            egui::Window::new("Shortcuts").show(&ctx, |ui| {
                for (k, what) in [
                    ("drag", "paint the mask (white = repaint)"),
                    ("E", "toggle eraser"),
                    ("[ / ]", "brush smaller / larger"),
                    ("Ctrl+Z / Ctrl+Shift+Z", "undo / redo"),
                    ("Ctrl+wheel", "zoom"),
                    ("middle-drag / space-drag", "pan"),
                    ("Fit / 100%", "zoom to the window / to one pixel per point"),
                    ("C (hold)", "compare with the image before the last run"),
                    ("Ctrl+Enter", "run"),
                    ("Esc", "cancel a run"),
                    ("H / F1", "this help"),
                ] {
                    ui.label(format!("{k:24} {what}"));
                }
            });
        }
    }

    fn shortcuts(&mut self, ctx: &egui::Context) {
        let (undo, redo, smaller, larger, eraser, help, run, esc) = ctx.input(|i| {
            let cmd = i.modifiers.command;
            (
                cmd && !i.modifiers.shift && i.key_pressed(egui::Key::Z),
                cmd && i.modifiers.shift && i.key_pressed(egui::Key::Z),
                i.key_pressed(egui::Key::OpenBracket),
                i.key_pressed(egui::Key::CloseBracket),
                !cmd && i.key_pressed(egui::Key::E),
                i.key_pressed(egui::Key::F1) || (!cmd && i.key_pressed(egui::Key::H)),
                cmd && i.key_pressed(egui::Key::Enter),
                i.key_pressed(egui::Key::Escape),
            )
        });
        if ctx.egui_wants_keyboard_input() {
            return;
        }
        if let Some(ed) = &mut self.editor {
            if undo {
                ed.undo();
            }
            if redo {
                ed.redo();
            }
            if smaller {
                ed.brush = (ed.brush / 1.25).max(1.0);
            }
            if larger {
                ed.brush = (ed.brush * 1.25).min(1024.0);
            }
            if eraser {
                ed.erase = !ed.erase;
            }
        }
        if help {
            self.show_help = !self.show_help;
        }
        if run && !self.is_running() {
            self.start_run(ctx);
        }
        if esc {
            self.cancel_run();
        }
    }

    fn toolbar(&mut self, ui: &mut egui::Ui) {
        ui.horizontal_wrapped(|ui| {
            let l_file = ui.label("File");
            ui.add(
                egui::TextEdit::singleline(&mut self.path_input)
                    .hint_text("image path")
                    .desired_width(260.0),
            )
            .labelled_by(l_file.id);
            if ui.button("Open").clicked() {
                let p = PathBuf::from(self.path_input.trim());
                self.open_path(&p);
            }
            if ui
                .add_enabled(self.editor.is_some(), egui::Button::new("Save"))
                .clicked()
            {
                let p = PathBuf::from(self.path_input.trim());
                self.save_path(&p);
            }
            ui.separator();
            let l_mask = ui.label("Mask");
            ui.add(
                egui::TextEdit::singleline(&mut self.mask_path_input)
                    .hint_text("mask path")
                    .desired_width(160.0),
            )
            .labelled_by(l_mask.id);
            if ui
                .add_enabled(self.editor.is_some(), egui::Button::new("Load mask"))
                .clicked()
            {
                let p = PathBuf::from(self.mask_path_input.trim());
                self.load_mask(&p);
            }
            if ui
                .add_enabled(self.editor.is_some(), egui::Button::new("Save mask"))
                .clicked()
            {
                let p = PathBuf::from(self.mask_path_input.trim());
                self.save_mask(&p);
            }
            ui.separator();
            if ui.button("Fit").clicked() {
                self.zoom = 1.0;
                self.pan = egui::Vec2::ZERO;
            }
            if ui.button("100%").clicked() {
                self.zoom = -1.0; // resolved to 1:1 in the canvas
                self.pan = egui::Vec2::ZERO;
            }
            ui.separator();
            let Some(ed) = &mut self.editor else { return };
            if ui
                .add_enabled(ed.can_undo(), egui::Button::new("Undo"))
                .clicked()
            {
                ed.undo();
            }
            if ui
                .add_enabled(ed.can_redo(), egui::Button::new("Redo"))
                .clicked()
            {
                ed.redo();
            }
            ui.separator();
            ui.toggle_value(&mut ed.erase, "Eraser");
            ui.add(
                egui::Slider::new(&mut ed.brush, 1.0..=512.0)
                    .logarithmic(true)
                    .text("Brush"),
            );
            if ui.button("Invert").clicked() {
                ed.invert_mask();
            }
            if ui.button("Grow").clicked() {
                ed.grow_mask(4);
            }
            if ui.button("Shrink").clicked() {
                ed.grow_mask(-4);
            }
            if ui.button("Clear").clicked() {
                ed.clear_mask();
            }
            if ui.button("Help").clicked() {
                self.show_help = !self.show_help;
            }
        });
    }

    fn settings_panel(&mut self, ui: &mut egui::Ui) {
        let s = &mut self.settings;
        ui.heading("Inpaint");
        let l_prompt = ui.label("Prompt");
        ui.add(
            egui::TextEdit::multiline(&mut s.request.prompt)
                .hint_text("prompt")
                .desired_rows(3),
        )
        .labelled_by(l_prompt.id);
        let l_negative = ui.label("Negative prompt");
        ui.add(
            egui::TextEdit::singleline(&mut s.request.negative_prompt).hint_text("negative prompt"),
        )
        .labelled_by(l_negative.id);
        egui::ComboBox::from_label("Engine")
            .selected_text(format!("{:?}", s.engine))
            .show_ui(ui, |ui| {
                ui.selectable_value(&mut s.engine, EngineChoice::Auto, "Auto");
                ui.selectable_value(&mut s.engine, EngineChoice::Diffusion, "Diffusion");
                ui.selectable_value(&mut s.engine, EngineChoice::Classical, "Classical");
            });
        egui::ComboBox::from_label("Scheduler")
            .selected_text(s.request.scheduler.name())
            .show_ui(ui, |ui| {
                for k in SchedulerKind::ALL {
                    ui.selectable_value(&mut s.request.scheduler, k, k.name());
                }
            });
        ui.add(egui::Slider::new(&mut s.request.steps, 1..=100).text("Steps"));
        ui.add(egui::Slider::new(&mut s.request.guidance, 1.0..=15.0).text("Guidance"));
        ui.add(egui::Slider::new(&mut s.request.strength, 0.05..=1.0).text("Strength"));
        ui.horizontal(|ui| {
            let l_seed = ui.label("Seed");
            ui.add(egui::DragValue::new(&mut s.request.seed))
                .labelled_by(l_seed.id);
            if ui.button("Random").clicked() {
                s.request.seed = crate::gui::random_seed();
            }
        });
        egui::ComboBox::from_label("Region")
            .selected_text(format!("{:?}", s.request.region))
            .show_ui(ui, |ui| {
                ui.selectable_value(&mut s.request.region, Region::Auto, "Auto");
                ui.selectable_value(&mut s.request.region, Region::Full, "Full");
                ui.selectable_value(&mut s.request.region, Region::Crop, "Crop");
            });
        ui.add(egui::Slider::new(&mut s.request.crop_padding, 0..=256).text("Crop padding"));
        ui.add(egui::Slider::new(&mut s.request.mask_blur, 0..=64).text("Mask blur"));
        ui.checkbox(
            &mut s.request.paste_back,
            "Paste back (keep unmasked pixels)",
        );
        egui::ComboBox::from_label("Decoder")
            .selected_text(format!("{:?}", s.request.decoder))
            .show_ui(ui, |ui| {
                ui.selectable_value(
                    &mut s.request.decoder,
                    DecoderChoice::Asymmetric,
                    "Asymmetric",
                );
                ui.selectable_value(&mut s.request.decoder, DecoderChoice::Standard, "Standard");
            });
        ui.separator();
        ui.label("Models");
        let l_model_folder = ui.label("Model folder");
        ui.add(
            egui::TextEdit::singleline(&mut s.model_dir)
                .hint_text("diffusers folder, .safetensors checkpoint or known name"),
        )
        .labelled_by(l_model_folder.id);
        let l_vae = ui.label("VAE folder");
        ui.add(
            egui::TextEdit::singleline(&mut s.vae_dir)
                .hint_text("asymmetric VAE folder (optional)"),
        )
        .labelled_by(l_vae.id);
        let model_field = s.model_dir.clone();
        match self.models.show(ui, &model_field) {
            Some(super::models::Use::Model(p)) => self.settings.model_dir = p.display().to_string(),
            Some(super::models::Use::Vae(p)) => self.settings.vae_dir = p.display().to_string(),
            None => {}
        }
        ui.separator();
        let running = self.job.is_some();
        ui.horizontal(|ui| {
            if ui
                .add_enabled(!running && self.editor.is_some(), egui::Button::new("Run"))
                .clicked()
            {
                let ctx = ui.ctx().clone();
                self.start_run(&ctx);
            }
            if ui
                .add_enabled(running, egui::Button::new("Cancel"))
                .clicked()
            {
                self.cancel_run();
            }
        });
        if let Some(j) = &self.job {
            let (d, t) = (
                j.done.load(Ordering::SeqCst),
                j.total.load(Ordering::SeqCst).max(1),
            );
            let elapsed = j.started.elapsed().as_secs_f32();
            let eta = if d > 0 {
                elapsed / d as f32 * (t - d) as f32
            } else {
                0.0
            };
            ui.add(
                egui::ProgressBar::new(d as f32 / t as f32)
                    .text(format!("step {d}/{t}, eta {eta:.0}s")),
            );
        }
        if let Some(ed) = &self.editor
            && !ed.history.is_empty()
        {
            ui.label(format!(
                "{} result(s); hold C to compare with the input",
                ed.history.len()
            ));
        }
    }

    fn canvas(&mut self, ui: &mut egui::Ui) {
        let ctx = ui.ctx().clone();
        let Some((img_tex, mask_tex, size)) = self.textures(&ctx) else {
            ui.centered_and_justified(|ui| ui.label("No image open"));
            return;
        };
        let (resp, painter) =
            ui.allocate_painter(ui.available_size(), egui::Sense::click_and_drag());
        let avail = resp.rect;
        let fit = (avail.width() / size.x)
            .min(avail.height() / size.y)
            .min(1.0);
        if self.zoom < 0.0 {
            self.zoom = 1.0 / fit; // "100%": one image pixel per screen point
        }
        if resp.hovered() {
            let (scroll, cmd) = ctx.input(|i| (i.smooth_scroll_delta.y, i.modifiers.command));
            if cmd && scroll != 0.0 {
                self.zoom = (self.zoom * (1.0 + scroll / 400.0)).clamp(0.05, 32.0);
            }
        }
        let space = ctx.input(|i| i.key_down(egui::Key::Space)) && !ctx.egui_wants_keyboard_input();
        if resp.dragged_by(egui::PointerButton::Middle)
            || (space && resp.dragged_by(egui::PointerButton::Primary))
        {
            self.pan += resp.drag_delta();
        }
        let scale = fit * self.zoom;
        let rect = egui::Rect::from_center_size(avail.center() + self.pan, size * scale);
        let compare = ctx.input(|i| i.key_down(egui::Key::C)) && !ctx.egui_wants_keyboard_input();
        let uv = egui::Rect::from_min_max(egui::pos2(0.0, 0.0), egui::pos2(1.0, 1.0));
        if let (true, Some(before)) = (compare, self.editor.as_ref().and_then(|e| e.before.clone()))
        {
            let (w, h) = (before.width() as usize, before.height() as usize);
            let t = ctx.load_texture(
                "before",
                egui::ColorImage::from_rgba_unmultiplied([w, h], before.as_raw()),
                egui::TextureOptions::NEAREST,
            );
            painter.image(t.id(), rect, uv, egui::Color32::WHITE);
        } else {
            painter.image(img_tex, rect, uv, egui::Color32::WHITE);
            painter.image(mask_tex, rect, uv, egui::Color32::WHITE);
        }
        let to_image = |p: egui::Pos2| ((p.x - rect.min.x) / scale, (p.y - rect.min.y) / scale);
        let Some(ed) = &mut self.editor else { return };
        if let Some(p) = resp.hover_pos() {
            painter.circle_stroke(
                p,
                ed.brush * scale / 2.0,
                egui::Stroke::new(1.0, egui::Color32::WHITE),
            );
        }
        if space {
            return;
        }
        if resp.drag_started_by(egui::PointerButton::Primary) {
            ed.begin_stroke();
            self.last_pos = None;
        }
        if (resp.dragged_by(egui::PointerButton::Primary)
            || resp.drag_started_by(egui::PointerButton::Primary))
            && let Some(p) = resp.interact_pointer_pos()
        {
            let cur = to_image(p);
            let from = self.last_pos.unwrap_or(cur);
            ed.paint(from, cur);
            self.last_pos = Some(cur);
        }
        if resp.drag_stopped() {
            self.last_pos = None;
        }
    }
}

fn run_job(
    settings: &Settings,
    image: &RgbaImage,
    mask: &image::GrayImage,
    done: &AtomicUsize,
    total: &AtomicUsize,
    cancel: &CancelToken,
    ctx: &egui::Context,
) -> JobResult {
    let classical =
        |why: Option<String>| match inpaint::run_classical(image, mask, &settings.request) {
            Ok(out) => {
                let mut notes = out.notes;
                if let Some(w) = why {
                    notes.insert(0, format!("classical fill engine ({w})"));
                }
                JobResult::Done(out.image, notes)
            }
            Err(e) => JobResult::Failed(e.to_string()),
        };
    let model = settings.model_dir.trim();
    match settings.engine {
        EngineChoice::Classical => return classical(None),
        EngineChoice::Auto if model.is_empty() => {
            return classical(Some("no model folder set".into()));
        }
        _ => {}
    }
    if model.is_empty() {
        return JobResult::Failed("Set a model folder (a diffusers Stable Diffusion 1.x inpainting folder; see weights/README.md).".into());
    }
    let selected = match device::select(settings.device) {
        Ok(s) => s,
        Err(e) => return JobResult::Failed(e.to_string()),
    };
    let vae = settings.vae_dir.trim();
    let decoder = if vae.is_empty() {
        DecoderChoice::Standard
    } else {
        settings.request.decoder
    };
    // Known model names (`sd15-inpainting`) resolve to where they are on this machine.
    let weights = Path::new("weights");
    let model_path = crate::hub::resolve_model_arg(Path::new(model), weights);
    let vae_path =
        (!vae.is_empty()).then(|| crate::hub::resolve_model_arg(Path::new(vae), weights));
    let models = match InpaintModels::load(&model_path, vae_path.as_deref(), decoder, &selected) {
        Ok(m) => m,
        Err(e) => {
            let msg = if model_path.exists() {
                e.to_string()
            } else {
                format!(
                    "{model}: no such model folder or file; it needs a diffusers folder with {} \
                     or a single-file SD 1.x checkpoint (see weights/README.md)",
                    inpaint::REQUIRED
                )
            };
            return if settings.engine == EngineChoice::Auto {
                classical(Some(msg))
            } else {
                JobResult::Failed(msg)
            };
        }
    };
    let mut req = settings.request.clone();
    req.decoder = decoder;
    let progress = |stage: &str, d: usize, t: usize| {
        if stage == "denoise" {
            done.store(d, Ordering::SeqCst);
            total.store(t, Ordering::SeqCst);
            ctx.request_repaint();
        }
    };
    match inpaint::run(&models, image, mask, &req, &progress, cancel) {
        Ok(out) => JobResult::Done(out.image, out.notes),
        Err(inpaint::InpaintError::Cancelled) => JobResult::Cancelled,
        Err(e) => JobResult::Failed(e.to_string()),
    }
}
