//! `clearpaint inpaint`: Stable Diffusion 1.x inpainting with the asymmetric VQGAN decoder.

use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{Context, Result, bail};
use clap::ValueEnum;
use clearpaint_core::device::DeviceChoice;
use clearpaint_core::imaging;
use clearpaint_core::lora::LoraSpec;
use clearpaint_core::pipelines::example::{self, ExampleModels};
use clearpaint_core::pipelines::inpaint::{
    self, ColorMatch, DecoderChoice, InpaintModels, InpaintRequest, MaskMode, Region, WorkingSize,
};
use clearpaint_core::pipelines::outpaint::{self, Extend, Prefill};
use clearpaint_core::progress::CancelToken;
use clearpaint_core::schedulers::SchedulerKind;
use clearpaint_core::weights::SafetensorsFile;
use indicatif::{ProgressBar, ProgressStyle};

#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum DecoderArg {
    Asymmetric,
    Standard,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum RegionArg {
    Auto,
    Full,
    Crop,
}

#[derive(Debug, Clone, Copy, ValueEnum, PartialEq, Eq)]
pub enum OnOff {
    On,
    Off,
}

#[derive(Debug, Clone, Copy, ValueEnum, PartialEq, Eq)]
pub enum EngineArg {
    /// Diffusion with --model; the classical fill only when there is no model (none given,
    /// or for a single image a path that does not exist), said in one line and in the PNG. A
    /// model that is there but broken is an error.
    Auto,
    Diffusion,
    /// PatchMatch / Telea fill: no weights needed.
    Classical,
}

/// The engine a run uses.
pub enum Engine {
    Diffusion(Box<InpaintModels>),
    /// Paint-by-Example with its exemplar.
    Example(Box<ExampleModels>, Box<Exemplar>),
    /// Why the classical engine runs.
    Classical(String),
}

/// The Stable Diffusion options every pipeline command shares: the model, prompts, sampling,
/// LoRAs and embeddings.
#[derive(clap::Args, Debug, Clone)]
pub struct SdOptions {
    /// A diffusers pipeline folder (model_index.json, unet/, vae/, text_encoder/, tokenizer/,
    /// scheduler/), e.g. stable-diffusion-v1-5/stable-diffusion-inpainting; or a single-file
    /// SD 1.x checkpoint (.safetensors in the LDM layout, as A1111 / ComfyUI keep them).
    #[arg(long, value_name = "PATH")]
    pub model: Option<PathBuf>,
    #[arg(long, default_value = "")]
    pub prompt: String,
    #[arg(long, default_value = "")]
    pub negative_prompt: String,
    /// An AsymmetricAutoencoderKL folder (e.g. cross-attention/asymmetric-autoencoder-kl-x-1-5).
    #[arg(long, value_name = "DIR")]
    pub vae: Option<PathBuf>,
    /// Final decoder: asymmetric (default when --vae is given) or the model's standard VAE.
    #[arg(long, value_enum)]
    pub decoder: Option<DecoderArg>,
    #[arg(long, default_value_t = 20)]
    pub steps: usize,
    /// Classifier-free guidance scale (1 = off).
    #[arg(long, default_value_t = 7.5)]
    pub guidance: f64,
    #[arg(long, default_value = "dpmpp-2m-karras", value_parser = parse_scheduler)]
    pub scheduler: SchedulerKind,
    /// Seed of the initial noise (random when not given; written to the PNG either way). In a
    /// batch, each image's seed is derived from it and the file's relative path.
    #[arg(long)]
    pub seed: Option<u64>,
    /// A LoRA / LyCORIS .safetensors to merge for the run (kohya, diffusers / PEFT, LoHa,
    /// LoKr): FILE, FILE:WEIGHT or FILE:TEXT_ENCODER_WEIGHT:UNET_WEIGHT; repeatable. A prompt can
    /// name LoRAs too, as A1111: <lora:NAME:WEIGHT>.
    #[arg(long = "lora", value_name = "FILE[:WEIGHT]", value_parser = parse_lora)]
    pub loras: Vec<LoraSpec>,
    /// Where the prompt's <lora:NAME:...> tags are looked up (NAME.safetensors, subfolders too).
    #[arg(
        long,
        value_name = "DIR",
        default_value = "weights/loras",
        env = "CLEARPAINT_LORA_DIR"
    )]
    pub lora_dir: PathBuf,
    /// Textual-inversion embeddings (A1111 / diffusers .safetensors): a prompt uses one by
    /// its file name, e.g. "a photo in mystyle" with mystyle.safetensors here.
    #[arg(
        long,
        value_name = "DIR",
        default_value = "weights/embeddings",
        env = "CLEARPAINT_EMBEDDING_DIR"
    )]
    pub embedding_dir: PathBuf,
}

/// The exemplar image of a Paint-by-Example run.
pub struct Exemplar {
    pub image: image::RgbaImage,
    /// Its file name, for the PNG's parameters.
    pub name: String,
}

/// Generation options shared by `inpaint` and `batch inpaint`.
#[derive(clap::Args, Debug, Clone)]
pub struct InpaintOptions {
    #[command(flatten)]
    pub sd: SdOptions,
    /// auto: diffusion with --model, the classical fill when there is no model; diffusion;
    /// classical.
    #[arg(long, value_enum, default_value = "auto")]
    pub engine: EngineArg,
    /// 1 = repaint from pure noise; lower keeps more of the original under the mask.
    #[arg(long, default_value_t = 1.0)]
    pub strength: f64,
    #[arg(long, value_enum, default_value = "auto")]
    pub region: RegionArg,
    /// The size the model runs the region at: auto (about the model's trained resolution,
    /// 512x512 for SD 1.x, the region's aspect kept), native (the region's own size, as
    /// diffusers), or WxH; the result is resized back and pasted through the feathered mask.
    #[arg(long, default_value = "auto", value_parser = parse_size)]
    pub size: WorkingSize,
    /// Match the repainted area's colours to its unmasked surroundings: off, mean-std (per
    /// channel mean and spread) or histogram.
    #[arg(long, default_value = "off", value_parser = parse_color_match)]
    pub color_match: ColorMatch,
    /// binary: grey >= 128 repaints; soft: the mask's grey levels are per-pixel strengths
    /// through the denoising loop (differential diffusion: 0.3 changes less than 1.0, black
    /// never); a mask with only black and white runs as binary.
    #[arg(long, default_value = "binary", value_parser = parse_mask_mode)]
    pub mask_mode: MaskMode,
    /// Context around the mask in crop mode (pixels).
    #[arg(long, default_value_t = 32)]
    pub crop_padding: u32,
    /// Feather radius of the paste-back mask (pixels).
    #[arg(long, default_value_t = 4)]
    pub mask_blur: u32,
    /// Keep every unmasked pixel of the input exactly.
    #[arg(long, value_enum, default_value = "on")]
    pub paste_back: OnOff,
    /// Resize a mask of another size to the image (off: such a mask is an error).
    #[arg(long, value_enum, default_value = "on")]
    pub mask_resize: OnOff,
    /// Paint-by-Example: repaint the mask after this exemplar image instead of a prompt;
    /// --model is then a Paint-by-Example folder (e.g. Fantasy-Studio/Paint-by-Example; its
    /// own default guidance is 5).
    #[arg(long, value_name = "FILE")]
    pub example: Option<PathBuf>,
}

impl InpaintOptions {
    pub fn request(&self, seed: u64, latents: Option<Vec<f32>>) -> InpaintRequest {
        InpaintRequest {
            strength: self.strength,
            region: match self.region {
                RegionArg::Auto => Region::Auto,
                RegionArg::Full => Region::Full,
                RegionArg::Crop => Region::Crop,
            },
            crop_padding: self.crop_padding,
            size: self.size,
            color_match: self.color_match,
            mask_mode: self.mask_mode,
            mask_blur: self.mask_blur,
            paste_back: self.paste_back == OnOff::On,
            resize_mask: self.mask_resize == OnOff::On,
            ..self.sd.request(seed, latents)
        }
    }

    /// Chooses the engine. `auto` falls back to the classical fill (with a one-line note) only
    /// when there is no model: none named, or, with `missing_ok` (a single `inpaint`, as
    /// README's main command on a fresh machine), a named path that does not exist. A model
    /// that is there but does not load is an error, never silently replaced.
    pub fn engine(&self, choice: DeviceChoice, missing_ok: bool) -> Result<Engine> {
        if let Some(path) = &self.example {
            if self.engine == EngineArg::Classical {
                bail!("--example needs the diffusion engine (the classical fill has no exemplar)");
            }
            let loaded = imaging::load(path)?;
            let exemplar = Exemplar {
                image: loaded.rgba,
                name: path
                    .file_name()
                    .map(|n| n.to_string_lossy().to_string())
                    .unwrap_or_default(),
            };
            let models = self.sd.load_example(choice)?;
            return Ok(Engine::Example(Box::new(models), Box::new(exemplar)));
        }
        match self.engine {
            EngineArg::Classical => Ok(Engine::Classical("--engine classical".into())),
            EngineArg::Diffusion => Ok(Engine::Diffusion(Box::new(self.sd.load(choice)?))),
            EngineArg::Auto => {
                let Some(model) = &self.sd.model else {
                    let why = "no --model given".to_string();
                    eprintln!(
                        "note: using the classical fill engine ({why}; see weights/README.md for diffusion)"
                    );
                    return Ok(Engine::Classical(why));
                };
                let present =
                    clearpaint::hub::resolve_model_arg(model, Path::new("weights")).exists();
                match self.sd.load(choice) {
                    Ok(m) => Ok(Engine::Diffusion(Box::new(m))),
                    Err(e) if !present && missing_ok => {
                        let why = format!("{e:#}");
                        eprintln!("note: using the classical fill engine: {why}");
                        Ok(Engine::Classical(why))
                    }
                    Err(e) => Err(e),
                }
            }
        }
    }
}

impl SdOptions {
    pub fn decoder(&self) -> DecoderChoice {
        match (self.decoder, &self.vae) {
            (Some(DecoderArg::Standard), _) | (None, None) => DecoderChoice::Standard,
            _ => DecoderChoice::Asymmetric,
        }
    }

    /// The request of these options (the inpaint-only fields at their defaults).
    pub fn request(&self, seed: u64, latents: Option<Vec<f32>>) -> InpaintRequest {
        InpaintRequest {
            prompt: self.prompt.clone(),
            negative_prompt: self.negative_prompt.clone(),
            steps: self.steps,
            guidance: self.guidance,
            scheduler: self.scheduler,
            seed,
            latents,
            decoder: self.decoder(),
            loras: self.loras.clone(),
            lora_dir: Some(self.lora_dir.clone()),
            embedding_dir: Some(self.embedding_dir.clone()),
            ..InpaintRequest::default()
        }
    }

    /// Loads the models, with a message naming what is missing when the folder is absent.
    pub fn load(&self, choice: DeviceChoice) -> Result<InpaintModels> {
        let (model, vae) = self.paths(
            "a diffusers Stable Diffusion 1.x folder or single-file checkpoint",
            "Inpainting needs a diffusers Stable Diffusion 1.x folder or a single-file SD 1.x \
             .safetensors checkpoint, e.g. stable-diffusion-v1-5/stable-diffusion-inpainting",
            inpaint::REQUIRED,
            "sd15-inpainting",
        )?;
        let selected = clearpaint::placement::select(choice)?;
        eprintln!("loading {} on {}", model.display(), selected.description);
        InpaintModels::load(&model, vae.as_deref(), self.decoder(), &selected)
            .with_context(|| format!("loading {}", model.display()))
    }

    /// Loads a Paint-by-Example folder.
    pub fn load_example(&self, choice: DeviceChoice) -> Result<ExampleModels> {
        let (model, vae) = self.paths(
            "a Paint-by-Example folder",
            "--example needs a diffusers Paint-by-Example folder, e.g. \
             Fantasy-Studio/Paint-by-Example",
            example::REQUIRED,
            "paint-by-example",
        )?;
        let selected = clearpaint::placement::select(choice)?;
        eprintln!("loading {} on {}", model.display(), selected.description);
        ExampleModels::load(&model, vae.as_deref(), self.decoder(), &selected)
            .with_context(|| format!("loading {}", model.display()))
    }

    /// `--model` and `--vae` resolved (a known model's name where it is present on this
    /// machine), or what to give when the model is absent.
    fn paths(
        &self,
        what: &str,
        needs: &str,
        layout: &str,
        known: &str,
    ) -> Result<(PathBuf, Option<PathBuf>)> {
        let Some(model) = &self.model else {
            bail!("--engine diffusion needs --model PATH ({what}; see weights/README.md)");
        };
        let weights = Path::new("weights");
        let model = clearpaint::hub::resolve_model_arg(model, weights);
        let vae = self
            .vae
            .as_deref()
            .map(|v| clearpaint::hub::resolve_model_arg(v, weights));
        if !model.exists() {
            bail!(
                "{}: no such model folder or file. {needs} ({layout}), and for the asymmetric \
                 decoder --vae with cross-attention/asymmetric-autoencoder-kl-x-1-5 (clearpaint \
                 weights fetch {known} / asym-vae-x1.5; see weights/README.md)",
                model.display(),
            );
        }
        Ok((model, vae))
    }
}

/// A random seed (time-based) when none is given.
pub fn random_seed() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64 % 4_294_967_296)
        .unwrap_or(0)
}

#[derive(clap::Args, Debug)]
pub struct InpaintArgs {
    /// The image to edit.
    #[arg(long, value_name = "FILE")]
    pub image: PathBuf,
    /// The mask: white = repaint, black = keep (optional with --extend).
    #[arg(long, value_name = "FILE")]
    pub mask: Option<PathBuf>,
    /// Outpaint: extend the canvas by N pixels on every side, or LEFT,TOP,RIGHT,BOTTOM; the new
    /// border is repainted (with --mask, the mask's white part too).
    #[arg(long, value_name = "N|L,T,R,B", value_parser = parse_extend)]
    pub extend: Option<Extend>,
    /// What the new border starts as: edge (the image's edge stretched), classical (the
    /// classical fill) or noise.
    #[arg(long, default_value = "edge", value_parser = parse_prefill)]
    pub extend_fill: Prefill,
    /// Output PNG (written atomically; never replaced without --overwrite).
    #[arg(long, value_name = "FILE")]
    pub out: PathBuf,
    /// Initial noise: a .safetensors file with one tensor `latents` of shape [1, 4, H/8, W/8]
    /// (H, W: the working region padded to a multiple of 8).
    #[arg(long, value_name = "FILE")]
    pub latents: Option<PathBuf>,
    #[arg(long)]
    pub overwrite: bool,
    #[command(flatten)]
    pub opts: InpaintOptions,
}

fn parse_color_match(s: &str) -> Result<ColorMatch, String> {
    s.parse()
}

pub fn parse_mask_mode(s: &str) -> Result<MaskMode, String> {
    s.parse()
}

fn parse_extend(s: &str) -> Result<Extend, String> {
    s.parse()
}

fn parse_prefill(s: &str) -> Result<Prefill, String> {
    s.parse()
}

fn parse_size(s: &str) -> Result<WorkingSize, String> {
    s.parse()
}

fn parse_scheduler(s: &str) -> Result<SchedulerKind, String> {
    s.parse()
}

/// `FILE`, `FILE:W` or `FILE:TE:UNET` (weights taken from the end, so a path may hold `:`).
pub fn parse_lora(s: &str) -> Result<LoraSpec, String> {
    let num = |v: &str| v.parse::<f64>().ok().filter(|w| w.is_finite());
    let mut parts: Vec<&str> = s.rsplitn(3, ':').collect();
    parts.reverse();
    let (path, te, unet) = match parts[..] {
        [p, a, b] if num(a).is_some() && num(b).is_some() => (p.to_string(), num(a), num(b)),
        [p, a, b] if num(b).is_some() => (format!("{p}:{a}"), num(b), num(b)),
        [p, a] if num(a).is_some() => (p.to_string(), num(a), num(a)),
        _ => (s.to_string(), Some(1.0), Some(1.0)),
    };
    if path.is_empty() {
        return Err(format!("{s:?}: no LoRA file"));
    }
    Ok(LoraSpec {
        path: PathBuf::from(path),
        te: te.unwrap_or(1.0),
        unet: unet.unwrap_or(1.0),
    })
}

pub fn read_latents(path: &Path) -> Result<Vec<f32>> {
    let f = SafetensorsFile::open(path)?;
    if f.entry("latents").is_none() {
        bail!("{}: no tensor named 'latents'", path.display());
    }
    Ok(f.read_f32("latents")?)
}

/// The step progress bar of one image.
pub fn step_bar(bar: &ProgressBar) {
    bar.set_style(
        ProgressStyle::with_template("{msg:8} {bar:30} {pos}/{len} {per_sec} eta {eta}")
            .unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
}

pub fn run(args: &InpaintArgs, choice: DeviceChoice) -> Result<()> {
    if !args.overwrite && args.out.exists() {
        bail!(
            "{}: already exists; pass --overwrite to replace it",
            args.out.display()
        );
    }
    if let Some(dir) = args.out.parent().filter(|d| !d.as_os_str().is_empty())
        && !dir.is_dir()
    {
        bail!("{}: the output folder does not exist", dir.display());
    }
    let mut loaded = imaging::load(&args.image)?;
    let mask = match &args.mask {
        Some(path) => {
            let m = imaging::load(path)?;
            Some(image::DynamicImage::ImageRgba8(m.rgba).to_luma8())
        }
        None if args.extend.is_some() => None,
        None => bail!("--mask FILE is needed (white = repaint), or --extend to outpaint"),
    };
    let latents = args.latents.as_deref().map(read_latents).transpose()?;
    let seed = args.opts.sd.seed.unwrap_or_else(random_seed);
    let mask = match args.extend {
        Some(e) => outpaint_canvas(&mut loaded.rgba, mask, e, args.extend_fill, seed)?,
        None => mask.expect("a mask without --extend"),
    };
    let req = args.opts.request(seed, latents);
    req.validate().map_err(anyhow::Error::msg)?;
    let engine = args.opts.engine(choice, true)?;
    let start = Instant::now();
    let out = run_one(&engine, &loaded.rgba, &mask, &req, None)?;
    for note in &out.0.notes {
        eprintln!("note: {note}");
    }
    let (w, h) = out.0.image.dimensions();
    imaging::save_png(&args.out, &out.0.image, loaded.has_alpha, &out.1)?;
    eprintln!(
        "wrote {} ({w}x{h}, {}) in {:.1}s",
        args.out.display(),
        match &engine {
            Engine::Diffusion(_) | Engine::Example(..) => format!("seed {seed}"),
            Engine::Classical(_) => "classical fill".to_string(),
        },
        start.elapsed().as_secs_f64()
    );
    Ok(())
}

/// Extends `image` by `e` for outpainting (the border pre-filled) and returns the mask: the
/// border plus `mask`'s white part.
fn outpaint_canvas(
    image: &mut image::RgbaImage,
    mask: Option<image::GrayImage>,
    e: Extend,
    fill: Prefill,
    seed: u64,
) -> Result<image::GrayImage> {
    let (w, h) = image.dimensions();
    let (nw, nh) = (w + e.left + e.right, h + e.top + e.bottom);
    if nw as u64 * nh as u64 > imaging::max_image_pixels() {
        bail!("--extend {e}: the {nw}x{nh} canvas is larger than images may be");
    }
    let mask = match mask {
        Some(m) => inpaint::prepare_mask(&m, w, h, &mut Vec::new()),
        None => image::GrayImage::new(w, h),
    };
    let (canvas, mask) = outpaint::extend(image, Some(&mask), e, fill, seed);
    eprintln!("note: outpainting to {nw}x{nh} (border pre-filled: {fill:?})");
    *image = canvas;
    Ok(mask)
}

/// Runs one image with `engine`, showing step progress on `bar` (a new bar when `None`), and
/// returns the result with its PNG text chunks.
pub fn run_one(
    engine: &Engine,
    image: &image::RgbaImage,
    mask: &image::GrayImage,
    req: &InpaintRequest,
    bar: Option<&ProgressBar>,
) -> Result<(inpaint::InpaintOutput, Vec<(&'static str, String)>)> {
    match engine {
        Engine::Classical(why) => {
            let out = inpaint::run_classical(image, mask, req)?;
            let (w, h) = out.image.dimensions();
            let text = vec![
                (
                    "parameters",
                    format!(
                        "{}\nEngine: classical fill (PatchMatch / Telea), Size: {w}x{h}, Mask blur: {}, Version: clearpaint {}",
                        req.prompt,
                        req.mask_blur,
                        env!("CARGO_PKG_VERSION")
                    ),
                ),
                ("clearpaint:engine", format!("classical ({why})")),
                (
                    "Software",
                    format!("clearpaint {}", env!("CARGO_PKG_VERSION")),
                ),
            ];
            Ok((out, text))
        }
        Engine::Diffusion(models) => {
            let result = with_bar(req, bar, |progress, cancel| {
                inpaint::run(models, image, mask, req, progress, cancel)
            });
            let out = result?;
            let (w, h) = out.work_size;
            let mut text = png_text(req, models, w, h);
            text.push(("clearpaint:engine", "diffusion".to_string()));
            Ok((out, text))
        }
        Engine::Example(models, exemplar) => {
            let result = with_bar(req, bar, |progress, cancel| {
                example::run(models, image, mask, &exemplar.image, req, progress, cancel)
            });
            let out = result?;
            let (w, h) = out.work_size;
            let params =
                example::a1111_parameters(req, &models.sd.model_name, &exemplar.name, w, h);
            let text = vec![
                ("parameters", params),
                ("clearpaint:engine", "paint-by-example".to_string()),
                (
                    "Software",
                    format!("clearpaint {}", env!("CARGO_PKG_VERSION")),
                ),
            ];
            Ok((out, text))
        }
    }
}

/// Runs `f` with step progress shown on `bar` (a new bar when `None`), cleared at the end.
fn with_bar<T>(
    req: &InpaintRequest,
    bar: Option<&ProgressBar>,
    f: impl FnOnce(&dyn clearpaint_core::progress::Progress, &CancelToken) -> T,
) -> T {
    let own;
    let bar = match bar {
        Some(b) => b,
        None => {
            own = ProgressBar::new(req.steps as u64);
            step_bar(&own);
            &own
        }
    };
    let progress = |stage: &str, done: usize, total: usize| {
        bar.set_message(stage.to_string());
        bar.set_length(total as u64);
        bar.set_position(done as u64);
    };
    let result = f(&progress, &CancelToken::new());
    bar.finish_and_clear();
    result
}

/// PNG text chunks of an inpainting result.
pub fn png_text(
    req: &InpaintRequest,
    models: &InpaintModels,
    w: u32,
    h: u32,
) -> Vec<(&'static str, String)> {
    vec![
        ("parameters", inpaint::a1111_parameters(req, models, w, h)),
        (
            "Software",
            format!("clearpaint {}", env!("CARGO_PKG_VERSION")),
        ),
    ]
}
