//! A1111's extra-network tags (`modules/extra_networks.py`): `<lora:NAME:TE_WEIGHT:UNET_WEIGHT>`
//! in a prompt names a LoRA and its weights, and is removed from the text before it is encoded.
//! The weights are positional or named (`te=`, `unet=`); the UNet weight defaults to the text
//! encoder's, which defaults to 1. `lyco` is the same as `lora`; other kinds are kept as notes.

use std::sync::LazyLock;

use regex::Regex;

static TAG: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r"<(\w+):([^>]+)>").expect("static regex"));

/// One `<lora:…>` tag.
#[derive(Debug, Clone, PartialEq)]
pub struct LoraTag {
    pub name: String,
    pub te: f64,
    pub unet: f64,
}

/// The prompt without its tags, the LoRA tags, and the tags of kinds clearpaint ignores.
pub fn extract(prompt: &str) -> Result<(String, Vec<LoraTag>, Vec<String>), String> {
    let mut loras = Vec::new();
    let mut ignored = Vec::new();
    for c in TAG.captures_iter(prompt) {
        let kind = &c[1];
        if kind != "lora" && kind != "lyco" {
            ignored.push(c[0].to_string());
            continue;
        }
        loras.push(lora_tag(&c[0], &c[2])?);
    }
    Ok((TAG.replace_all(prompt, "").into_owned(), loras, ignored))
}

fn lora_tag(tag: &str, args: &str) -> Result<LoraTag, String> {
    let mut positional = Vec::new();
    let (mut te, mut unet) = (None, None);
    for a in args.split(':') {
        match a.split_once('=') {
            Some(("te", v)) => te = Some(v),
            Some(("unet", v)) => unet = Some(v),
            Some(_) => {}
            None => positional.push(a),
        }
    }
    let name = positional.first().copied().unwrap_or("").trim();
    if name.is_empty() {
        return Err(format!("{tag}: no LoRA name"));
    }
    let num = |v: &str| -> Result<f64, String> {
        v.trim()
            .parse::<f64>()
            .ok()
            .filter(|w| w.is_finite())
            .ok_or_else(|| format!("{tag}: the weight {v:?} is not a number"))
    };
    let te = num(te.or(positional.get(1).copied()).unwrap_or("1"))?;
    let unet = match unet.or(positional.get(2).copied()) {
        Some(v) => num(v)?,
        None => te,
    };
    Ok(LoraTag {
        name: name.to_string(),
        te,
        unet,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tag(name: &str, te: f64, unet: f64) -> LoraTag {
        LoraTag {
            name: name.into(),
            te,
            unet,
        }
    }

    #[test]
    fn tags_are_read_and_removed() {
        let (text, loras, ignored) =
            extract("a cat <lora:ghibli:0.8>, <lora:x:0.5:1.2> <hypernet:h:1> <lyco:y>").unwrap();
        assert_eq!(text, "a cat ,   ");
        assert_eq!(
            loras,
            vec![
                tag("ghibli", 0.8, 0.8),
                tag("x", 0.5, 1.2),
                tag("y", 1.0, 1.0)
            ]
        );
        assert_eq!(ignored, vec!["<hypernet:h:1>".to_string()]);
        let (_, l, _) = extract("<lora:z:unet=0.3:te=0.1>").unwrap();
        assert_eq!(l, vec![tag("z", 0.1, 0.3)]);
        assert!(extract("<lora:z:abc>").unwrap_err().contains("abc"));
        assert!(extract("<lora:z:inf>").is_err());
    }
}
