//! The desktop app (eframe / egui, wgpu renderer). `clearpaint` with no subcommand opens it.

pub mod app;
pub mod editor;
pub mod models;
pub mod prefs;
pub mod weather;

pub use app::ClearpaintApp;

/// A time-based seed.
pub fn random_seed() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64 % 4_294_967_296)
        .unwrap_or(0)
}

struct Window(ClearpaintApp);

impl eframe::App for Window {
    fn ui(&mut self, ui: &mut eframe::egui::Ui, _frame: &mut eframe::Frame) {
        self.0.show(ui);
    }

    fn on_exit(&mut self) {
        if let Some(p) = prefs::path()
            && let Err(e) = prefs::Prefs::of(&self.0).save(&p)
        {
            eprintln!("warning: {}: settings not saved: {e}", p.display());
        }
    }
}

/// Opens the window (optionally with an image) and runs until it is closed.
pub fn run(image: Option<std::path::PathBuf>) -> Result<(), String> {
    let mut app = ClearpaintApp::new();
    if let Some(p) = prefs::path() {
        prefs::Prefs::load(&p).apply(&mut app);
    }
    if let Some(p) = image {
        app.path_input = p.display().to_string();
        app.open_path(&p);
    }
    let options = eframe::NativeOptions {
        viewport: eframe::egui::ViewportBuilder::default()
            .with_title("clearpaint")
            .with_inner_size([1280.0, 800.0]),
        ..Default::default()
    };
    eframe::run_native(
        "clearpaint",
        options,
        Box::new(|_cc| Ok(Box::new(Window(app)))),
    )
    .map_err(|e| format!("cannot open the window: {e}"))
}
