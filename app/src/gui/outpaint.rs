//! The outpaint row of the inpaint panel: grow the canvas on one side (or all) by a number of
//! pixels, the new border pre-filled and masked, so the next Run paints it.

use clearpaint_core::pipelines::outpaint::{Extend, MAX_EXTEND, Prefill};
use eframe::egui;

use super::app::ClearpaintApp;

impl ClearpaintApp {
    pub(super) fn outpaint_section(&mut self, ui: &mut egui::Ui) {
        if self.editor.is_none() {
            return;
        }
        let s = &mut self.settings;
        ui.horizontal(|ui| {
            let l = ui.label("Outpaint");
            ui.add(
                egui::DragValue::new(&mut s.extend_px)
                    .range(8..=MAX_EXTEND)
                    .suffix(" px"),
            )
            .labelled_by(l.id);
            egui::ComboBox::from_label("fill")
                .selected_text(format!("{:?}", s.extend_fill))
                .show_ui(ui, |ui| {
                    ui.selectable_value(&mut s.extend_fill, Prefill::Edge, "Edge")
                        .on_hover_text("the image's edge stretched outward");
                    ui.selectable_value(&mut s.extend_fill, Prefill::Classical, "Classical")
                        .on_hover_text("the classical engine's fill");
                    ui.selectable_value(&mut s.extend_fill, Prefill::Noise, "Noise");
                });
        });
        let n = s.extend_px;
        let sides = [
            ("Extend left", [n, 0, 0, 0]),
            ("Extend up", [0, n, 0, 0]),
            ("Extend right", [0, 0, n, 0]),
            ("Extend down", [0, 0, 0, n]),
            ("Extend all", [n, n, n, n]),
        ];
        let mut chosen = None;
        ui.horizontal_wrapped(|ui| {
            for (label, [left, top, right, bottom]) in sides {
                if ui
                    .button(label)
                    .on_hover_text("grow the canvas; Run then paints the new border")
                    .clicked()
                {
                    chosen = Some(Extend {
                        left,
                        top,
                        right,
                        bottom,
                    });
                }
            }
        });
        if let Some(e) = chosen {
            self.extend_canvas(e);
        }
    }

    /// Grows the open image by `e` (undoable), shows the mask so the new border is visible.
    pub fn extend_canvas(&mut self, e: Extend) {
        let fill = self.settings.extend_fill;
        let seed = self.settings.request.seed;
        let Some(ed) = &mut self.editor else { return };
        match ed.extend_canvas(e, fill, seed) {
            Ok(()) => {
                let (w, h) = ed.image.dimensions();
                self.status = format!("canvas extended to {w}x{h}: Run paints the new border");
                self.show_mask = true;
                self.error = None;
            }
            Err(err) => self.error = Some(err),
        }
    }
}
