//! What the app remembers between sessions: the model and VAE folders, the AU-GAN model, the
//! mask colour. Stored as JSON in `$CLEARPAINT_CONFIG_DIR`, else `$XDG_CONFIG_HOME/clearpaint`,
//! else `~/.config/clearpaint` (`settings.json`), written whole via a temporary file.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::ClearpaintApp;

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Prefs {
    pub model_dir: String,
    pub vae_dir: String,
    pub augan_model: String,
    pub mask_colour: Option<[u8; 4]>,
}

/// The settings file.
pub fn path() -> Option<PathBuf> {
    let var = |k: &str| {
        std::env::var_os(k)
            .filter(|v| !v.is_empty())
            .map(PathBuf::from)
    };
    let dir = var("CLEARPAINT_CONFIG_DIR")
        .or_else(|| var("XDG_CONFIG_HOME").map(|d| d.join("clearpaint")))
        .or_else(|| var("HOME").map(|h| h.join(".config").join("clearpaint")))?;
    Some(dir.join("settings.json"))
}

impl Prefs {
    /// Reads `path`; a missing or unreadable file gives the defaults (never an error: the app
    /// must start).
    pub fn load(path: &Path) -> Prefs {
        std::fs::read_to_string(path)
            .ok()
            .and_then(|t| serde_json::from_str(&t).ok())
            .unwrap_or_default()
    }

    pub fn save(&self, path: &Path) -> std::io::Result<()> {
        let dir = path.parent().unwrap_or(Path::new("."));
        std::fs::create_dir_all(dir)?;
        clearpaint_core::files::write_atomic_with(path, |w| {
            serde_json::to_writer_pretty(w, self).map_err(std::io::Error::other)
        })
    }

    pub fn of(app: &ClearpaintApp) -> Prefs {
        Prefs {
            model_dir: app.settings.model_dir.clone(),
            vae_dir: app.settings.vae_dir.clone(),
            augan_model: app.weather.model_path.clone(),
            mask_colour: Some(app.settings.mask_colour.to_srgba_unmultiplied()),
        }
    }

    pub fn apply(&self, app: &mut ClearpaintApp) {
        app.settings.model_dir = self.model_dir.clone();
        app.settings.vae_dir = self.vae_dir.clone();
        app.weather.model_path = self.augan_model.clone();
        if let Some([r, g, b, a]) = self.mask_colour {
            app.settings.mask_colour = eframe::egui::Color32::from_rgba_unmultiplied(r, g, b, a);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn settings_round_trip_and_bad_files_give_defaults() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("sub").join("settings.json");
        let mut app = ClearpaintApp::new();
        app.settings.model_dir = "weights/stable-diffusion-inpainting".into();
        app.settings.vae_dir = "weights/asymmetric-autoencoder-kl-x-1-5".into();
        app.weather.model_path = "weights/augan.safetensors".into();
        app.settings.mask_colour = eframe::egui::Color32::from_rgba_unmultiplied(1, 2, 3, 200);
        Prefs::of(&app).save(&p).unwrap();
        let mut fresh = ClearpaintApp::new();
        Prefs::load(&p).apply(&mut fresh);
        assert_eq!(Prefs::of(&fresh), Prefs::of(&app));
        std::fs::write(&p, "{not json").unwrap();
        assert_eq!(Prefs::load(&p), Prefs::default());
        assert_eq!(Prefs::load(&dir.path().join("none.json")), Prefs::default());
    }
}
