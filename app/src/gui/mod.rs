//! The desktop app (eframe / egui, wgpu renderer). `clearpaint` with no subcommand opens it.

pub mod app;
mod canvas;
pub mod dialogs;
pub mod editor;
mod jobs;
pub mod loras;
pub mod models;
mod modes;
mod outpaint;
pub mod prefs;
mod results;
mod settings;
mod toolbar;
pub mod weather;

pub use app::ClearpaintApp;

use clearpaint_core::device;

/// A time-based seed.
pub fn random_seed() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64 % 4_294_967_296)
        .unwrap_or(0)
}

struct Window {
    app: ClearpaintApp,
    /// `CLEARPAINT_SCREENSHOT=FILE`: save the window as a PNG once the first image is on
    /// screen, then close (for README screenshots and the start-up test under Xvfb).
    screenshot: Option<(std::path::PathBuf, u32)>,
    shot: std::sync::Arc<std::sync::Mutex<Option<std::sync::Arc<eframe::egui::ColorImage>>>>,
}

impl eframe::App for Window {
    fn ui(&mut self, ui: &mut eframe::egui::Ui, _frame: &mut eframe::Frame) {
        self.app.show(ui);
        let ctx = ui.ctx().clone();
        if let Some((path, frames)) = &mut self.screenshot {
            let shot = self.shot.lock().ok().and_then(|mut s| s.take());
            if let Some(image) = shot {
                let [w, h] = image.size;
                let rgba: Vec<u8> = image.pixels.iter().flat_map(|c| c.to_array()).collect();
                let result = image::RgbaImage::from_raw(w as u32, h as u32, rgba)
                    .ok_or_else(|| "bad screenshot size".to_string())
                    .and_then(|img| {
                        clearpaint_core::imaging::save_png(&*path, &img, false, &[])
                            .map_err(|e| e.to_string())
                    });
                match result {
                    Ok(()) => eprintln!("screenshot: {}", path.display()),
                    Err(e) => eprintln!("error: screenshot: {e}"),
                }
                ctx.send_viewport_cmd(eframe::egui::ViewportCommand::Close);
                self.screenshot = None;
                return;
            }
            *frames += 1;
            // A few frames for the layout and the image texture to settle.
            if *frames == 5 {
                let (slot, repaint) = (self.shot.clone(), ctx.clone());
                ctx.send_viewport_cmd(eframe::egui::ViewportCommand::Screenshot(
                    eframe::egui::ScreenshotCallback::new(move |img| {
                        if let Ok(mut s) = slot.lock() {
                            *s = Some(img);
                        }
                        repaint.request_repaint();
                    }),
                ));
            }
            ctx.request_repaint();
        }
    }

    fn on_exit(&mut self) {
        if self.screenshot.is_some() || std::env::var_os("CLEARPAINT_SCREENSHOT").is_some() {
            return; // a scripted run: leave the user's settings alone
        }
        if let Some(p) = prefs::path()
            && let Err(e) = prefs::Prefs::of(&self.app).save(&p)
        {
            eprintln!("warning: {}: settings not saved: {e}", p.display());
        }
    }
}

/// Creates the compute device first when it is a GPU, and hands the same wgpu instance,
/// adapter, device and queue to the window's renderer: one device, no copies between two.
fn shared_gpu(
    choice: device::DeviceChoice,
) -> Option<(device::Selected, eframe::egui_wgpu::WgpuSetup)> {
    if choice == device::DeviceChoice::Cpu {
        return None;
    }
    let adapters = device::list_adapters();
    let i = device::decide(choice, &adapters).ok()??;
    let a = &adapters[i];
    match clearpaint_core::gpu::open(&a.device_kind) {
        Ok((dev, setup)) => {
            eprintln!(
                "sharing one wgpu device between the window and the models: {} ({})",
                a.name, a.backend
            );
            let selected = device::Selected {
                device: dev,
                description: format!(
                    "gpu: {} ({}, {}), shared with the window",
                    a.name,
                    a.backend,
                    a.kind.name()
                ),
                is_cpu: false,
                max_tensor_bytes: a.max_buffer_bytes,
                shader_f16: a.shader_f16,
                half: clearpaint_core::precision::Half::Off,
            };
            let existing = eframe::egui_wgpu::WgpuSetupExisting {
                instance: setup.instance,
                adapter: setup.adapter,
                device: setup.device,
                queue: setup.queue,
            };
            Some((selected, eframe::egui_wgpu::WgpuSetup::Existing(existing)))
        }
        Err(e) => {
            eprintln!(
                "warning: {}: cannot start the GPU for the models ({e}); the window uses its own device",
                a.name
            );
            None
        }
    }
}

/// Opens the window (optionally with an image) and runs until it is closed. `choice` is where
/// models run; a GPU is shared with the window.
pub fn run(image: Option<std::path::PathBuf>, choice: device::DeviceChoice) -> Result<(), String> {
    let mut app = ClearpaintApp::new();
    let screenshot =
        std::env::var_os("CLEARPAINT_SCREENSHOT").map(|p| (std::path::PathBuf::from(p), 0));
    if screenshot.is_none()
        && let Some(p) = prefs::path()
    {
        prefs::Prefs::load(&p).apply(&mut app);
    }
    app.settings.device = choice;
    app.settings.precision = crate::placement::precision();
    if let Some(p) = image {
        app.path_input = p.display().to_string();
        app.open_path(&p);
    }
    let mut options = eframe::NativeOptions {
        viewport: eframe::egui::ViewportBuilder::default()
            .with_title("clearpaint")
            .with_inner_size([1280.0, 800.0]),
        ..Default::default()
    };
    if let Some((selected, setup)) = shared_gpu(choice) {
        app.shared_device = Some(selected);
        options.wgpu_options.wgpu_setup = setup;
    }
    eframe::run_native(
        "clearpaint",
        options,
        Box::new(|_cc| {
            Ok(Box::new(Window {
                app,
                screenshot,
                shot: Default::default(),
            }))
        }),
    )
    .map_err(|e| format!("cannot open the window: {e}"))
}
