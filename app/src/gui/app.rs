//! The desktop window: a canvas to paint masks on, an inpainting panel, runs on a worker
//! thread with progress and cancel, before/after compare, undo/redo, save.
//!
//! This file holds the window's state and its frame loop (`show`, shortcuts, open / save);
//! the panels are `impl ClearpaintApp` blocks beside it: `toolbar.rs`, `settings.rs`,
//! `results.rs` (result history, compare, clipboard), `canvas.rs` and `jobs.rs` (runs on a
//! worker thread).

use std::path::{Path, PathBuf};

use clearpaint_core::device::{self, DeviceChoice};
use clearpaint_core::imaging;
use clearpaint_core::pipelines::inpaint::InpaintRequest;
use clearpaint_core::pipelines::outpaint::Prefill;
use clearpaint_core::precision::Precision;
use eframe::egui;
use image::RgbaImage;

use super::canvas::Textures;
use super::editor::Editor;
use super::jobs::Job;

/// Which engine the panel runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EngineChoice {
    /// Diffusion when a model is set; the classical fill when none is set or the path does
    /// not exist. A model that is there but does not load is an error.
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

/// What the Inpaint tab's Run does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Repaint the mask after the prompt.
    Inpaint,
    /// A new image from the prompt (text-to-image).
    Generate,
    /// The image reworked after the prompt by the strength (image-to-image): all of it, or
    /// only the painted part when a mask is painted.
    Edit,
    /// Repaint the mask after an exemplar image (Paint-by-Example).
    Example,
}

impl Mode {
    pub const ALL: [Mode; 4] = [Mode::Inpaint, Mode::Generate, Mode::Edit, Mode::Example];

    pub fn label(self) -> &'static str {
        match self {
            Mode::Inpaint => "Inpaint",
            Mode::Generate => "Generate",
            Mode::Edit => "Edit",
            Mode::Example => "By example",
        }
    }

    /// Whether a run repaints a painted mask.
    pub fn needs_mask(self) -> bool {
        matches!(self, Mode::Inpaint | Mode::Example)
    }
}

/// The inpainting panel's settings.
#[derive(Debug, Clone)]
pub struct Settings {
    pub mode: Mode,
    /// Generate's output size (multiples of 8).
    pub width: u32,
    pub height: u32,
    /// By example's exemplar image.
    pub example_path: String,
    pub model_dir: String,
    pub vae_dir: String,
    pub engine: EngineChoice,
    pub request: InpaintRequest,
    pub device: DeviceChoice,
    /// Float precision of the models (`--precision` at start-up; changeable per run).
    pub precision: Precision,
    /// The mask overlay's colour (alpha = its opacity).
    pub mask_colour: egui::Color32,
    /// Outpaint: pixels a side grows by, and what the new border starts as.
    pub extend_px: u32,
    pub extend_fill: Prefill,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            mode: Mode::Inpaint,
            width: 512,
            height: 512,
            example_path: String::new(),
            model_dir: String::new(),
            vae_dir: String::new(),
            engine: EngineChoice::Auto,
            request: InpaintRequest {
                mask_blur: 4,
                ..Default::default()
            },
            device: DeviceChoice::Auto,
            precision: Precision::Auto,
            mask_colour: egui::Color32::from_rgba_unmultiplied(255, 40, 60, 110),
            extend_px: 128,
            extend_fill: Prefill::Edge,
        }
    }
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
    /// LoRAs (folder listing, on / off, weight) and the embeddings folder.
    pub loras: super::loras::LoraPanel,
    pub tab: Tab,
    pub weather: super::weather::WeatherTab,
    /// The GPU shared with the window's renderer, when models run on a GPU.
    pub shared_device: Option<device::Selected>,
    /// A file dialog open on its helper thread.
    pub(super) dialog: Option<super::dialogs::Dialog>,
    pub(super) job: Option<Job>,
    pub(super) texture: Option<Textures>,
    pub(super) before_tex: Option<(u64, egui::TextureHandle)>,
    /// Where the before/after divider is (0 = all after, 1 = all before).
    pub compare_split: f32,
    /// Whether the mask overlay is drawn: hidden after a run so the result shows (the mask is
    /// kept for a re-run), back with `M` or when painting.
    pub show_mask: bool,
    pub(super) zoom: f32,
    pub(super) pan: egui::Vec2,
    pub(super) last_pos: Option<(f32, f32)>,
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
            loras: super::loras::LoraPanel::default(),
            tab: Tab::Inpaint,
            weather: super::weather::WeatherTab::default(),
            shared_device: None,
            dialog: None,
            job: None,
            texture: None,
            before_tex: None,
            compare_split: 0.0,
            show_mask: true,
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

    /// An editor whose mask operations run on the shared GPU when there is one.
    pub(super) fn new_editor(&self, img: RgbaImage, has_alpha: bool) -> Editor {
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
            Purpose::PickExemplar => self.settings.example_path = first.display().to_string(),
            Purpose::AddWeatherImages | Purpose::AddWeatherFolder => {
                for p in &paths {
                    self.weather.add(p);
                }
            }
        }
    }

    /// The whole window; eframe's `App::ui` and the tests call this.
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
                    ("M", "show / hide the mask overlay (hidden after a run)"),
                    ("H / F1", "this help"),
                ] {
                    ui.label(format!("{k:24} {what}"));
                }
            });
        }
    }

    fn shortcuts(&mut self, ctx: &egui::Context) {
        let toggle_mask = ctx.input(|i| !i.modifiers.command && i.key_pressed(egui::Key::M));
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
        if toggle_mask {
            self.show_mask = !self.show_mask;
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
}
