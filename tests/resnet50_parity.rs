//! ResNet50 against torchvision without PyTorch in CI: tests/fixtures/resnet50_parity.safetensors
//! holds torchvision's outputs (f32 and f64) for weights and images that `model::parity`
//! regenerates here bit for bit (tools/make_parity_fixture.sh made it). BN running statistics are
//! random, so BN folding matters; 96x128 inputs give uneven sizes at every stage.
//!
//! Tolerance: our f32 CPU result against torchvision's f64 result, max abs error <= 1e-5 of the
//! largest |feature| (and of the largest |logit|). f32 rounding over ~50 layers with sums of up to
//! 4608 terms gives ~2e-7 here (torchvision's own f32 run: ~1e-7); 1e-5 leaves room for other
//! summation orders, while a wrong stride, padding, fold or block
//! order gives errors of order 1.

use skinengine::CudaBackend;
use skinengine::model::parity;
use skinengine::model::resnet50::{ResNet50, validate};
use skinengine::ops::prelude::*;
use skinengine::testing::{fixture_f64, rel_err};
use skinengine::{CpuBackend, ReferenceBackend, Rng, Tensor};
use std::path::Path;

#[test]
fn cpu_resnet50_matches_torchvision() {
    let sd = parity::weights();
    validate(Path::new("generated"), &sd).unwrap();
    let b = CpuBackend;
    let model = ResNet50::from_state_dict(&b, &sd).unwrap();
    let out = model.forward(&b, &parity::images(), true).unwrap();
    let (fshape, f64_features) = fixture_f64("features_f64");
    let (_, f64_logits) = fixture_f64("logits_f64");
    let (_, f32_features) = fixture_f64("features");
    assert_eq!(out.features.shape(), fshape.as_slice());
    let ef = rel_err(&out.features, &f64_features);
    let el = rel_err(out.logits.as_ref().unwrap(), &f64_logits);
    // How far torchvision's own f32 run is from its f64 run, for scale.
    let torch_f32 = Tensor::new(&fshape, f32_features.iter().map(|&v| v as f32).collect()).unwrap();
    let et = rel_err(&torch_f32, &f64_features);
    eprintln!("features rel err: ours {ef:.2e}, torchvision f32 {et:.2e}; logits rel err {el:.2e}");
    assert!(ef <= 1e-5, "features differ from torchvision: {ef:e}");
    assert!(el <= 1e-5, "logits differ from torchvision: {el:e}");
}

#[test]
fn cpu_resnet50_matches_reference_backend() {
    // Same model on both backends at a reduced size (the reference is plain f64 loops).
    let sd = parity::weights();
    let x = Tensor::from_fn(&[1, 3, 64, 48], {
        let mut rng = Rng::new(3);
        move |_| rng.normal() as f32
    });
    let (c, r) = (CpuBackend, ReferenceBackend);
    let yc = ResNet50::from_state_dict(&c, &sd)
        .unwrap()
        .forward(&c, &x, true)
        .unwrap();
    let yr = ResNet50::from_state_dict(&r, &sd)
        .unwrap()
        .forward(&r, &x, true)
        .unwrap();
    let want: Vec<f64> = r
        .download(&yr.features)
        .unwrap()
        .data()
        .iter()
        .map(|&v| v as f64)
        .collect();
    let e = rel_err(&yc.features, &want);
    eprintln!("cpu vs reference features rel err {e:.2e}");
    assert!(e <= 1e-5, "cpu vs reference: {e:e}");
}

/// The CUDA backend end to end, with the same tolerance as the CPU's; also checks that a second
/// forward pass allocates no device memory.
fn cuda_resnet50_matches_torchvision(be: &CudaBackend) {
    let model = ResNet50::from_state_dict(be, &parity::weights()).unwrap();
    let x = be.upload(&parity::images()).unwrap();
    let out = model.forward(be, &x, true).unwrap();
    let features = be.download(&out.features).unwrap();
    let logits = be.download(out.logits.as_ref().unwrap()).unwrap();
    let ef = rel_err(&features, &fixture_f64("features_f64").1);
    let el = rel_err(&logits, &fixture_f64("logits_f64").1);
    eprintln!(
        "cuda ({}): features rel err {ef:.2e}, logits {el:.2e}",
        be.device().describe()
    );
    assert!(ef <= 1e-5, "features differ from torchvision: {ef:e}");
    assert!(el <= 1e-5, "logits differ from torchvision: {el:e}");

    // Device memory is reused: once the first pass's outputs are dropped, the same forward again
    // takes every buffer from the free lists.
    drop(out);
    let before = be.device().alloc_stats();
    let again = model.forward(be, &x, true).unwrap();
    let after = be.device().alloc_stats();
    assert_eq!(
        after.driver_allocs, before.driver_allocs,
        "second forward allocated device memory"
    );
    assert!(after.reused > before.reused);
    assert_eq!(be.download(&again.features).unwrap(), features);
}

#[cfg(target_os = "linux")]
#[test]
fn cuda_emulator_resnet50_matches_torchvision() {
    cuda_resnet50_matches_torchvision(&skinengine::testing::suite::emulator());
}

#[test]
#[ignore = "needs a GPU: run by tools/gpu_check.sh"]
fn gpu_resnet50_matches_torchvision() {
    cuda_resnet50_matches_torchvision(&skinengine::testing::suite::gpu());
}
