//! The toolbar: open / save the image and the mask, zoom, the clipboard, undo / redo and the
//! brush and mask tools.

use std::path::PathBuf;

use eframe::egui;

use super::app::ClearpaintApp;

impl ClearpaintApp {
    pub(super) fn toolbar(&mut self, ui: &mut egui::Ui) {
        ui.horizontal_wrapped(|ui| {
            self.image_file_buttons(ui);
            self.mask_file_buttons(ui);
            self.zoom_buttons(ui);
            if self.clipboard_buttons(ui) {
                return;
            }
            self.mask_tools(ui);
        });
    }

    /// The image path, Open, Browse…, Save, Save as….
    fn image_file_buttons(&mut self, ui: &mut egui::Ui) {
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
    }

    /// The mask path, Load mask, Save mask (a dialog when the path is empty).
    fn mask_file_buttons(&mut self, ui: &mut egui::Ui) {
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
    }

    /// Fit, 100%.
    fn zoom_buttons(&mut self, ui: &mut egui::Ui) {
        if ui.button("Fit").clicked() {
            self.zoom = 1.0;
            self.pan = egui::Vec2::ZERO;
        }
        if ui.button("100%").clicked() {
            self.zoom = -1.0; // resolved to 1:1 in the canvas
            self.pan = egui::Vec2::ZERO;
        }
        ui.separator();
    }

    /// Paste, Copy. True when one was clicked: the rest of the toolbar is skipped this frame
    /// (the image may have changed).
    fn clipboard_buttons(&mut self, ui: &mut egui::Ui) -> bool {
        if ui
            .button("Paste")
            .on_hover_text("open the image on the clipboard (Ctrl+V)")
            .clicked()
        {
            self.paste_from_clipboard();
            return true;
        }
        if ui
            .add_enabled(self.editor.is_some(), egui::Button::new("Copy"))
            .on_hover_text("copy the image to the clipboard")
            .clicked()
        {
            self.copy_to_clipboard();
            return true;
        }
        ui.separator();
        false
    }

    /// Undo, Redo, Eraser, Brush, the mask operations and Help (with an image open).
    fn mask_tools(&mut self, ui: &mut egui::Ui) {
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
        ui.add(egui::Slider::new(&mut ed.hardness, 0.0..=1.0).text("Hardness"))
            .on_hover_text("1 = a hard edge; lower fades the brush out towards its rim");
        ui.add(egui::Slider::new(&mut ed.opacity, 0.05..=1.0).text("Opacity"))
            .on_hover_text("the grey a stroke paints: a soft mask's strength (Mask mode: soft)");
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
    }
}
