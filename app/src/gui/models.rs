//! The settings panel's "Known models" section: what clearpaint knows (weights/manifest.toml),
//! where each model is on this machine, and Use / Fetch / Check buttons -- the GUI face of
//! `clearpaint weights list | fetch | check`.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{Receiver, channel};
use std::sync::{Arc, Mutex};

use clearpaint_core::models::check::{self, ModelKind};
use eframe::egui;

use crate::hub::{self, FetchObserver, FetchRequest, HubSettings, KnownModel, Manifest, Presence};

/// Download progress shared with the fetching thread.
#[derive(Default)]
struct FetchState {
    file: Mutex<String>,
    size: AtomicU64,
    done: AtomicU64,
}

impl FetchObserver for FetchState {
    fn file(&self, index: usize, count: usize, name: &str, size: u64, done: u64) {
        *self.file.lock().expect("fetch state") = format!("[{}/{count}] {name}", index + 1);
        self.size.store(size, Ordering::Relaxed);
        self.done.store(done, Ordering::Relaxed);
    }
    fn advance(&self, bytes: u64) {
        self.done.fetch_add(bytes, Ordering::Relaxed);
    }
}

struct Fetch {
    name: String,
    state: Arc<FetchState>,
    rx: Receiver<Result<PathBuf, String>>,
}

/// What the section shows and does.
pub struct ModelsPanel {
    pub manifest: Manifest,
    /// The weights folder searched besides the Hugging Face cache.
    pub weights_dir: PathBuf,
    rows: Option<Vec<Presence>>,
    fetch: Option<Fetch>,
    /// The last check or fetch outcome, in words.
    pub message: Option<String>,
}

impl Default for ModelsPanel {
    fn default() -> Self {
        ModelsPanel {
            manifest: Manifest::builtin(),
            weights_dir: PathBuf::from("weights"),
            rows: None,
            fetch: None,
            message: None,
        }
    }
}

/// Which settings field a model fills.
pub enum Use {
    Model(PathBuf),
    Vae(PathBuf),
}

impl ModelsPanel {
    pub fn is_fetching(&self) -> bool {
        self.fetch.is_some()
    }

    /// Re-reads where the models are (after a fetch, or on demand).
    pub fn refresh(&mut self) {
        let hub = HubSettings::from_env();
        self.rows = Some(
            self.manifest
                .model
                .iter()
                .map(|m| hub::locate(m, &self.weights_dir, &hub))
                .collect(),
        );
    }

    /// Starts downloading `model` on a worker thread.
    pub fn start_fetch(&mut self, model: &KnownModel, ctx: &egui::Context) {
        let req = match FetchRequest::for_model(model) {
            Ok(r) => r,
            Err(e) => {
                self.message = Some(format!("{e:#}"));
                return;
            }
        };
        let state = Arc::new(FetchState::default());
        let (tx, rx) = channel();
        let (observer, ctx) = (state.clone(), ctx.clone());
        std::thread::spawn(move || {
            let r =
                hub::fetch(&HubSettings::from_env(), &req, observer).map_err(|e| format!("{e:#}"));
            let _ = tx.send(r);
            ctx.request_repaint();
        });
        self.message = None;
        self.fetch = Some(Fetch {
            name: model.name.clone(),
            state,
            rx,
        });
    }

    /// Checks `path` (what `clearpaint weights check` prints, in short).
    pub fn check(&mut self, path: &Path) {
        let parts = check::check_path(path, None);
        let bad: Vec<String> = parts
            .iter()
            .filter(|p| !p.ok())
            .map(|p| {
                let first = p.problems.first().cloned().unwrap_or_default();
                let more = if p.problems.len() > 1 {
                    format!(" (+{} more)", p.problems.len() - 1)
                } else {
                    String::new()
                };
                format!("{}: {first}{more}", p.path.display())
            })
            .collect();
        self.message = Some(if bad.is_empty() {
            format!("{}: OK ({} part(s) checked)", path.display(), parts.len())
        } else {
            bad.join("\n")
        });
    }

    fn poll(&mut self) {
        let Some(f) = &self.fetch else { return };
        if let Ok(r) = f.rx.try_recv() {
            self.message = Some(match r {
                Ok(p) => format!("{}: downloaded to {}", f.name, p.display()),
                Err(e) => e,
            });
            self.fetch = None;
            self.refresh();
        }
    }

    /// Draws the section; returns a folder to put into the model or VAE field.
    pub fn show(&mut self, ui: &mut egui::Ui, model_field: &str) -> Option<Use> {
        self.poll();
        let mut chosen = None;
        egui::CollapsingHeader::new("Known models")
            .id_salt("known-models")
            .show(ui, |ui| {
                if self.rows.is_none() {
                    self.refresh();
                }
                let rows = self.rows.clone().unwrap_or_default();
                let models = self.manifest.model.clone();
                for (m, presence) in models.iter().zip(rows) {
                    ui.separator();
                    ui.label(egui::RichText::new(&m.name).strong())
                        .on_hover_text(format!("{}\n{} ({})", m.description, m.source, m.license));
                    match &presence {
                        Presence::Present(p) => {
                            ui.label(format!("present: {}", p.display()));
                        }
                        Presence::Partial { missing, .. } => {
                            ui.label(format!("incomplete: {} file(s) missing", missing.len()));
                        }
                        Presence::Absent => {
                            let size = m
                                .size_gb
                                .map(|g| format!(" (~{g:.1} GB)"))
                                .unwrap_or_default();
                            ui.label(format!("not on this machine{size}"));
                        }
                    }
                    ui.horizontal(|ui| {
                        if let Presence::Present(p) = &presence {
                            let kind = m.kind.parse::<ModelKind>().ok();
                            if ui.button(format!("Use {}", m.name)).clicked() {
                                chosen = Some(match kind {
                                    Some(ModelKind::AsymmetricVae) | Some(ModelKind::Vae) => {
                                        Use::Vae(p.clone())
                                    }
                                    _ => Use::Model(p.clone()),
                                });
                            }
                            if ui.button(format!("Check {}", m.name)).clicked() {
                                let p = p.clone();
                                self.check(&p);
                            }
                        } else if m.repo.is_some()
                            && ui
                                .add_enabled(
                                    self.fetch.is_none(),
                                    egui::Button::new(format!("Fetch {}", m.name)),
                                )
                                .clicked()
                        {
                            let ctx = ui.ctx().clone();
                            self.start_fetch(m, &ctx);
                        } else if m.repo.is_none() {
                            ui.label("see weights/README.md")
                                .on_hover_text(m.manual.clone().unwrap_or_default());
                        }
                    });
                }
                ui.separator();
                ui.horizontal(|ui| {
                    if ui.button("Refresh").clicked() {
                        self.refresh();
                    }
                    if ui
                        .add_enabled(
                            !model_field.trim().is_empty(),
                            egui::Button::new("Check model"),
                        )
                        .clicked()
                    {
                        self.check(Path::new(model_field.trim()));
                    }
                });
            });
        if let Some(f) = &self.fetch {
            let (done, size) = (
                f.state.done.load(Ordering::Relaxed),
                f.state.size.load(Ordering::Relaxed).max(1),
            );
            let file = f.state.file.lock().map(|s| s.clone()).unwrap_or_default();
            ui.add(
                egui::ProgressBar::new(done as f32 / size as f32).text(format!(
                    "{}: {file} {:.0}/{:.0} MB",
                    f.name,
                    done as f64 / 1e6,
                    size as f64 / 1e6
                )),
            );
            ui.ctx()
                .request_repaint_after(std::time::Duration::from_millis(200));
        }
        if let Some(m) = &self.message {
            ui.label(m);
        }
        chosen
    }
}
