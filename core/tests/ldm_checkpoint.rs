//! Single-file SD 1.x checkpoints in the LDM layout (tools/reference/make_ldm_fixture.py: a
//! random-weight diffusers folder converted by diffusers' own
//! convert_diffusers_to_original_stable_diffusion.py). The configs inferred from the shapes
//! equal the folder's, and the UNet, VAE and text encoder loaded from the single file give the
//! diffusers folder's outputs.

use burn::tensor::Tensor;
use clearpaint_core::models::unet::PerBlock;
use clearpaint_core::models::{clip, ldm};
use clearpaint_core::testing::{
    TestDevice, assert_close, fixture, load_tensor, test_devices, to_vec,
};
use clearpaint_core::weights::SafetensorsFile;

fn check<const D: usize>(
    dev: &TestDevice,
    what: &str,
    ours: Tensor<D>,
    io: &SafetensorsFile,
    key: &str,
) {
    assert_eq!(ours.dims().to_vec(), io.entry(key).unwrap().shape, "{what}");
    assert_close(
        &format!("{what} on {}", dev.name),
        &to_vec(ours),
        &io.read_f32(key).unwrap(),
        dev.tolerance,
    );
}

fn checkpoint() -> SafetensorsFile {
    SafetensorsFile::open(fixture("sd15_ldm_tiny.safetensors")).unwrap()
}

#[test]
fn configs_are_inferred_from_the_shapes() {
    let file = checkpoint();
    assert!(ldm::is_ldm_checkpoint(&file));
    let u = ldm::unet_config(&file).unwrap();
    assert_eq!(u.in_channels, 9, "9 input channels: an inpainting UNet");
    assert_eq!(u.out_channels, 4);
    assert_eq!(u.block_out_channels, vec![32, 32, 32, 32]);
    assert_eq!(u.layers_per_block, 2);
    assert_eq!(
        u.down_block_types,
        [
            "CrossAttnDownBlock2D",
            "CrossAttnDownBlock2D",
            "CrossAttnDownBlock2D",
            "DownBlock2D"
        ]
    );
    assert_eq!(
        u.up_block_types,
        [
            "UpBlock2D",
            "CrossAttnUpBlock2D",
            "CrossAttnUpBlock2D",
            "CrossAttnUpBlock2D"
        ]
    );
    assert_eq!(u.cross_attention_dim, 64);
    assert!(!u.use_linear_projection);
    assert_eq!(u.heads(0), 8);
    assert!(matches!(u.attention_head_dim, PerBlock::One(8)));

    let v = ldm::vae_config(&file).unwrap();
    assert_eq!(v.down_channels, vec![32, 32, 32, 32]);
    assert_eq!(v.up_channels, vec![32, 32, 32, 32]);
    assert_eq!((v.layers_down, v.layers_up), (2, 2));
    assert_eq!(v.latent_channels, 4);
    assert!(!v.asymmetric && v.mid_attention && v.use_quant_conv);
    assert_eq!(v.scaling_factor, 0.18215);

    let t = ldm::text_config(&file).unwrap();
    assert_eq!(
        (t.vocab_size, t.hidden_size, t.intermediate_size),
        (1000, 64, 256)
    );
    assert_eq!(
        (
            t.num_hidden_layers,
            t.num_attention_heads,
            t.max_position_embeddings
        ),
        (2, 1, 77)
    );
    assert_eq!(t.hidden_act, "quick_gelu");
}

#[test]
fn single_file_models_match_the_diffusers_folder() {
    let file = checkpoint();
    let io = SafetensorsFile::open(fixture("sd15_ldm_tiny_io.safetensors")).unwrap();
    let ids: Vec<Vec<u32>> = vec![
        io.read_ints("ids")
            .unwrap()
            .iter()
            .map(|&v| v as u32)
            .collect(),
    ];
    for dev in test_devices() {
        let te = ldm::load_text_encoder(&file, &dev.device).unwrap();
        // Every text-encoder tensor of the file was used; position_ids, the UNet's and the
        // VAE's tensors and the scheduler buffers were skipped, not reported.
        assert!(te.report.is_complete(), "{}", te.report);
        let hidden = te.model.forward(clip::ids_tensor(&ids, &dev.device));
        check(&dev, "text encoder", hidden, &io, "hidden");

        let unet = ldm::load_unet(&file, &dev.device).unwrap();
        assert!(unet.report.is_complete(), "{}", unet.report);
        let ctx = load_tensor::<3>(&io, "hidden", &dev.device);
        let noise = unet.model.forward(
            load_tensor::<4>(&io, "sample", &dev.device),
            &io.read_f32("timestep").unwrap(),
            &ctx,
        );
        check(&dev, "UNet", noise, &io, "noise");

        let vae = ldm::load_vae(&file, &dev.device).unwrap();
        assert!(vae.report.is_complete(), "{}", vae.report);
        let mean = vae
            .model
            .encode(load_tensor::<4>(&io, "image", &dev.device))
            .mean;
        check(&dev, "VAE encode (mean)", mean, &io, "mean");
        let decoded = vae
            .model
            .decode(load_tensor::<4>(&io, "latents", &dev.device), None);
        check(&dev, "VAE decode", decoded, &io, "decoded");
    }
}

#[test]
fn a_partial_checkpoint_names_what_is_missing() {
    // A checkpoint without its text encoder (some merges ship UNet + VAE only).
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("no_text.safetensors");
    let file = checkpoint();
    let keep: Vec<String> = file
        .keys()
        .filter(|k| !k.starts_with(ldm::TEXT_PREFIX))
        .map(str::to_string)
        .collect();
    clearpaint_core::testing::copy_tensors(&file, &keep, &path);
    let partial = SafetensorsFile::open(&path).unwrap();
    let err = ldm::text_config(&partial).unwrap_err().to_string();
    assert!(err.contains("no_text.safetensors"), "{err}");
    assert!(
        err.contains("cond_stage_model.transformer.embeddings.token_embedding.weight"),
        "{err}"
    );
    // The UNet still loads.
    let dev = &test_devices()[0];
    ldm::load_unet(&partial, &dev.device).unwrap();
}
