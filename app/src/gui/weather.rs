//! The Weather tab: open night / rainy-night images (or a folder), translate them to day with
//! AU-GAN on a worker thread, look at the output, its uncertainty map or the overlay, and save
//! them all (never overwriting an existing file without being asked).

use std::path::{Path, PathBuf};
use std::sync::mpsc::{Receiver, channel};

use clearpaint_core::device::{self, DeviceChoice};
use clearpaint_core::imaging;
use clearpaint_core::models::augan::{AuganGenerator, Direction};
use clearpaint_core::pipelines::weather::{self, WeatherOutput, WeatherRequest};
use clearpaint_core::progress::CancelToken;
use eframe::egui;
use image::RgbaImage;

/// What the viewer shows of the selected image.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum View {
    Input,
    Output,
    Uncertainty,
    Overlay,
}

pub struct Item {
    pub path: PathBuf,
    pub input: RgbaImage,
    pub has_alpha: bool,
    pub output: Option<WeatherOutput>,
    pub error: Option<String>,
}

enum Msg {
    Done(usize, Result<WeatherOutput, String>),
    Failed(String),
    Finished,
}

pub struct WeatherTab {
    /// A converted AU-GAN `.safetensors` file (or the name `augan-bdd100k`).
    pub model_path: String,
    /// An image or a folder of images to add.
    pub input_path: String,
    pub out_dir: String,
    /// Night to day (with σ) or the file's day-to-night generator.
    pub direction: Direction,
    pub uncertainty: bool,
    pub overwrite: bool,
    pub items: Vec<Item>,
    pub selected: usize,
    pub view: View,
    pub status: String,
    pub error: Option<String>,
    rx: Option<Receiver<Msg>>,
    cancel: CancelToken,
    texture: Option<(usize, View, usize, egui::TextureHandle)>,
    /// Bumped when results arrive, so textures refresh.
    generation: usize,
    /// A file dialog the tab asks the window to open.
    pub wants_dialog: Option<super::dialogs::Purpose>,
}

impl Default for WeatherTab {
    fn default() -> Self {
        WeatherTab {
            model_path: String::new(),
            input_path: String::new(),
            out_dir: String::new(),
            direction: Direction::NightToDay,
            uncertainty: true,
            overwrite: false,
            items: Vec::new(),
            selected: 0,
            view: View::Output,
            status: "Add night images (a file or a folder), set the AU-GAN model, Run.".into(),
            error: None,
            rx: None,
            cancel: CancelToken::new(),
            texture: None,
            generation: 0,
            wants_dialog: None,
        }
    }
}

impl WeatherTab {
    pub fn is_running(&self) -> bool {
        self.rx.is_some()
    }

    /// Adds an image, or every image in a folder.
    pub fn add(&mut self, path: &Path) {
        let files = if path.is_dir() {
            match clearpaint_core::batch::list_images(path, false) {
                Ok(f) => f.into_iter().map(|rel| path.join(rel)).collect(),
                Err(e) => {
                    self.error = Some(e.to_string());
                    return;
                }
            }
        } else {
            vec![path.to_path_buf()]
        };
        let mut added = 0;
        for f in files {
            match imaging::load(&f) {
                Ok(l) => {
                    self.items.push(Item {
                        path: f,
                        input: l.rgba,
                        has_alpha: l.has_alpha,
                        output: None,
                        error: None,
                    });
                    added += 1;
                }
                Err(e) => {
                    self.error = Some(e.to_string());
                }
            }
        }
        if added > 0 {
            self.status = format!("{added} image(s) added, {} in all", self.items.len());
            self.generation += 1;
        }
    }

    /// Translates every image without a result, on a worker thread.
    pub fn start(
        &mut self,
        choice: DeviceChoice,
        shared: Option<device::Selected>,
        ctx: &egui::Context,
    ) {
        if self.items.is_empty() {
            self.error = Some("no images: add a file or a folder first".into());
            return;
        }
        let model =
            crate::hub::resolve_model_arg(Path::new(self.model_path.trim()), Path::new("weights"));
        if !model.is_file() {
            self.error = Some(format!(
                "{}: no AU-GAN model file; convert the released checkpoint with \
                 weights/convert_augan_tf.py (see weights/README.md)",
                if self.model_path.trim().is_empty() {
                    "(empty)"
                } else {
                    self.model_path.trim()
                }
            ));
            return;
        }
        let todo: Vec<(usize, RgbaImage)> = self
            .items
            .iter()
            .enumerate()
            .filter(|(_, it)| it.output.is_none())
            .map(|(i, it)| (i, it.input.clone()))
            .collect();
        let (tx, rx) = channel();
        self.cancel = CancelToken::new();
        let cancel = self.cancel.clone();
        let uncertainty = self.uncertainty && self.direction == Direction::NightToDay;
        let direction = self.direction;
        let ctx = ctx.clone();
        std::thread::spawn(move || {
            let send = |m: Msg| {
                let _ = tx.send(m);
                ctx.request_repaint();
            };
            let selected = match shared {
                Some(s) if choice != DeviceChoice::Cpu => s,
                _ => match crate::placement::select(choice) {
                    Ok(s) => s,
                    Err(e) => return send(Msg::Failed(format!("{e:#}"))),
                },
            };
            let (model, _) =
                match AuganGenerator::load_direction(&model, direction, &selected.device) {
                    Ok(m) => m,
                    Err(e) => return send(Msg::Failed(e.to_string())),
                };
            let request = WeatherRequest {
                uncertainty: uncertainty && model.has_uncertainty(),
                ..Default::default()
            };
            for (i, img) in todo {
                if cancel.is_cancelled() {
                    break;
                }
                let r = weather::run(&model, &selected.device, &img, &request)
                    .map_err(|e| e.to_string());
                send(Msg::Done(i, r));
            }
            send(Msg::Finished);
        });
        self.error = None;
        self.status = "translating...".into();
        self.rx = Some(rx);
    }

    pub fn cancel(&mut self) {
        self.cancel.cancel();
    }

    /// Takes what the worker sent.
    pub fn poll(&mut self) {
        let Some(rx) = &self.rx else { return };
        let mut finished = false;
        while let Ok(m) = rx.try_recv() {
            match m {
                Msg::Done(i, r) => {
                    if let Some(it) = self.items.get_mut(i) {
                        match r {
                            Ok(o) => it.output = Some(o),
                            Err(e) => it.error = Some(e),
                        }
                    }
                    self.generation += 1;
                }
                Msg::Failed(e) => {
                    self.error = Some(e);
                    finished = true;
                }
                Msg::Finished => finished = true,
            }
        }
        if finished {
            self.rx = None;
            let done = self.items.iter().filter(|i| i.output.is_some()).count();
            self.status = format!("{done} of {} translated", self.items.len());
        }
    }

    /// Blocks until the worker is done (tests).
    pub fn wait(&mut self) {
        while self.rx.is_some() {
            self.poll();
            std::thread::sleep(std::time::Duration::from_millis(10));
        }
    }

    /// Writes every result to `out_dir`: `<stem>.png`, `<stem>_uncertainty.png`,
    /// `<stem>_overlay.png`. Nothing is overwritten unless `overwrite`; files are written
    /// whole or not at all.
    pub fn save_all(&mut self) {
        let dir = PathBuf::from(self.out_dir.trim());
        if self.out_dir.trim().is_empty() {
            self.error = Some("set an output folder first".into());
            return;
        }
        if let Err(e) = std::fs::create_dir_all(&dir) {
            self.error = Some(format!("{}: {e}", dir.display()));
            return;
        }
        let mut written = 0;
        for it in &self.items {
            let Some(o) = &it.output else { continue };
            let stem = it
                .path
                .file_stem()
                .map(|s| s.to_string_lossy().to_string())
                .unwrap_or_else(|| "image".into());
            let text = |what: &str| {
                vec![(
                    "parameters",
                    format!("AU-GAN night to day ({what}) of {}", it.path.display()),
                )]
            };
            let mut files = vec![(
                dir.join(format!("{stem}.png")),
                o.image.clone(),
                it.has_alpha,
                "image",
            )];
            if let Some(s) = o.sigma_image() {
                files.push((
                    dir.join(format!("{stem}_uncertainty.png")),
                    s,
                    false,
                    "uncertainty",
                ));
            }
            if let Some(s) = o.overlay() {
                files.push((
                    dir.join(format!("{stem}_overlay.png")),
                    s,
                    it.has_alpha,
                    "overlay",
                ));
            }
            for (path, img, alpha, what) in files {
                if path.exists() && !self.overwrite {
                    self.error = Some(format!(
                        "{}: already exists; tick Overwrite to replace it",
                        path.display()
                    ));
                    return;
                }
                if let Err(e) = imaging::save_png(&path, &img, alpha, &text(what)) {
                    self.error = Some(e.to_string());
                    return;
                }
                written += 1;
            }
        }
        self.error = None;
        self.status = format!("{written} file(s) written to {}", dir.display());
    }

    fn shown(&self) -> Option<RgbaImage> {
        let it = self.items.get(self.selected)?;
        Some(match (self.view, &it.output) {
            (View::Input, _) | (_, None) => it.input.clone(),
            (View::Output, Some(o)) => o.image.clone(),
            (View::Uncertainty, Some(o)) => o.sigma_image().unwrap_or_else(|| o.image.clone()),
            (View::Overlay, Some(o)) => o.overlay().unwrap_or_else(|| o.image.clone()),
        })
    }

    pub fn show(
        &mut self,
        ui: &mut egui::Ui,
        choice: DeviceChoice,
        shared: Option<device::Selected>,
    ) {
        self.poll();
        if self.is_running() {
            ui.ctx()
                .request_repaint_after(std::time::Duration::from_millis(100));
        }
        egui::Panel::right("weather-settings").show(ui, |ui| {
            self.controls(ui, choice, &shared);
            self.view_and_save(ui);
            self.item_list(ui);
        });
        egui::Panel::bottom("weather-status").show(ui, |ui| self.status_bar(ui));
        egui::CentralPanel::default().show(ui, |ui| self.viewer(ui));
    }

    /// The model and the images to add, Uncertainty map, Translate / Stop and the progress.
    fn controls(
        &mut self,
        ui: &mut egui::Ui,
        choice: DeviceChoice,
        shared: &Option<device::Selected>,
    ) {
        ui.heading("Weather: night to day");
        let l_model = ui.label("AU-GAN model");
        ui.add(
            egui::TextEdit::singleline(&mut self.model_path)
                .hint_text("augan_bdd100k_256.safetensors"),
        )
        .labelled_by(l_model.id);
        let l_in = ui.label("Images");
        ui.horizontal(|ui| {
            ui.add(
                egui::TextEdit::singleline(&mut self.input_path)
                    .hint_text("image or folder")
                    .desired_width(180.0),
            )
            .labelled_by(l_in.id);
            if ui.button("Add").clicked() {
                let p = PathBuf::from(self.input_path.trim());
                self.add(&p);
            }
        });
        ui.horizontal(|ui| {
            if ui.button("Images…").clicked() {
                self.wants_dialog = Some(super::dialogs::Purpose::AddWeatherImages);
            }
            if ui.button("Folder…").clicked() {
                self.wants_dialog = Some(super::dialogs::Purpose::AddWeatherFolder);
            }
        });
        egui::ComboBox::from_label("Direction")
            .selected_text(self.direction.name())
            .show_ui(ui, |ui| {
                for d in [Direction::NightToDay, Direction::DayToNight] {
                    ui.selectable_value(&mut self.direction, d, d.name());
                }
            });
        let night_to_day = self.direction == Direction::NightToDay;
        ui.add_enabled(
            night_to_day,
            egui::Checkbox::new(&mut self.uncertainty, "Uncertainty map"),
        )
        .on_disabled_hover_text("only the night-to-day generator has an uncertainty head");
        ui.horizontal(|ui| {
            let running = self.is_running();
            if ui
                .add_enabled(!running, egui::Button::new("Translate"))
                .clicked()
            {
                let ctx = ui.ctx().clone();
                self.start(choice, shared.clone(), &ctx);
            }
            if ui.add_enabled(running, egui::Button::new("Stop")).clicked() {
                self.cancel();
            }
        });
        if self.is_running() {
            let done = self.items.iter().filter(|i| i.output.is_some()).count();
            ui.add(
                egui::ProgressBar::new(done as f32 / self.items.len().max(1) as f32)
                    .text(format!("{done}/{}", self.items.len())),
            );
        }
    }

    /// What the viewer shows, the output folder and Save all.
    fn view_and_save(&mut self, ui: &mut egui::Ui) {
        ui.separator();
        ui.horizontal(|ui| {
            for (v, name) in [
                (View::Input, "Input"),
                (View::Output, "Day"),
                (View::Uncertainty, "Uncertainty"),
                (View::Overlay, "Overlay"),
            ] {
                ui.selectable_value(&mut self.view, v, name);
            }
        });
        ui.separator();
        let l_out = ui.label("Output folder");
        ui.add(egui::TextEdit::singleline(&mut self.out_dir).hint_text("folder"))
            .labelled_by(l_out.id);
        ui.checkbox(&mut self.overwrite, "Overwrite");
        if ui
            .add_enabled(
                self.items.iter().any(|i| i.output.is_some()),
                egui::Button::new("Save all"),
            )
            .clicked()
        {
            self.save_all();
        }
    }

    /// The images, with their state; click one to view it.
    fn item_list(&mut self, ui: &mut egui::Ui) {
        ui.separator();
        egui::ScrollArea::vertical().show(ui, |ui| {
            for i in 0..self.items.len() {
                let it = &self.items[i];
                let name = it
                    .path
                    .file_name()
                    .map(|s| s.to_string_lossy().to_string())
                    .unwrap_or_default();
                let state = match (&it.output, &it.error) {
                    (Some(_), _) => "done",
                    (None, Some(_)) => "failed",
                    _ => "",
                };
                if ui
                    .selectable_label(self.selected == i, format!("{name} {state}"))
                    .clicked()
                {
                    self.selected = i;
                }
            }
        });
    }

    /// The error (the tab's, else the selected image's) or the status.
    fn status_bar(&mut self, ui: &mut egui::Ui) {
        if let Some(e) = &self.error {
            ui.colored_label(egui::Color32::from_rgb(220, 60, 60), format!("Error: {e}"));
        } else if let Some(e) = self.items.get(self.selected).and_then(|i| i.error.as_ref()) {
            ui.colored_label(egui::Color32::from_rgb(220, 60, 60), format!("Error: {e}"));
        } else {
            ui.label(&self.status);
        }
    }

    /// The selected image as the view picks (input, output, uncertainty or overlay), fitted
    /// to the space; its texture is remade when the selection, view or results change.
    fn viewer(&mut self, ui: &mut egui::Ui) {
        let key = (self.selected, self.view, self.generation);
        let stale = !matches!(&self.texture, Some((s, v, g, _)) if (*s, *v, *g) == key);
        if stale {
            self.texture = self.shown().map(|img| {
                let max = ui.ctx().input(|i| i.max_texture_side).max(1) as u32;
                let f = img.width().max(img.height()).div_ceil(max).max(1);
                let img = if f > 1 {
                    imaging::resize(&img, img.width() / f, img.height() / f)
                } else {
                    img
                };
                let c = egui::ColorImage::from_rgba_unmultiplied(
                    [img.width() as usize, img.height() as usize],
                    img.as_raw(),
                );
                let t = ui
                    .ctx()
                    .load_texture("weather", c, egui::TextureOptions::LINEAR);
                (key.0, key.1, key.2, t)
            });
        }
        match &self.texture {
            Some((_, _, _, t)) => {
                let size = t.size_vec2();
                let avail = ui.available_size();
                let s = (avail.x / size.x).min(avail.y / size.y).min(1.0);
                ui.centered_and_justified(|ui| {
                    ui.add(egui::Image::new((t.id(), size * s)));
                });
            }
            None => {
                ui.centered_and_justified(|ui| ui.label("No images"));
            }
        }
    }
}
