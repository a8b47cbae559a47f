//! Which layer a LoRA tensor belongs to, in the key formats people have. Every layer is named
//! in one normal form: the model (`unet` / `te`) and the diffusers module path with `.` as `_`
//! (kohya's form, which is also how A1111 matches layers).
//!
//! - kohya / A1111: `lora_unet_<module>.<part>`, `lora_te_<module>.<part>`
//!   (parts `lora_down.weight`, `lora_up.weight`, `lora_mid.weight`, `alpha`, LyCORIS `hada_*`,
//!   `lokr_*`);
//! - diffusers / PEFT: `unet.<module>.lora_A.weight` / `lora_B.weight`, `text_encoder.<module>…`;
//! - older diffusers: `<module>.processor.to_q_lora.down.weight` (UNet attention processors),
//!   `text_encoder.<module>.lora_linear_layer.up.weight`.

/// The network a LoRA layer patches.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Net {
    Unet,
    Text,
}

impl Net {
    pub fn name(self) -> &'static str {
        match self {
            Net::Unet => "UNet",
            Net::Text => "text encoder",
        }
    }
}

/// A tensor's layer (net, module in `_` form) and its part in the normal (kohya / LyCORIS)
/// naming: `lora_down.weight`, `lora_up.weight`, `lora_mid.weight`, `alpha`, `hada_w1_a`, ….
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LayerKey {
    pub net: Net,
    pub module: String,
    pub part: String,
}

const KOHYA_PARTS: [&str; 16] = [
    "lora_down.weight",
    "lora_up.weight",
    "lora_mid.weight",
    "alpha",
    "scale",
    "hada_w1_a",
    "hada_w1_b",
    "hada_w2_a",
    "hada_w2_b",
    "hada_t1",
    "hada_t2",
    "lokr_w1",
    "lokr_w1_a",
    "lokr_w1_b",
    "lokr_w2",
    "lokr_w2_a",
];
const KOHYA_MORE: [&str; 3] = ["lokr_w2_b", "lokr_t2", "dora_scale"];

/// The layer of one file key, or `None` for a key no known format uses.
pub fn parse(key: &str) -> Option<LayerKey> {
    kohya(key)
        .or_else(|| peft(key))
        .or_else(|| old_diffusers(key))
}

fn kohya(key: &str) -> Option<LayerKey> {
    let (net, rest) = if let Some(r) = key.strip_prefix("lora_unet_") {
        (Net::Unet, r)
    } else if let Some(r) = key.strip_prefix("lora_te_") {
        (Net::Text, r)
    } else {
        return None;
    };
    let (module, part) = rest.split_once('.')?;
    KOHYA_PARTS
        .iter()
        .chain(&KOHYA_MORE)
        .any(|p| *p == part)
        .then(|| LayerKey {
            net,
            module: module.to_string(),
            part: part.to_string(),
        })
}

fn peft(key: &str) -> Option<LayerKey> {
    let (net, rest) = if let Some(r) = key.strip_prefix("unet.") {
        (Net::Unet, r)
    } else if let Some(r) = key.strip_prefix("text_encoder.") {
        (Net::Text, r)
    } else {
        return None;
    };
    let parts = [
        (".lora_A.weight", "lora_down.weight"),
        (".lora_B.weight", "lora_up.weight"),
        (".lora.down.weight", "lora_down.weight"),
        (".lora.up.weight", "lora_up.weight"),
        (".lora_linear_layer.down.weight", "lora_down.weight"),
        (".lora_linear_layer.up.weight", "lora_up.weight"),
        (".alpha", "alpha"),
    ];
    parts.iter().find_map(|(suffix, part)| {
        let module = rest.strip_suffix(suffix)?;
        let module = processor_module(module).unwrap_or_else(|| module.to_string());
        Some(LayerKey {
            net,
            module: module.replace('.', "_"),
            part: part.to_string(),
        })
    })
}

/// `…attn1.processor.to_q_lora` → `…attn1.to_q` (`to_out_lora` → `to_out.0`).
fn processor_module(module: &str) -> Option<String> {
    let (attn, proj) = module.split_once(".processor.")?;
    let proj = proj.strip_suffix("_lora")?;
    let proj = if proj == "to_out" { "to_out.0" } else { proj };
    Some(format!("{attn}.{proj}"))
}

fn old_diffusers(key: &str) -> Option<LayerKey> {
    let key = key.strip_prefix("unet.").unwrap_or(key);
    let (module, part) = if let Some(m) = key.strip_suffix(".down.weight") {
        (m, "lora_down.weight")
    } else {
        (key.strip_suffix(".up.weight")?, "lora_up.weight")
    };
    let module = processor_module(module)?;
    Some(LayerKey {
        net: Net::Unet,
        module: module.replace('.', "_"),
        part: part.to_string(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn k(net: Net, module: &str, part: &str) -> Option<LayerKey> {
        Some(LayerKey {
            net,
            module: module.into(),
            part: part.into(),
        })
    }

    #[test]
    fn the_formats_name_the_same_layer() {
        let m = "down_blocks_0_attentions_0_transformer_blocks_0_attn1_to_q";
        assert_eq!(
            parse(&format!("lora_unet_{m}.lora_down.weight")),
            k(Net::Unet, m, "lora_down.weight")
        );
        assert_eq!(
            parse("unet.down_blocks.0.attentions.0.transformer_blocks.0.attn1.to_q.lora_B.weight"),
            k(Net::Unet, m, "lora_up.weight")
        );
        assert_eq!(
            parse(
                "down_blocks.0.attentions.0.transformer_blocks.0.attn1.processor.to_q_lora.down.weight"
            ),
            k(Net::Unet, m, "lora_down.weight")
        );
        assert_eq!(
            parse(
                "unet.mid_block.attentions.0.transformer_blocks.0.attn2.processor.to_out_lora.up.weight"
            ),
            k(
                Net::Unet,
                "mid_block_attentions_0_transformer_blocks_0_attn2_to_out_0",
                "lora_up.weight"
            )
        );
        let te = "text_model_encoder_layers_0_self_attn_q_proj";
        assert_eq!(
            parse(&format!("lora_te_{te}.alpha")),
            k(Net::Text, te, "alpha")
        );
        assert_eq!(
            parse("text_encoder.text_model.encoder.layers.0.self_attn.q_proj.lora_A.weight"),
            k(Net::Text, te, "lora_down.weight")
        );
        assert_eq!(
            parse("lora_unet_conv_in.hada_w1_a"),
            k(Net::Unet, "conv_in", "hada_w1_a")
        );
        assert_eq!(parse("lora_te1_text_model_x.lora_down.weight"), None);
        assert_eq!(parse("model.diffusion_model.input_blocks.0.0.weight"), None);
    }
}
