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

/// The window's tabs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Tab {
    Inpaint,
    Weather,
}

/// The inpainting panel's settings.
#[derive(Debug, Clone)]
pub struct Settings {
    pub model_dir: String,
    pub vae_dir: String,
    pub engine: EngineChoice,
    pub request: InpaintRequest,
    pub device: DeviceChoice,
    /// The mask overlay's colour (alpha = its opacity).
    pub mask_colour: egui::Color32,
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
            mask_colour: egui::Color32::from_rgba_unmultiplied(255, 40, 60, 110),
        }
    }
}

struct Textures {
    revision: u64,
    colour: egui::Color32,
    image: egui::TextureHandle,
    mask: egui::TextureHandle,
}

/// The mask overlay of rectangle `r` (x0, y0, x1, y1): `colour` with its alpha scaled by the
/// mask value (so feathered edges show as a gradient).
fn overlay(
    mask: &image::GrayImage,
    r: (u32, u32, u32, u32),
    colour: egui::Color32,
) -> egui::ColorImage {
    let (w, h) = ((r.2 - r.0) as usize, (r.3 - r.1) as usize);
    let [cr, cg, cb, ca] = colour.to_srgba_unmultiplied();
    let mut px = Vec::with_capacity(w * h * 4);
    for y in r.1..r.3 {
        let row = &mask.as_raw()[(y * mask.width()) as usize..][..mask.width() as usize];
        for &v in &row[r.0 as usize..r.2 as usize] {
            let a = (ca as u32 * v as u32 + 127) / 255;
            px.extend_from_slice(&[cr, cg, cb, a as u8]);
        }
    }
    egui::ColorImage::from_rgba_unmultiplied([w, h], &px)
}

enum JobResult {
    /// The image, notes, and the A1111-style parameters text.
    Done(RgbaImage, Vec<String>, String),
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
    pub tab: Tab,
    pub weather: super::weather::WeatherTab,
    /// The GPU shared with the window's renderer, when models run on a GPU.
    pub shared_device: Option<device::Selected>,
    /// A file dialog open on its helper thread.
    dialog: Option<super::dialogs::Dialog>,
    job: Option<Job>,
    texture: Option<Textures>,
    before_tex: Option<(u64, egui::TextureHandle)>,
    /// Where the before/after divider is (0 = all after, 1 = all before).
    pub compare_split: f32,
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
            tab: Tab::Inpaint,
            weather: super::weather::WeatherTab::default(),
            shared_device: None,
            dialog: None,
            job: None,
            texture: None,
            before_tex: None,
            compare_split: 0.0,
            zoom: 1.0,
            pan: egui::Vec2::ZERO,
            last_pos: None,
        }
    }

    /// Opens an image file; errors are shown in the window.
    pub fn open_path(&mut self, path: &Path) {
        match imaging::load(path) {
            Ok(l) => {
                self.editor = Some(self.new_editor(l.rgba, l.has_alpha));
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
        let mut text = vec![(
            "Software",
            format!("clearpaint {}", env!("CARGO_PKG_VERSION")),
        )];
        if let Some(p) = &ed.params {
            text.push(("parameters", p.clone()));
        }
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
        let shared = self.shared_device.clone();
        let (d, t, c, ctx2) = (done.clone(), total.clone(), cancel.clone(), ctx.clone());
        std::thread::spawn(move || {
            let result = run_job(&settings, shared, &image, &mask, &d, &t, &c, &ctx2);
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
            JobResult::Done(img, notes, params) => {
                if let Some(ed) = &mut self.editor {
                    ed.apply_result(img, params);
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

    /// The image and mask-overlay textures, uploaded when they changed: the whole image after
    /// a run, undo or mask operation; only the touched rectangle of the overlay while painting.
    fn textures(
        &mut self,
        ctx: &egui::Context,
    ) -> Option<(egui::TextureId, egui::TextureId, egui::Vec2)> {
        let colour = self.settings.mask_colour;
        let max_side = ctx.input(|i| i.max_texture_side).max(1) as u32;
        let ed = self.editor.as_mut()?;
        let (w, h) = ed.image.dimensions();
        // Images larger than the GPU's largest texture are shown at 1/f resolution (editing
        // and results stay at full resolution).
        let f = w.max(h).div_ceil(max_side).max(1);
        let fresh =
            !matches!(&self.texture, Some(t) if t.revision == ed.revision && t.colour == colour);
        if fresh || f > 1 {
            let dirty = ed.take_dirty();
            if fresh || dirty.is_some() {
                let (img, mask) = if f > 1 {
                    let (sw, sh) = (w.div_ceil(f), h.div_ceil(f));
                    (
                        image::RgbaImage::from_fn(sw, sh, |x, y| *ed.image.get_pixel(x * f, y * f)),
                        image::GrayImage::from_fn(sw, sh, |x, y| *ed.mask.get_pixel(x * f, y * f)),
                    )
                } else {
                    (ed.image.clone(), ed.mask.clone())
                };
                let size = [img.width() as usize, img.height() as usize];
                let ov = overlay(&mask, (0, 0, img.width(), img.height()), colour);
                let img = egui::ColorImage::from_rgba_unmultiplied(size, img.as_raw());
                match (&mut self.texture, fresh) {
                    (Some(t), false) => t.mask.set(ov, egui::TextureOptions::NEAREST),
                    _ => {
                        self.texture = Some(Textures {
                            revision: ed.revision,
                            colour,
                            image: ctx.load_texture("image", img, egui::TextureOptions::NEAREST),
                            mask: ctx.load_texture("mask", ov, egui::TextureOptions::NEAREST),
                        })
                    }
                }
            }
        } else if let Some(r) = ed.take_dirty()
            && let Some(t) = &mut self.texture
        {
            let ov = overlay(&ed.mask, r, colour);
            t.mask.set_partial(
                [r.0 as usize, r.1 as usize],
                ov,
                egui::TextureOptions::NEAREST,
            );
        }
        let image_size = egui::vec2(w as f32, h as f32);
        let t = self.texture.as_ref()?;
        Some((t.image.id(), t.mask.id(), image_size))
    }

    /// The "before" image of the last run, as a texture (cached per revision).
    fn before_texture(&mut self, ctx: &egui::Context) -> Option<egui::TextureId> {
        let ed = self.editor.as_ref()?;
        let before = ed.before.as_ref()?;
        if !matches!(&self.before_tex, Some((rev, _)) if *rev == ed.revision) {
            let (w, h) = (before.width() as usize, before.height() as usize);
            let t = ctx.load_texture(
                "before",
                egui::ColorImage::from_rgba_unmultiplied([w, h], before.as_raw()),
                egui::TextureOptions::NEAREST,
            );
            self.before_tex = Some((ed.revision, t));
        }
        self.before_tex.as_ref().map(|(_, t)| t.id())
    }

    /// Times one brush stroke on a `size` x `size` image: per frame, the mask update plus the
    /// overlay texture update (what the canvas does while painting). Returns the milliseconds
    /// of each frame.
    pub fn stroke_benchmark(size: u32, frames: usize) -> Vec<f64> {
        let ctx = egui::Context::default();
        // A desktop GPU's texture limit (egui's default without a renderer is 2048).
        let mut out = ctx.run_ui(
            egui::RawInput {
                max_texture_side: Some(16384),
                ..Default::default()
            },
            |_| {},
        );
        out.textures_delta.clear();
        // What a renderer does each frame: take the queued texture updates.
        let hand_off = |ctx: &egui::Context| ctx.tex_manager().write().take_delta().clear();
        let mut app = ClearpaintApp::new();
        app.editor = Some(Editor::new(RgbaImage::new(size, size), false));
        app.textures(&ctx);
        hand_off(&ctx);
        let ed = app.editor.as_mut().expect("editor");
        ed.brush = 64.0;
        ed.begin_stroke();
        let mut times = Vec::with_capacity(frames);
        let mut last = (size as f32 * 0.1, size as f32 * 0.5);
        for i in 1..=frames {
            // A mouse moves a few dozen image pixels between frames at 100% zoom.
            let t = i as f32 / frames as f32;
            let cur = (
                size as f32 * (0.1 + 0.8 * t),
                size as f32 * (0.5 + 0.2 * (t * 6.0).sin()),
            );
            let start = std::time::Instant::now();
            app.editor.as_mut().expect("editor").paint(last, cur);
            app.textures(&ctx);
            hand_off(&ctx);
            times.push(start.elapsed().as_secs_f64() * 1000.0);
            last = cur;
        }
        times
    }

    /// The whole window; eframe's `App::ui` and the tests call this.
    /// An editor whose mask operations run on the shared GPU when there is one.
    fn new_editor(&self, img: RgbaImage, has_alpha: bool) -> Editor {
        let mut ed = Editor::new(img, has_alpha);
        if let Some(s) = &self.shared_device {
            ed.device = s.device.clone();
        }
        ed
    }

    /// Opens a file dialog (one at a time); the window keeps drawing meanwhile.
    pub fn open_dialog(&mut self, purpose: super::dialogs::Purpose, ctx: &egui::Context) {
        if self.dialog.is_none() {
            self.dialog = Some(super::dialogs::Dialog::open(purpose, ctx));
        }
    }

    /// Acts on the paths a closed dialog returned.
    pub fn dialog_done(&mut self, purpose: super::dialogs::Purpose, paths: Vec<PathBuf>) {
        use super::dialogs::Purpose;
        let Some(first) = paths.first().cloned() else {
            self.status = "no file chosen (if no dialog appeared, type the path instead)".into();
            return;
        };
        match purpose {
            Purpose::OpenImage => {
                self.path_input = first.display().to_string();
                self.open_path(&first);
            }
            Purpose::SaveImage => {
                self.path_input = first.display().to_string();
                self.save_path(&first);
            }
            Purpose::LoadMask => {
                self.mask_path_input = first.display().to_string();
                self.load_mask(&first);
            }
            Purpose::SaveMask => {
                self.mask_path_input = first.display().to_string();
                self.save_mask(&first);
            }
            Purpose::AddWeatherImages | Purpose::AddWeatherFolder => {
                for p in &paths {
                    self.weather.add(p);
                }
            }
        }
    }

    pub fn show(&mut self, ui: &mut egui::Ui) {
        let ctx = ui.ctx().clone();
        if let Some(d) = &self.dialog
            && let Some(paths) = d.poll()
        {
            let purpose = d.purpose;
            self.dialog = None;
            self.dialog_done(purpose, paths);
        }
        egui::Panel::top("tabs").show(ui, |ui| {
            ui.horizontal(|ui| {
                ui.selectable_value(&mut self.tab, Tab::Inpaint, "Inpaint");
                ui.selectable_value(&mut self.tab, Tab::Weather, "Weather");
            });
        });
        if self.tab == Tab::Weather {
            for f in ctx.input(|i| i.raw.dropped_files.clone()) {
                if !f.path().as_os_str().is_empty() {
                    self.weather.add(f.path());
                }
            }
            let device = self.settings.device;
            let shared = self.shared_device.clone();
            self.weather.show(ui, device, shared);
            if let Some(p) = self.weather.wants_dialog.take() {
                self.open_dialog(p, &ctx);
            }
            return;
        }
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
                    (
                        "Ctrl+V",
                        "paste an image from the clipboard (Copy puts the image there)",
                    ),
                    ("H / F1", "this help"),
                ] {
                    ui.label(format!("{k:24} {what}"));
                }
            });
        }
    }

    fn shortcuts(&mut self, ctx: &egui::Context) {
        let (undo, redo, smaller, larger, eraser, help, run, esc, paste) = ctx.input(|i| {
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
                (cmd && i.key_pressed(egui::Key::V))
                    || i.events.iter().any(|e| matches!(e, egui::Event::Paste(_))),
            )
        });
        if ctx.egui_wants_keyboard_input() {
            return;
        }
        if paste {
            self.paste_from_clipboard();
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
                .add_enabled(self.dialog.is_none(), egui::Button::new("Browse…"))
                .on_hover_text("choose an image in a file dialog")
                .clicked()
            {
                let ctx = ui.ctx().clone();
                self.open_dialog(super::dialogs::Purpose::OpenImage, &ctx);
            }
            if ui
                .add_enabled(self.editor.is_some(), egui::Button::new("Save"))
                .clicked()
            {
                let p = PathBuf::from(self.path_input.trim());
                self.save_path(&p);
            }
            if ui
                .add_enabled(
                    self.editor.is_some() && self.dialog.is_none(),
                    egui::Button::new("Save as…"),
                )
                .clicked()
            {
                let ctx = ui.ctx().clone();
                self.open_dialog(super::dialogs::Purpose::SaveImage, &ctx);
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
                if self.mask_path_input.trim().is_empty() {
                    let ctx = ui.ctx().clone();
                    self.open_dialog(super::dialogs::Purpose::LoadMask, &ctx);
                } else {
                    let p = PathBuf::from(self.mask_path_input.trim());
                    self.load_mask(&p);
                }
            }
            if ui
                .add_enabled(self.editor.is_some(), egui::Button::new("Save mask"))
                .clicked()
            {
                if self.mask_path_input.trim().is_empty() {
                    let ctx = ui.ctx().clone();
                    self.open_dialog(super::dialogs::Purpose::SaveMask, &ctx);
                } else {
                    let p = PathBuf::from(self.mask_path_input.trim());
                    self.save_mask(&p);
                }
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
            if ui
                .button("Paste")
                .on_hover_text("open the image on the clipboard (Ctrl+V)")
                .clicked()
            {
                self.paste_from_clipboard();
                return;
            }
            if ui
                .add_enabled(self.editor.is_some(), egui::Button::new("Copy"))
                .on_hover_text("copy the image to the clipboard")
                .clicked()
            {
                self.copy_to_clipboard();
                return;
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
            if ui.button("Feather").clicked() {
                ed.feather_mask(4.0);
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
        let mut restore = None;
        if let Some(ed) = &self.editor
            && !ed.history.is_empty()
        {
            ui.separator();
            ui.label(format!(
                "{} result(s); hold C or drag the slider to compare with the input",
                ed.history.len()
            ));
            let l_cmp = ui.label("Compare (before | after)");
            ui.add(egui::Slider::new(&mut self.compare_split, 0.0..=1.0))
                .labelled_by(l_cmp.id);
            ui.horizontal_wrapped(|ui| {
                for i in 0..ed.history.len() {
                    if ui.button(format!("Result {}", i + 1)).clicked() {
                        restore = Some(i);
                    }
                }
            });
        }
        if let (Some(i), Some(ed)) = (restore, &mut self.editor) {
            ed.restore_history(i);
            self.status = format!(
                "result {} is the current image again (Ctrl+Z goes back)",
                i + 1
            );
        }
        ui.separator();
        ui.horizontal(|ui| {
            let l_colour = ui.label("Mask colour");
            ui.color_edit_button_srgba(&mut self.settings.mask_colour)
                .labelled_by(l_colour.id);
        });
    }

    /// Copies the current image to the system clipboard.
    pub fn copy_to_clipboard(&mut self) {
        let Some(ed) = &self.editor else { return };
        let data = arboard::ImageData {
            width: ed.image.width() as usize,
            height: ed.image.height() as usize,
            bytes: std::borrow::Cow::Borrowed(ed.image.as_raw()),
        };
        match arboard::Clipboard::new().and_then(|mut c| c.set_image(data)) {
            Ok(()) => self.status = "image copied to the clipboard".into(),
            Err(e) => self.error = Some(format!("cannot copy to the clipboard: {e}")),
        }
    }

    /// Opens the image on the system clipboard (Ctrl+V).
    pub fn paste_from_clipboard(&mut self) {
        let img = arboard::Clipboard::new().and_then(|mut c| c.get_image());
        match img {
            Ok(d) => {
                match RgbaImage::from_raw(d.width as u32, d.height as u32, d.bytes.into_owned()) {
                    Some(img) => {
                        self.editor = Some(self.new_editor(img, true));
                        self.texture = None;
                        self.error = None;
                        self.status = format!("pasted a {}x{} image", d.width, d.height);
                    }
                    None => self.error = Some("the clipboard image has an unexpected size".into()),
                }
            }
            Err(e) => self.error = Some(format!("no image to paste: {e}")),
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
        let split = if compare { 1.0 } else { self.compare_split };
        let before = if split > 0.0 {
            self.before_texture(&ctx)
        } else {
            None
        };
        painter.image(img_tex, rect, uv, egui::Color32::WHITE);
        match before {
            Some(b) => {
                // Before on the left of the divider, after (with the mask) on the right.
                let x = rect.min.x + rect.width() * split;
                let left = egui::Rect::from_min_max(rect.min, egui::pos2(x, rect.max.y));
                let left_uv =
                    egui::Rect::from_min_max(egui::pos2(0.0, 0.0), egui::pos2(split, 1.0));
                painter.image(b, left, left_uv, egui::Color32::WHITE);
                if split < 1.0 {
                    painter.vline(
                        x,
                        rect.y_range(),
                        egui::Stroke::new(2.0, egui::Color32::WHITE),
                    );
                }
            }
            None => {
                painter.image(mask_tex, rect, uv, egui::Color32::WHITE);
            }
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

#[allow(clippy::too_many_arguments)]
fn run_job(
    settings: &Settings,
    shared: Option<device::Selected>,
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
                let params = inpaint::a1111_parameters_for(
                    &settings.request,
                    "classical",
                    image.width(),
                    image.height(),
                );
                JobResult::Done(out.image, notes, params)
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
    let selected = match shared {
        Some(s) if settings.device != DeviceChoice::Cpu => s,
        _ => match device::select(settings.device) {
            Ok(s) => s,
            Err(e) => return JobResult::Failed(e.to_string()),
        },
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
        Ok(out) => {
            let params = inpaint::a1111_parameters(&req, &models, image.width(), image.height());
            JobResult::Done(out.image, out.notes, params)
        }
        Err(inpaint::InpaintError::Cancelled) => JobResult::Cancelled,
        Err(e) => JobResult::Failed(e.to_string()),
    }
}
