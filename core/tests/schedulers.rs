//! Schedulers against diffusers with SD 1.5's config (tools/reference/make_scheduler_fixtures.py):
//! timesteps, sigmas, init_noise_sigma, scale_model_input, every step() output of a run on fixed
//! model outputs (and fixed noise for DDIM eta > 0 and Euler Ancestral), and add_noise.

use burn::tensor::Device;
use clearpaint_core::schedulers::{Scheduler, SchedulerConfig, SchedulerKind};
use clearpaint_core::testing::{fixture, load_tensor, rel_err, to_vec};
use clearpaint_core::weights::SafetensorsFile;

fn floats(f: &SafetensorsFile, key: &str) -> Vec<f64> {
    f.read_f32(key)
        .unwrap()
        .into_iter()
        .map(|v| v as f64)
        .collect()
}

fn run(name: &str, kind: SchedulerKind, config: SchedulerConfig, n: usize, eta: f64) {
    let f = SafetensorsFile::open(fixture("schedulers.safetensors")).unwrap();
    let dev = Device::flex();
    let mut s = Scheduler::new(kind, config);
    s.eta = eta;
    s.set_timesteps(n);
    assert_eq!(
        s.timesteps,
        floats(&f, &format!("{name}.timesteps")),
        "{name}: timesteps"
    );
    if let Some(e) = f.entry(&format!("{name}.sigmas")) {
        let want = floats(&f, &format!("{name}.sigmas"));
        assert_eq!(e.shape[0], s.sigmas.len(), "{name}: sigma count");
        for (a, b) in s.sigmas.iter().zip(&want) {
            // diffusers accumulates alphas_cumprod in f32; ours is f64 (differences ~1e-5 at small sigma).
            assert!(
                (a - b).abs() <= 1e-4 * b.abs().max(1e-3),
                "{name}: sigmas {:?} vs {want:?}",
                s.sigmas
            );
        }
    }
    let ins = floats(&f, &format!("{name}.init_noise_sigma"))[0];
    assert!(
        (s.init_noise_sigma() - ins).abs() < 1e-4 * ins,
        "{name}: init_noise_sigma"
    );
    let mut x = load_tensor::<4>(&f, &format!("{name}.x0"), &dev);
    for k in 0..s.timesteps.len() {
        let scaled = s.scale_model_input(x.clone());
        let err = rel_err(
            &to_vec(scaled),
            &f.read_f32(&format!("{name}.scaled.{k}")).unwrap(),
        );
        assert!(err < 1e-5, "{name}: scale_model_input {k}: {err}");
        let eps = load_tensor::<4>(&f, &format!("{name}.eps.{k}"), &dev);
        let noise = f
            .entry(&format!("{name}.noise.{k}"))
            .map(|_| load_tensor::<4>(&f, &format!("{name}.noise.{k}"), &dev));
        x = s.step(eps, x, noise);
        let err = rel_err(
            &to_vec(x.clone()),
            &f.read_f32(&format!("{name}.out.{k}")).unwrap(),
        );
        assert!(
            err < 1e-5,
            "{name}: step {k} (t={}): rel err {err}",
            s.timesteps[k]
        );
    }
    let x0 = load_tensor::<4>(&f, &format!("{name}.x0"), &dev);
    let eps0 = load_tensor::<4>(&f, &format!("{name}.eps.0"), &dev);
    let noised = s.add_noise(x0, eps0, 3);
    let err = rel_err(
        &to_vec(noised),
        &f.read_f32(&format!("{name}.add_noise")).unwrap(),
    );
    assert!(err < 1e-5, "{name}: add_noise {err}");
}

/// The fixture's config names its spacing explicitly ("leading").
fn sd15() -> SchedulerConfig {
    SchedulerConfig {
        timestep_spacing: Some("leading".into()),
        ..SchedulerConfig::sd15()
    }
}

#[test]
fn ddim() {
    run("ddim", SchedulerKind::Ddim, sd15(), 10, 0.0);
    run("ddim_eta", SchedulerKind::Ddim, sd15(), 7, 0.5);
    let trailing = SchedulerConfig {
        timestep_spacing: Some("trailing".into()),
        ..sd15()
    };
    run("ddim_trailing", SchedulerKind::Ddim, trailing, 6, 0.0);
}

#[test]
fn pndm_plms() {
    run("pndm", SchedulerKind::Pndm, sd15(), 10, 0.0);
    run("pndm_7", SchedulerKind::Pndm, sd15(), 7, 0.0);
}

#[test]
fn euler_and_euler_ancestral() {
    run("euler", SchedulerKind::Euler, sd15(), 10, 0.0);
    run("euler_a", SchedulerKind::EulerAncestral, sd15(), 8, 0.0);
}

#[test]
fn dpmpp_2m_with_and_without_karras() {
    run("dpmpp_2m", SchedulerKind::DpmPp2m, sd15(), 10, 0.0);
    run(
        "dpmpp_2m_karras",
        SchedulerKind::DpmPp2mKarras,
        sd15(),
        12,
        0.0,
    );
    let linspace = SchedulerConfig {
        timestep_spacing: Some("linspace".into()),
        ..sd15()
    };
    run(
        "dpmpp_2m_linspace",
        SchedulerKind::DpmPp2m,
        linspace,
        5,
        0.0,
    );
}

#[test]
fn names_parse() {
    for k in SchedulerKind::ALL {
        assert_eq!(k.name().parse::<SchedulerKind>().unwrap(), k);
    }
    assert!(
        "lms"
            .parse::<SchedulerKind>()
            .unwrap_err()
            .contains("dpmpp-2m-karras")
    );
}
