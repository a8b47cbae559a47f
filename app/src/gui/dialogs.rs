//! Native file dialogs (rfd; the XDG desktop portal on Linux) on a helper thread, so the
//! window keeps drawing while one is open.

use std::path::PathBuf;
use std::sync::mpsc::{Receiver, channel};

use eframe::egui;

/// What a chosen path is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Purpose {
    OpenImage,
    SaveImage,
    LoadMask,
    SaveMask,
    PickExemplar,
    AddWeatherImages,
    AddWeatherFolder,
}

const IMAGES: &[&str] = &["png", "jpg", "jpeg", "webp", "bmp", "tif", "tiff"];

pub struct Dialog {
    pub purpose: Purpose,
    rx: Receiver<Option<Vec<PathBuf>>>,
}

impl Dialog {
    /// Opens the dialog for `purpose` on a helper thread.
    pub fn open(purpose: Purpose, ctx: &egui::Context) -> Dialog {
        let (tx, rx) = channel();
        let ctx = ctx.clone();
        std::thread::spawn(move || {
            let images = rfd::FileDialog::new().add_filter("images", IMAGES);
            let png = rfd::FileDialog::new().add_filter("PNG", &["png"]);
            let picked = match purpose {
                Purpose::OpenImage => images.set_title("Open image").pick_file().map(|p| vec![p]),
                Purpose::LoadMask => png.set_title("Load mask").pick_file().map(|p| vec![p]),
                Purpose::PickExemplar => images
                    .clone()
                    .set_title("Exemplar image")
                    .pick_file()
                    .map(|p| vec![p]),
                Purpose::SaveImage => png.set_title("Save image").save_file().map(|p| vec![p]),
                Purpose::SaveMask => png.set_title("Save mask").save_file().map(|p| vec![p]),
                Purpose::AddWeatherImages => images.set_title("Add night images").pick_files(),
                Purpose::AddWeatherFolder => rfd::FileDialog::new()
                    .set_title("Add a folder of night images")
                    .pick_folder()
                    .map(|p| vec![p]),
            };
            let _ = tx.send(picked);
            ctx.request_repaint();
        });
        Dialog { purpose, rx }
    }

    /// `Some(paths)` once the dialog closed (empty when cancelled or no dialog could open).
    pub fn poll(&self) -> Option<Vec<PathBuf>> {
        match self.rx.try_recv() {
            Ok(p) => Some(p.unwrap_or_default()),
            Err(std::sync::mpsc::TryRecvError::Empty) => None,
            Err(std::sync::mpsc::TryRecvError::Disconnected) => Some(Vec::new()),
        }
    }
}
