//! The three batch jobs, each as plan → pipeline (read ahead, model, write behind) → report.

use std::collections::HashSet;
use std::path::Path;

use anyhow::{Result, bail};
use clearpaint_core::batch::{self, Report};
use clearpaint_core::device::DeviceChoice;
use clearpaint_core::imaging::{self, Loaded};
use clearpaint_core::models::augan::{AuganGenerator, Direction};
use clearpaint_core::pipelines::weather::{self, WeatherRequest};
use image::{GrayImage, RgbaImage};
use indicatif::ProgressBar;

use super::pipeline::{self, Stages};
use super::store::{Created, Place};
use super::{
    BatchGenerateArgs, BatchInpaintArgs, BatchWeatherArgs, Item, Tally, already_done, plan,
};
use crate::inpaint::{random_seed, run_one, step_bar};

fn load(place: &Place, key: &str) -> Result<Loaded> {
    Ok(imaging::load_bytes(&place.show(key), &place.read(key)?)?)
}

fn software() -> (&'static str, String) {
    (
        "Software",
        format!("clearpaint {}", env!("CARGO_PKG_VERSION")),
    )
}

/// Where masks come from: one for every image, or a folder / prefix matched by stem.
enum Masks {
    One(GrayImage),
    Dir { place: Place, keys: HashSet<String> },
}

impl Masks {
    fn open(arg: &str) -> Result<Masks> {
        let place = Place::parse(arg)?;
        let single = match &place {
            Place::Local(p) if p.is_file() => true,
            Place::Local(p) if !p.is_dir() => {
                bail!("{}: no such mask file or folder", p.display())
            }
            Place::Local(_) => false,
            Place::Remote(_) => imaging::is_image_path(Path::new(arg)),
        };
        if single {
            let (dir, name) = match &place {
                Place::Local(p) => (
                    Place::Local(p.parent().unwrap_or(Path::new("")).to_path_buf()),
                    p.file_name()
                        .unwrap_or_default()
                        .to_string_lossy()
                        .to_string(),
                ),
                Place::Remote(_) => {
                    let (d, n) = arg
                        .trim_end_matches('/')
                        .rsplit_once('/')
                        .unwrap_or(("", arg));
                    (Place::parse(d)?, n.to_string())
                }
            };
            let mask = load(&dir, &name)?;
            return Ok(Masks::One(
                image::DynamicImage::ImageRgba8(mask.rgba).to_luma8(),
            ));
        }
        let keys = place.list_images(true)?.into_iter().collect();
        Ok(Masks::Dir { place, keys })
    }

    /// The mask key for image `key`: `photo.png` or `photo_mask.png` (any image extension),
    /// in the same relative folder. `None` for the single mask.
    fn key_for(&self, key: &str) -> Option<Option<String>> {
        let Masks::Dir { keys, .. } = self else {
            return Some(None);
        };
        let rel = Path::new(key);
        let stem = rel.file_stem()?.to_string_lossy().to_string();
        let parent = batch::portable(rel.parent().unwrap_or(Path::new("")));
        let dir = if parent.is_empty() {
            String::new()
        } else {
            format!("{parent}/")
        };
        for name in [stem.clone(), format!("{stem}_mask")] {
            for ext in imaging::IMAGE_EXTENSIONS {
                let k = format!("{dir}{name}.{ext}");
                if keys.contains(&k) {
                    return Some(Some(k));
                }
            }
        }
        None
    }

    fn load(&self, item: &Item) -> Result<GrayImage> {
        match (self, &item.mask) {
            (Masks::One(m), _) => Ok(m.clone()),
            (Masks::Dir { place, .. }, Some(k)) => {
                let m = load(place, k)?;
                Ok(image::DynamicImage::ImageRgba8(m.rgba).to_luma8())
            }
            (Masks::Dir { .. }, None) => bail!("{}: no mask", item.key),
        }
    }
}

pub fn inpaint_folder(a: &BatchInpaintArgs, choice: DeviceChoice) -> Result<()> {
    let input = Place::parse(&a.images)?;
    let masks = Masks::open(&a.masks)?;
    let out = a.common.out_place(Some(&input))?;
    let shard = a.common.shard()?;
    let mut report = Report::default();
    let mut todo = Vec::new();
    for mut item in plan(&input, &a.common, &out, &[""], shard, &mut report)? {
        match masks.key_for(&item.key) {
            Some(k) => {
                item.mask = k;
                todo.push(item);
            }
            None => {
                eprintln!("warning: {}: no mask, skipped", item.key);
                report.skip(Path::new(&item.key), "no mask");
            }
        }
    }
    let base_seed = a.opts.sd.seed.unwrap_or_else(random_seed);
    a.opts
        .request(base_seed, None)
        .validate()
        .map_err(anyhow::Error::msg)?;
    let engine = a.opts.engine(choice, false)?;
    eprintln!("base seed {base_seed}; {} image(s) to do", todo.len());
    let tally = Tally::new(report, todo.len());
    let steps = tally.multi.add(ProgressBar::new(a.opts.sd.steps as u64));
    step_bar(&steps);
    let read = |item: &Item| -> Result<Option<(Loaded, GrayImage)>> {
        if already_done(&a.common, &out, item)? {
            return Ok(None);
        }
        Ok(Some((load(&input, &item.key)?, masks.load(item)?)))
    };
    let mut compute = |item: &Item, (img, mask): (Loaded, GrayImage)| {
        let req = a
            .opts
            .request(batch::derive_seed(base_seed, item.rel()), None);
        steps.reset();
        let (result, text) = run_one(&engine, &img.rgba, &mask, &req, Some(&steps))?;
        Ok((result.image, img.has_alpha, text))
    };
    let save = |item: &Item, (img, alpha, text): (RgbaImage, bool, Vec<(&str, String)>)| {
        let png = imaging::encode_png(&img, alpha, &text)
            .map_err(|e| anyhow::anyhow!("{}: {e}", out.show(&item.outs[0])))?;
        a.common.write(&out, &item.outs[0], png)
    };
    let record = |item: &Item, r| tally.record(item, r);
    pipeline::run(
        &todo,
        a.common.prefetch,
        Stages::new(&read, &mut compute, &save, &record),
    );
    steps.finish_and_clear();
    tally.finish("batch inpaint", &a.common, &out, shard)
}

pub fn weather_folder(a: &BatchWeatherArgs, choice: DeviceChoice) -> Result<()> {
    let input = Place::parse(&a.input)?;
    let out = a.common.out_place(Some(&input))?;
    let shard = a.common.shard()?;
    let mut report = Report::default();
    let suffixes: &[&str] = if a.uncertainty {
        &["", "_uncertainty"]
    } else {
        &[""]
    };
    let todo = plan(&input, &a.common, &out, suffixes, shard, &mut report)?;
    if a.uncertainty && a.direction == Direction::DayToNight {
        bail!("--uncertainty: only the night-to-day generator has an uncertainty head");
    }
    let selected = clearpaint::placement::select(choice)?;
    let (model, _) = AuganGenerator::load_direction(&a.model, a.direction, &selected.device)?;
    if a.uncertainty && !model.has_uncertainty() {
        bail!(
            "{}: this AU-GAN file has no uncertainty head",
            a.model.display()
        );
    }
    let req = WeatherRequest {
        size: a.size,
        uncertainty: a.uncertainty,
    };
    let text = vec![
        software(),
        (
            "clearpaint:operation",
            format!("weather {}", a.direction.name()),
        ),
        ("clearpaint:size", a.size.to_string()),
    ];
    let tally = Tally::new(report, todo.len());
    let read = |item: &Item| -> Result<Option<Loaded>> {
        if already_done(&a.common, &out, item)? {
            return Ok(None);
        }
        Ok(Some(load(&input, &item.key)?))
    };
    let mut compute = |_: &Item, img: Loaded| {
        let r = weather::run(&model, &selected.device, &img.rgba, &req)?;
        Ok((r.sigma_image(), r.image, img.has_alpha))
    };
    let save = |item: &Item, (sigma, img, alpha): (Option<RgbaImage>, RgbaImage, bool)| {
        let encode = |img: &RgbaImage, alpha: bool, key: &str| {
            imaging::encode_png(img, alpha, &text)
                .map_err(|e| anyhow::anyhow!("{}: {e}", out.show(key)))
        };
        // The uncertainty map first: the image, written last, marks the item as done.
        if let (Some(key), Some(s)) = (item.outs.get(1), &sigma) {
            a.common.write(&out, key, encode(s, false, key)?)?;
        }
        a.common
            .write(&out, &item.outs[0], encode(&img, alpha, &item.outs[0])?)
    };
    let record = |item: &Item, r| tally.record(item, r);
    pipeline::run(
        &todo,
        a.common.prefetch,
        Stages::new(&read, &mut compute, &save, &record),
    );
    tally.finish("batch weather", &a.common, &out, shard)
}

/// The most images `--images-per-prompt` asks for.
const MAX_PER_PROMPT: usize = 1000;

pub fn generate_prompts(a: &BatchGenerateArgs, choice: DeviceChoice) -> Result<()> {
    use clearpaint_core::pipelines::generate::{self, GenerateRequest};
    if a.common.recursive || a.common.manifest.is_some() {
        bail!(
            "--recursive and --manifest do not apply to batch generate (its input is one prompts file)"
        );
    }
    if a.images_per_prompt == 0 || a.images_per_prompt > MAX_PER_PROMPT {
        bail!("--images-per-prompt must be between 1 and {MAX_PER_PROMPT}");
    }
    let prompts = batch::read_prompts(&a.prompts)?;
    let base_seed = a.sd.seed.unwrap_or_else(random_seed);
    let request = |prompt: &str, seed: u64| GenerateRequest {
        base: clearpaint_core::pipelines::inpaint::InpaintRequest {
            prompt: prompt.to_string(),
            ..a.sd.request(seed, None)
        },
        width: a.width,
        height: a.height,
    };
    // The shared options (size, steps, ...) are checked once, before any model loads.
    request("", base_seed)
        .validate()
        .map_err(anyhow::Error::msg)?;
    let out = a.common.out_place(None)?;
    let shard = a.common.shard()?;
    let mut report = Report::default();
    let mut todo = Vec::new();
    for p in &prompts {
        for k in 0..a.images_per_prompt {
            let rel = batch::prompt_output(p.line, k, a.images_per_prompt);
            if shard.is_some_and(|s| !s.contains(&rel)) {
                continue;
            }
            let key = batch::portable(&rel);
            if !a.common.overwrite && out.local().is_some() && out.exists(&key)? {
                report.skip(&rel, batch::OUTPUT_EXISTS);
                continue;
            }
            todo.push((
                Item {
                    key: key.clone(),
                    outs: vec![key],
                    mask: None,
                },
                p.prompt.as_str(),
            ));
        }
    }
    let models = a.sd.load(choice)?;
    eprintln!("base seed {base_seed}; {} image(s) to do", todo.len());
    let tally = Tally::new(report, todo.len());
    let steps = tally.multi.add(ProgressBar::new(a.sd.steps as u64));
    step_bar(&steps);
    let read = |(item, _): &(Item, &str)| -> Result<Option<()>> {
        Ok((!already_done(&a.common, &out, item)?).then_some(()))
    };
    let mut compute = |(item, prompt): &(Item, &str), ()| -> Result<Vec<u8>> {
        let req = request(prompt, batch::derive_seed(base_seed, item.rel()));
        req.validate().map_err(anyhow::Error::msg)?;
        steps.reset();
        let progress = |_: &str, done: usize, total: usize| {
            steps.set_length(total as u64);
            steps.set_position(done as u64);
        };
        let cancel = clearpaint_core::progress::CancelToken::new();
        let result = generate::run(&models, &req, &progress, &cancel)?;
        let params =
            generate::a1111_parameters(&req.base, &models.sd.model_name, a.width, a.height, false);
        imaging::encode_png(&result.image, false, &[("parameters", params), software()])
            .map_err(|e| anyhow::anyhow!("{}: {e}", out.show(&item.key)))
    };
    let save = |(item, _): &(Item, &str), png: Vec<u8>| -> Result<Created> {
        a.common.write(&out, &item.key, png)
    };
    let record = |(item, _): &(Item, &str), r| tally.record(item, r);
    pipeline::run(
        &todo,
        a.common.prefetch,
        Stages::new(&read, &mut compute, &save, &record),
    );
    steps.finish_and_clear();
    tally.finish("batch generate", &a.common, &out, shard)
}
