//! The results of the runs: the history (restore one), the before/after compare slider, and
//! copying / pasting the image through the system clipboard.

use eframe::egui;
use image::RgbaImage;

use super::app::ClearpaintApp;

impl ClearpaintApp {
    /// The result history and the compare slider (once there is a result).
    pub(super) fn results_section(&mut self, ui: &mut egui::Ui) {
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
}
