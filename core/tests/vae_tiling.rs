//! Tiled decoding: the tiling arithmetic is exact for a local operation, a tiled VAE decode
//! stays close to the whole decode, and large images are tiled only when a tensor would not
//! fit the device.

use burn::tensor::{Device, Tensor, TensorData};
use clearpaint_core::models::vae::{self, Tiling, VaeConfig, tiled_map, upsample_nearest2};
use clearpaint_core::testing::{fixture, load_tensor, rel_err, test_devices, to_vec};
use clearpaint_core::weights::SafetensorsFile;

fn local_op(t: Tensor<4>) -> Tensor<4> {
    // A purely local map with an 8x size change: tiling must not change it at all.
    let up = upsample_nearest2(upsample_nearest2(upsample_nearest2(t)));
    (up.clone() * 2.0 + 1.0).tanh() * up.sin()
}

#[test]
fn tiling_is_exact_for_local_operations() {
    let dev = Device::flex();
    let n = 4 * 13 * 21;
    let data: Vec<f32> = (0..n)
        .map(|i| ((i * 37 % 101) as f32 / 50.0) - 1.0)
        .collect();
    let z: Tensor<4> = Tensor::from_data(TensorData::new(data, [1, 4, 13, 21]), &dev);
    let whole = to_vec(local_op(z.clone()));
    for tiling in [
        Tiling {
            tile: 6,
            overlap: 2,
        },
        Tiling {
            tile: 8,
            overlap: 3,
        },
        Tiling {
            tile: 5,
            overlap: 0,
        },
        Tiling {
            tile: 32,
            overlap: 8,
        },
    ] {
        let tiled = tiled_map(z.clone(), tiling, 8, |t, _, _| local_op(t));
        assert_eq!(tiled.dims(), [1, 4, 104, 168]);
        let err = rel_err(&to_vec(tiled), &whole);
        assert!(err < 1e-6, "{tiling:?}: {err}");
    }
}

#[test]
fn tiled_decode_matches_per_tile_decodes() {
    let io = SafetensorsFile::open(fixture("vae_asym_tiny_io.safetensors")).unwrap();
    for dev in test_devices() {
        let loaded = vae::load_folder(fixture("vae_asym_tiny"), &dev.device).unwrap();
        let m = &loaded.model;
        let f = loaded.config.scale_factor();
        let x = load_tensor::<4>(&io, "x", &dev.device);
        let mask = load_tensor::<4>(&io, "mask", &dev.device);
        let z = load_tensor::<4>(&io, "z", &dev.device);
        let whole = to_vec(m.decode(z.clone(), Some((x.clone(), mask.clone()))));
        // One tile covering everything: identical.
        let one = m.decode_tiled(
            z.clone(),
            Some((x.clone(), mask.clone())),
            Tiling {
                tile: 8,
                overlap: 2,
            },
            f,
        );
        assert!(rel_err(&to_vec(one), &whole) < 1e-5);
        // Real tiles (latent 4x5, tile 3, overlap 1: tiles start at rows 0, 1 and columns
        // 0, 2). Where only one tile covers the output, the result is exactly that tile's own
        // decode with the image and mask cropped to it.
        let tiling = Tiling {
            tile: 3,
            overlap: 1,
        };
        let tiled = m.decode_tiled(z.clone(), Some((x.clone(), mask.clone())), tiling, f);
        assert_eq!(tiled.dims(), [1, 3, 32, 40]);
        let crop = |t: &Tensor<4>, y: std::ops::Range<usize>, x: std::ops::Range<usize>| {
            let [b, c, _, _] = t.dims();
            t.clone().slice([0..b, 0..c, y, x])
        };
        let first = m.decode(
            crop(&z, 0..3, 0..3),
            Some((crop(&x, 0..24, 0..24), crop(&mask, 0..24, 0..24))),
        );
        let err = rel_err(
            &to_vec(crop(&tiled, 0..8, 0..16)),
            &to_vec(crop(&first, 0..8, 0..16)),
        );
        assert!(err < 1e-5, "first tile region on {}: {err}", dev.name);
        let last = m.decode(
            crop(&z, 1..4, 2..5),
            Some((crop(&x, 8..32, 16..40), crop(&mask, 8..32, 16..40))),
        );
        let err = rel_err(
            &to_vec(crop(&tiled, 24..32, 24..40)),
            &to_vec(crop(&last, 16..24, 8..24)),
        );
        assert!(err < 1e-5, "last tile region on {}: {err}", dev.name);
        // And tiles do change the seams (the whole decode is not what tiling returns).
        assert!(rel_err(&to_vec(tiled), &whole) > 1e-3);
    }
}

#[test]
fn large_images_are_tiled_only_when_needed() {
    let x15 = VaeConfig::asymmetric_x1_5();
    let lavapipe = 128u64 << 20;
    // 512x512 (64x64 latents) on the CPU: whole.
    assert_eq!(x15.choose_tiling(1, 64, 64, 4 << 30), None);
    // 1024x1024 on a 128 MiB-binding GPU: tiles, each of which fits.
    assert!(x15.decode_peak_bytes(1, 128, 128) > lavapipe);
    let t = x15.choose_tiling(1, 128, 128, lavapipe).expect("must tile");
    assert!(
        x15.decode_peak_bytes(1, t.tile, t.tile) <= lavapipe,
        "{t:?}"
    );
    assert!(
        t.tile >= 16 && t.tile.is_multiple_of(8) && t.overlap == t.tile / 4,
        "{t:?}"
    );

    // decode_within on a tiny model: a small budget forces tiles, a large one does not.
    let dev = Device::flex();
    let loaded = vae::load_folder(fixture("vae_kl_tiny"), &dev).unwrap();
    let io = SafetensorsFile::open(fixture("vae_kl_tiny_io.safetensors")).unwrap();
    let z = load_tensor::<4>(&io, "z", &dev);
    let whole = loaded
        .model
        .decode_within(&loaded.config, z.clone(), None, 1 << 30);
    assert_eq!(whole.tiling, None);
    let peak = loaded.config.decode_peak_bytes(1, 8, 12);
    let tiled = loaded
        .model
        .decode_within(&loaded.config, z, None, peak / 2);
    assert!(tiled.tiling.is_some());
    assert!(!tiled.redone_in_f32);
    assert_eq!(tiled.image.dims(), [1, 3, 16, 24]);
}
