//! The inpainting panel on the right: prompt, sampling, region, models, Run / Cancel with
//! progress, the result history (`results.rs`) and the mask colour.

use std::sync::atomic::Ordering;

use clearpaint_core::pipelines::inpaint::{DecoderChoice, MaskMode, Region, WorkingSize};
use clearpaint_core::precision::Precision;
use clearpaint_core::schedulers::SchedulerKind;
use eframe::egui;

use super::app::{ClearpaintApp, EngineChoice, Mode};

impl ClearpaintApp {
    pub(super) fn settings_panel(&mut self, ui: &mut egui::Ui) {
        self.prompt_section(ui);
        self.sampling_section(ui);
        self.region_section(ui);
        self.models_section(ui);
        self.loras_section(ui);
        self.run_section(ui);
        self.results_section(ui);
        if matches!(self.settings.mode, Mode::Inpaint | Mode::Example) {
            ui.separator();
            self.outpaint_section(ui);
        }
        ui.separator();
        ui.horizontal(|ui| {
            let l_colour = ui.label("Mask colour");
            ui.color_edit_button_srgba(&mut self.settings.mask_colour)
                .labelled_by(l_colour.id);
        });
        let s = &mut self.settings;
        egui::ComboBox::from_label("Precision")
            .selected_text(s.precision.name())
            .show_ui(ui, |ui| {
                for p in Precision::ALL {
                    ui.selectable_value(&mut s.precision, p, p.name());
                }
            })
            .response
            .on_hover_text(
                "auto: f16 on a GPU with shader-f16 (half the memory), f32 on the CPU; \
                 f16 needs a GPU; bf16 (CPU) halves the weights' memory, not the time. \
                 In half precision: UNet, text encoder, VAE decoders",
            );
    }

    /// The mode row and what the mode takes: the prompts, Generate's size, the exemplar.
    fn prompt_section(&mut self, ui: &mut egui::Ui) {
        let s = &mut self.settings;
        ui.horizontal(|ui| {
            for m in Mode::ALL {
                ui.selectable_value(&mut s.mode, m, m.label());
            }
        });
        match s.mode {
            Mode::Generate => {
                ui.add(
                    egui::Slider::new(&mut s.width, 64..=2048)
                        .step_by(8.0)
                        .text("Width"),
                );
                ui.add(
                    egui::Slider::new(&mut s.height, 64..=2048)
                        .step_by(8.0)
                        .text("Height"),
                );
            }
            Mode::Example => {
                self.exemplar_section(ui);
                return;
            }
            Mode::Inpaint | Mode::Edit => {}
        }
        let s = &mut self.settings;
        let l_prompt = ui.label("Prompt");
        // A long prompt scrolls in its box instead of pushing the panel down.
        egui::ScrollArea::vertical()
            .id_salt("prompt")
            .max_height(140.0)
            .show(ui, |ui| {
                ui.add(
                    egui::TextEdit::multiline(&mut s.request.prompt)
                        .hint_text("prompt: (word:1.2) weights, BREAK, <lora:NAME:0.8>")
                        .desired_rows(3),
                )
                .labelled_by(l_prompt.id);
            });
        let (count, dropped) = self.loras.count(&s.request.prompt);
        ui.weak(count);
        if let Some(d) = dropped {
            ui.colored_label(ui.visuals().warn_fg_color, d);
        }
        let l_negative = ui.label("Negative prompt");
        ui.add(
            egui::TextEdit::singleline(&mut s.request.negative_prompt).hint_text("negative prompt"),
        )
        .labelled_by(l_negative.id);
    }

    /// By example's exemplar: a path field and a file dialog.
    fn exemplar_section(&mut self, ui: &mut egui::Ui) {
        let l_ex = ui.label("Exemplar");
        ui.horizontal(|ui| {
            ui.add(
                egui::TextEdit::singleline(&mut self.settings.example_path)
                    .hint_text("the image to paint the mask after"),
            )
            .labelled_by(l_ex.id);
            if ui
                .add_enabled(self.dialog.is_none(), egui::Button::new("Pick…"))
                .on_hover_text("choose the exemplar in a file dialog")
                .clicked()
            {
                let ctx = ui.ctx().clone();
                self.open_dialog(super::dialogs::Purpose::PickExemplar, &ctx);
            }
        });
        ui.weak("Needs a Paint-by-Example model folder (Fantasy-Studio/Paint-by-Example).");
    }

    /// Engine, scheduler, steps, guidance, strength, seed.
    fn sampling_section(&mut self, ui: &mut egui::Ui) {
        let s = &mut self.settings;
        egui::ComboBox::from_label("Engine")
            .selected_text(format!("{:?}", s.engine))
            .show_ui(ui, |ui| {
                ui.selectable_value(&mut s.engine, EngineChoice::Auto, "Auto");
                ui.selectable_value(&mut s.engine, EngineChoice::Diffusion, "Diffusion");
                ui.selectable_value(&mut s.engine, EngineChoice::Classical, "Classical");
            });
        egui::ComboBox::from_label("Scheduler")
            .selected_text(s.request.scheduler.name())
            .show_ui(ui, |ui| {
                for k in SchedulerKind::ALL {
                    ui.selectable_value(&mut s.request.scheduler, k, k.name());
                }
            });
        ui.add(egui::Slider::new(&mut s.request.steps, 1..=100).text("Steps"));
        ui.add(egui::Slider::new(&mut s.request.guidance, 1.0..=15.0).text("Guidance"));
        ui.add(egui::Slider::new(&mut s.request.strength, 0.05..=1.0).text("Strength"));
        ui.horizontal(|ui| {
            let l_seed = ui.label("Seed");
            ui.add(egui::DragValue::new(&mut s.request.seed))
                .labelled_by(l_seed.id);
            if ui.button("Random").clicked() {
                s.request.seed = crate::gui::random_seed();
            }
        });
    }

    /// Which part of the image is repainted and how it is blended and decoded.
    fn region_section(&mut self, ui: &mut egui::Ui) {
        let s = &mut self.settings;
        egui::ComboBox::from_label("Region")
            .selected_text(format!("{:?}", s.request.region))
            .show_ui(ui, |ui| {
                ui.selectable_value(&mut s.request.region, Region::Auto, "Auto");
                ui.selectable_value(&mut s.request.region, Region::Full, "Full");
                ui.selectable_value(&mut s.request.region, Region::Crop, "Crop");
            });
        egui::ComboBox::from_label("Working size")
            .selected_text(s.request.size.to_string())
            .show_ui(ui, |ui| {
                ui.selectable_value(&mut s.request.size, WorkingSize::Auto, "auto")
                    .on_hover_text("about the model's trained resolution (512 for SD 1.x)");
                ui.selectable_value(&mut s.request.size, WorkingSize::Native, "native")
                    .on_hover_text("the region's own size");
                for side in [512, 768] {
                    let t = WorkingSize::Exact(side, side);
                    ui.selectable_value(&mut s.request.size, t, t.to_string());
                }
            });
        egui::ComboBox::from_label("Mask mode")
            .selected_text(s.request.mask_mode.to_string())
            .show_ui(ui, |ui| {
                ui.selectable_value(&mut s.request.mask_mode, MaskMode::Binary, "binary")
                    .on_hover_text("grey >= 50% repaints, the rest is kept");
                ui.selectable_value(&mut s.request.mask_mode, MaskMode::Soft, "soft")
                    .on_hover_text(
                        "grey levels are strengths: a 30% grey changes less than white \
                         (paint them with a lower brush opacity or hardness)",
                    );
            });
        ui.add(egui::Slider::new(&mut s.request.crop_padding, 0..=256).text("Crop padding"));
        ui.add(egui::Slider::new(&mut s.request.mask_blur, 0..=64).text("Mask blur"));
        ui.checkbox(
            &mut s.request.paste_back,
            "Paste back (keep unmasked pixels)",
        );
        egui::ComboBox::from_label("Decoder")
            .selected_text(format!("{:?}", s.request.decoder))
            .show_ui(ui, |ui| {
                ui.selectable_value(
                    &mut s.request.decoder,
                    DecoderChoice::Asymmetric,
                    "Asymmetric",
                );
                ui.selectable_value(&mut s.request.decoder, DecoderChoice::Standard, "Standard");
            });
    }

    /// The model and VAE folders and the known-models list.
    fn models_section(&mut self, ui: &mut egui::Ui) {
        let s = &mut self.settings;
        ui.separator();
        ui.label("Models");
        let l_model_folder = ui.label("Model folder");
        ui.add(
            egui::TextEdit::singleline(&mut s.model_dir)
                .hint_text("diffusers folder, .safetensors checkpoint or known name"),
        )
        .labelled_by(l_model_folder.id);
        let l_vae = ui.label("VAE folder");
        ui.add(
            egui::TextEdit::singleline(&mut s.vae_dir)
                .hint_text("asymmetric VAE folder (optional)"),
        )
        .labelled_by(l_vae.id);
        let model_field = s.model_dir.clone();
        match self.models.show(ui, &model_field) {
            Some(super::models::Use::Model(p)) => self.settings.model_dir = p.display().to_string(),
            Some(super::models::Use::Vae(p)) => self.settings.vae_dir = p.display().to_string(),
            None => {}
        }
    }

    /// Run / Cancel and the running job's progress.
    fn run_section(&mut self, ui: &mut egui::Ui) {
        ui.separator();
        let running = self.job.is_some();
        ui.horizontal(|ui| {
            if ui
                .add_enabled(
                    !running && (self.editor.is_some() || self.settings.mode == Mode::Generate),
                    egui::Button::new("Run"),
                )
                .clicked()
            {
                let ctx = ui.ctx().clone();
                self.start_run(&ctx);
            }
            if ui
                .add_enabled(running, egui::Button::new("Cancel"))
                .clicked()
            {
                self.cancel_run();
            }
        });
        if let Some(j) = &self.job {
            let (d, t) = (
                j.done.load(Ordering::SeqCst),
                j.total.load(Ordering::SeqCst).max(1),
            );
            let elapsed = j.started.elapsed().as_secs_f32();
            let eta = if d > 0 {
                elapsed / d as f32 * (t - d) as f32
            } else {
                0.0
            };
            ui.add(
                egui::ProgressBar::new(d as f32 / t as f32)
                    .text(format!("step {d}/{t}, eta {eta:.0}s")),
            );
        }
    }
}
