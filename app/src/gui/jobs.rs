//! Runs on a worker thread: start, cancel, progress, and picking up the result.

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc::{Receiver, channel};

use clearpaint_core::device::{self, DeviceChoice};
use clearpaint_core::pipelines::inpaint::{self, DecoderChoice};
use clearpaint_core::progress::CancelToken;
use eframe::egui;
use image::RgbaImage;

use super::app::{ClearpaintApp, EngineChoice, Mode, Settings};

/// What a run sends back.
enum JobResult {
    /// The image, notes, and the A1111-style parameters text.
    Done(RgbaImage, Vec<String>, String),
    Failed(String),
    Cancelled,
}

/// A run on its worker thread: its result channel, its progress (denoising steps done / in
/// all), its cancel token and when it started.
pub(super) struct Job {
    rx: Receiver<JobResult>,
    pub(super) done: Arc<AtomicUsize>,
    pub(super) total: Arc<AtomicUsize>,
    cancel: CancelToken,
    pub(super) started: std::time::Instant,
    /// Generate's result opens as a new image.
    mode: Mode,
}

impl ClearpaintApp {
    pub fn is_running(&self) -> bool {
        self.job.is_some()
    }

    /// Starts a run on a worker thread.
    pub fn start_run(&mut self, ctx: &egui::Context) {
        let mode = self.settings.mode;
        let (image, mask) = match &self.editor {
            Some(ed) => (ed.image.clone(), ed.mask.clone()),
            None if mode == Mode::Generate => (RgbaImage::new(1, 1), image::GrayImage::new(1, 1)),
            None => return,
        };
        if mode.needs_mask() && !mask.pixels().any(|p| p[0] > 0) {
            self.error = Some("Paint the area to repaint first (the mask is empty).".into());
            return;
        }
        let (tx, rx) = channel();
        let done = Arc::new(AtomicUsize::new(0));
        let total = Arc::new(AtomicUsize::new(self.settings.request.steps));
        let cancel = CancelToken::new();
        let mut settings = self.settings.clone();
        settings.request.loras = self.loras.specs();
        settings.request.lora_dir = Some(self.loras.dir.clone().into());
        settings.request.embedding_dir = Some(self.loras.embedding_dir.clone().into());
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
            mode,
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
        let fresh = job.mode == Mode::Generate;
        self.job = None;
        match result {
            JobResult::Done(img, notes, params) => {
                if fresh || self.editor.is_none() {
                    self.editor = Some(self.new_editor(img.clone(), false));
                    self.texture = None;
                }
                if let Some(ed) = &mut self.editor {
                    ed.apply_result(img, params);
                }
                self.show_mask = false;
                self.status = format!(
                    "done in {secs:.1}s (M shows the mask){}",
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
    let inpainting = settings.mode == Mode::Inpaint;
    match settings.engine {
        EngineChoice::Classical if inpainting => return classical(None),
        EngineChoice::Auto if inpainting && model.is_empty() => {
            return classical(Some("no model folder set".into()));
        }
        EngineChoice::Classical => {
            return JobResult::Failed(format!(
                "{} needs the diffusion engine (the classical fill only inpaints).",
                settings.mode.label()
            ));
        }
        _ => {}
    }
    if model.is_empty() {
        return JobResult::Failed(format!(
            "Set a model folder ({}; see weights/README.md).",
            if settings.mode == Mode::Example {
                "a diffusers Paint-by-Example folder"
            } else {
                "a diffusers Stable Diffusion 1.x folder or checkpoint"
            }
        ));
    }
    let selected = match shared {
        Some(s) if settings.device != DeviceChoice::Cpu => Ok(s),
        _ => device::select(settings.device),
    };
    let selected = match selected.map(|s| s.with_precision(settings.precision)) {
        Ok(Ok(s)) => s,
        Ok(Err(e)) => return JobResult::Failed(e.to_string()),
        Err(e) => return JobResult::Failed(e.to_string()),
    };
    let vae = settings.vae_dir.trim();
    let mut req = settings.request.clone();
    if vae.is_empty() {
        req.decoder = DecoderChoice::Standard;
    }
    // Known model names (`sd15-inpainting`) resolve to where they are on this machine.
    let weights = Path::new("weights");
    let paths = ModelPaths {
        model: crate::hub::resolve_model_arg(Path::new(model), weights),
        vae: (!vae.is_empty()).then(|| crate::hub::resolve_model_arg(Path::new(vae), weights)),
        selected,
    };
    let progress = |stage: &str, d: usize, t: usize| {
        if stage == "denoise" {
            done.store(d, Ordering::SeqCst);
            total.store(t, Ordering::SeqCst);
            ctx.request_repaint();
        }
    };
    let input = Input { image, mask };
    match super::modes::run(settings, &req, &paths, &input, &progress, cancel) {
        Ok((img, notes, params)) => JobResult::Done(img, notes, params),
        Err(Failure::Cancelled) => JobResult::Cancelled,
        // Auto falls back only when there is no model; a broken one is an error.
        Err(Failure::NoModel(msg)) if inpainting && settings.engine == EngineChoice::Auto => {
            classical(Some(msg))
        }
        Err(Failure::NoModel(msg) | Failure::Error(msg)) => JobResult::Failed(msg),
    }
}

/// Where a run's models are and the device they load on.
pub(super) struct ModelPaths {
    pub model: std::path::PathBuf,
    pub vae: Option<std::path::PathBuf>,
    pub selected: device::Selected,
}

/// The image and mask a run works on.
pub(super) struct Input<'a> {
    pub image: &'a RgbaImage,
    pub mask: &'a image::GrayImage,
}

/// Why a mode's run gave no image.
pub(super) enum Failure {
    Cancelled,
    /// The model path does not exist (the message says what it needs).
    NoModel(String),
    Error(String),
}
