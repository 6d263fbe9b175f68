//! Every parameter gradient of whole networks (ResNet18, 34, 50, 101, 152 and VGG19) against
//! PyTorch autograd, without PyTorch in CI: tests/fixtures/grads_<arch>.safetensors holds, for
//! both BN modes, the float64 loss and, per parameter, the gradient's exact norm and 48 sampled
//! values (tools/make_grads_fixture.sh made it from the weights and images `model::parity::grads`
//! regenerates here bit for bit: 2 images of 64x80 for the ResNets, of 224x224 for VGG19).
//!
//! Set GRADS_DEBUG=1 to print every tensor's error.
//!
//! Tolerances. Results are f32 throughout, and some of these gradients are ill-conditioned:
//! deep random networks cancel large contributions in the early layers' gradients, and
//! train-mode BN backward subtracts means of products. Two yardsticks:
//!
//! - Reference backend (f32 storage, f64 sums; its forward pass is within ~1e-7 of f64, so every
//!   ReLU sees the sign PyTorch's f64 run sees): every sampled value within 4x the largest
//!   |f32 - f64| PyTorch's own f32 run shows on that tensor (stored per tensor in the fixture),
//!   the norm within 4x that times sqrt(len). Same precision, other summation orders: errors of
//!   the same size are expected (measured about 1x); a wrong stride, padding, index, missing
//!   residual or BN-mode gradient is orders of magnitude beyond.
//! - Fast CPU backend (f32 sums in other orders; forward within ~4e-6 of the largest value):
//!   among the ~10^5-10^6 ReLU inputs of these networks a few lie that close to 0, and f32
//!   rounding may put one on the other side of the kink, where the exact gradient jumps: one
//!   element's gradient routed or not, which moves a few sampled values of the early layers'
//!   gradients by up to ~0.1 of their RMS while their norms move by ~1e-5 (measured: ResNet18
//!   train mode has one flipped ReLU input, at layer2.0's output; VGG19 has seven, all within
//!   1.5e-6 of 0, at features.2, 10, 14 and 16's outputs, which move features.0..12's sampled
//!   values by up to 9.4e-3 RMS and norms by up to 3.4e-4: PyTorch's f64 gradients with just
//!   those seven ReLU decisions flipped reproduce every one of these errors to three digits;
//!   PyTorch's own f32 run on ResNet50 is up to 0.3 RMS away from its f64 run for the same
//!   reason, and its norms up to 6e-3). So, per tensor: the sampled values within the tight
//!   bound above or within 0.5 RMS of the f64 gradient, and the norm within the tight bound or
//!   1e-3 relative; the loss within 1e-5. A structural error moves norms by order 1.
//!
//! ResNet101 and ResNet152 are checked in eval mode only. In train mode (batch statistics of these
//! 2 images: 12 values per channel in layer4) their fixtures' losses are chaotic in float64 itself:
//! scaling every weight and input of PyTorch's f64 run by independent factors within 1 +- 2^-24
//! (less than f32's rounding) moves ResNet101's loss by 3.1e-6..4.1e-6 relative and ResNet152's by
//! 2.3e-6..1.3e-5, single gradient values by up to 3.5 and 4.8 RMS of their tensor and norms by up
//! to 6e-3 and 1.3e-2 relative (ResNet34: loss 4e-10..6e-8, values 6e-5 RMS, norms 6e-7). Depth
//! compounds it, not the tiny batch alone: ResNet152 on 4x3x64x80 or 2x3x128x160 inputs still moves
//! by 3e-7..3e-6. So no f32 implementation can meet the bounds above there, PyTorch's own included
//! (its f32 ResNet152 loss is 5.1e-6 off). Measured, for the record: the reference backend's
//! train-mode gradients are within 0.45 (ResNet101) and 0.50 (ResNet152) x PyTorch's own f32 error,
//! norms within 0.03 and 0.07 x, but its losses are 5.7e-6 and 1.3e-5 off (bound 1e-6) and sampled
//! values up to 0.19 RMS; the fast kernels' losses 1.7e-5 and 5.0e-5 off (bound 1e-5), values up to
//! 0.71 and 0.99 RMS, norms up to 1.2e-2 and 2.9e-2. The fixtures keep the train-mode entries all
//! the same (tools/make_grads_fixture.sh writes both modes).

use skinengine::CpuBackend;
use skinengine::model::arch::Arch;
use skinengine::model::net::{BnMode, Net};
use skinengine::model::parity::grads;
use skinengine::ops::prelude::*;
use skinengine::testing::fixture_file_f64;
use std::collections::BTreeMap;
use std::path::PathBuf;

fn fixture(arch: Arch) -> BTreeMap<String, (Vec<usize>, Vec<f64>)> {
    let p = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(format!("grads_{}.safetensors", arch.name()));
    fixture_file_f64(&p)
}

/// Worst errors over every parameter tensor, as the module doc measures them.
struct Errors {
    loss: f64,
    /// Sampled error in units of PyTorch's own f32 error on the tensor.
    vs_f32: f64,
    /// Norm error in units of PyTorch's f32 error times sqrt(len).
    norm_vs_f32: f64,
    /// Sampled error in units of the tensor's RMS.
    vs_rms: f64,
    /// Relative norm error.
    norm_rel: f64,
    /// Tensors outside both the tight and the kink-tolerant bound.
    loose_failures: Vec<String>,
}

fn compare<B: Backend>(b: &B, arch: Arch, mode: BnMode) -> Errors {
    let fx = fixture(arch);
    let sd = grads::weights(arch);
    let net = Net::from_state_dict(b, arch, &sd, true).unwrap();
    let x = b.upload(&grads::images_for(arch)).unwrap();
    let (loss, g) = net.loss_and_grads(b, &x, &grads::LABELS, mode).unwrap();
    let m = mode.name();
    let get = |k: String| &fx.get(&k).unwrap_or_else(|| panic!("{k} not in fixture")).1;
    let want_loss = get(format!("{m}/loss"))[0];
    let names = net.graph.params_from(0);
    let in_fixture = fx
        .keys()
        .filter(|k| k.starts_with(&format!("{m}/norm/")))
        .count();
    assert_eq!(
        names.len(),
        in_fixture,
        "{arch}: parameter count differs from PyTorch's"
    );
    let mut e = Errors {
        loss: (loss - want_loss).abs() / want_loss.abs(),
        vs_f32: 0.0,
        norm_vs_f32: 0.0,
        vs_rms: 0.0,
        norm_rel: 0.0,
        loose_failures: Vec::new(),
    };
    let mut at = String::new();
    for name in &names {
        let got = b.download(&g[name]).unwrap();
        let want_norm = get(format!("{m}/norm/{name}"))[0];
        let want = get(format!("{m}/sample/{name}"));
        let f32_err = get(format!("{m}/f32_err/{name}"))[0].max(f64::MIN_POSITIVE);
        let len = got.len() as f64;
        let rms = want_norm / len.sqrt();
        let norm = got
            .data()
            .iter()
            .map(|&v| (v as f64) * (v as f64))
            .sum::<f64>()
            .sqrt();
        let idx = grads::sample_indices(got.len());
        assert_eq!(idx.len(), want.len(), "{name}: sample count");
        let err = idx
            .iter()
            .zip(want)
            .map(|(&i, &w)| (got.data()[i] as f64 - w).abs())
            .fold(0.0, f64::max);
        let dn = (norm - want_norm).abs();
        if std::env::var("GRADS_DEBUG").is_ok() {
            eprintln!(
                "{name}: {:.2} x f32 err, {:.2e} rms, norm {:.2e} ({:.2} x f32)",
                err / f32_err,
                err / rms,
                dn / want_norm,
                dn / (f32_err * len.sqrt())
            );
        }
        let sample_ok = err <= 4.0 * f32_err || err <= 0.5 * rms;
        let norm_ok = dn <= 4.0 * f32_err * len.sqrt() || dn <= 1e-3 * want_norm;
        if !(sample_ok && norm_ok) {
            e.loose_failures.push(format!(
                "{name} ({:.2e} rms, norm {:.2e})",
                err / rms,
                dn / want_norm
            ));
        }
        if err / f32_err > e.vs_f32 {
            at = name.clone();
        }
        e.vs_f32 = e.vs_f32.max(err / f32_err);
        e.norm_vs_f32 = e.norm_vs_f32.max(dn / (f32_err * len.sqrt()));
        e.vs_rms = e.vs_rms.max(err / rms);
        e.norm_rel = e.norm_rel.max(dn / want_norm);
    }
    eprintln!(
        "{arch} bn={m} on {}: loss rel err {:.2e}; worst gradient error {:.2} x PyTorch's own f32 error ({at}), {:.2e} rms; worst norm error {:.2e} relative, {:.2} x f32",
        b.name(),
        e.loss,
        e.vs_f32,
        e.vs_rms,
        e.norm_rel,
        e.norm_vs_f32
    );
    e
}

/// Fast CPU kernels: the kink-tolerant bounds of the module doc.
fn check(arch: Arch, mode: BnMode) {
    check_fast(&CpuBackend, arch, mode)
}

fn check_fast<B: Backend>(b: &B, arch: Arch, mode: BnMode) {
    let e = compare(b, arch, mode);
    assert!(
        e.loss <= 1e-5,
        "{arch} {mode:?}: loss differs by {:e}",
        e.loss
    );
    assert!(
        e.loose_failures.is_empty(),
        "{arch} {mode:?}: gradients differ from PyTorch: {:?}",
        e.loose_failures
    );
}

/// Reference kernels: PyTorch's own f32 error as the yardstick.
fn check_tight(arch: Arch, mode: BnMode) {
    let e = compare(&skinengine::ReferenceBackend, arch, mode);
    assert!(
        e.loss <= 1e-6,
        "{arch} {mode:?}: loss differs by {:e}",
        e.loss
    );
    assert!(
        e.vs_f32 <= 4.0,
        "{arch} {mode:?}: a gradient differs by {} x PyTorch's own f32 error",
        e.vs_f32
    );
    assert!(
        e.norm_vs_f32 <= 4.0,
        "{arch} {mode:?}: a norm differs by {}",
        e.norm_vs_f32
    );
}

#[test]
fn resnet50_train_bn_gradients_match_pytorch() {
    check(Arch::ResNet50, BnMode::Train);
}

#[test]
fn resnet50_eval_bn_gradients_match_pytorch() {
    check(Arch::ResNet50, BnMode::Eval);
}

#[test]
fn resnet18_train_bn_gradients_match_pytorch() {
    check(Arch::ResNet18, BnMode::Train);
}

#[test]
fn resnet18_eval_bn_gradients_match_pytorch() {
    check(Arch::ResNet18, BnMode::Eval);
}

#[test]
fn resnet18_gradients_on_the_reference_backend_match_pytorch_tightly() {
    for mode in [BnMode::Train, BnMode::Eval] {
        check_tight(Arch::ResNet18, mode);
    }
}

#[test]
fn resnet50_gradients_on_the_reference_backend_match_pytorch_tightly() {
    for mode in [BnMode::Train, BnMode::Eval] {
        check_tight(Arch::ResNet50, mode);
    }
}

/// The other torchvision depths: the same two blocks as ResNet18 and ResNet50 in other counts,
/// each through its own classifier. In eval mode the loss is the forward parity (the logits
/// through softmax; fc.bias's gradient, the batch's mean softmax minus its one-hot labels, is
/// checked value by value like every other gradient). Measured on the fast kernels: ResNet34
/// within 1.97 x PyTorch's own f32 error (train) and 1.82 x (eval), i.e. within the tight bound.
/// ResNet101 and ResNet152 in eval mode: loss within 3.4e-8 and 1.3e-8, but sampled values up
/// to 1.1e-2 and 1.6e-2 RMS, norms up to 5.1e-4 and 9.5e-4 relative, in the layers upstream of
/// ReLU inputs within f32 rounding of 0 (module doc): PyTorch's f64 gradients with one ReLU
/// decision flipped for ResNet101 (layer2.1's second ReLU, image 1, channel 17, (0, 2): -2.7e-8;
/// the two networks share their first weights) and that one plus layer2.4's output (image 1,
/// channel 107, (6, 8): -2.9e-7) for ResNet152 reproduce every sampled error above 1e-4 RMS
/// within 1% and every norm error above 1e-5 within 2% (48 and 75 tensors); every other tensor
/// is within 1.7e-5 RMS. The worst tensor uses 2.3% (ResNet101) and 4.5% (ResNet152) of its
/// bound.
#[test]
fn resnet34_train_bn_gradients_match_pytorch() {
    check(Arch::ResNet34, BnMode::Train);
}

#[test]
fn resnet34_eval_bn_gradients_match_pytorch() {
    check(Arch::ResNet34, BnMode::Eval);
}

#[test]
fn resnet101_eval_bn_gradients_match_pytorch() {
    check(Arch::ResNet101, BnMode::Eval);
}

#[test]
fn resnet152_eval_bn_gradients_match_pytorch() {
    check(Arch::ResNet152, BnMode::Eval);
}

/// Not run by default: 18 s on 2 cores, and the fast kernels above already meet this tight
/// bound on ResNet34 (1.97 x). Measured: within 0.49 (train) and 1.00 x (eval) PyTorch's own f32
/// error, norms within 0.11 x, losses within 5.4e-8.
#[test]
#[ignore = "18 s on 2 cores: cargo test --test grads_parity -- --ignored resnet34"]
fn resnet34_gradients_on_the_reference_backend_match_pytorch_tightly() {
    for mode in [BnMode::Train, BnMode::Eval] {
        check_tight(Arch::ResNet34, mode);
    }
}

/// The tight check where the fast kernels need the kink-tolerant bounds (25 s on 2 cores).
/// Measured: within 0.84 x PyTorch's own f32 error (2.0e-6 RMS), norms within 1.3e-7, the loss
/// within 6.8e-9.
#[test]
fn resnet101_eval_bn_gradients_on_the_reference_backend_match_pytorch_tightly() {
    check_tight(Arch::ResNet101, BnMode::Eval);
}

/// Not run by default: 32 s on 2 cores. Measured: within 0.74 x PyTorch's own f32 error (3.2e-6
/// RMS), norms within 1.5e-7, the loss within 6.4e-9.
#[test]
#[ignore = "32 s on 2 cores: cargo test --test grads_parity -- --ignored resnet152"]
fn resnet152_eval_bn_gradients_on_the_reference_backend_match_pytorch_tightly() {
    check_tight(Arch::ResNet152, BnMode::Eval);
}

/// VGG19 has no BN, so the fixture's two modes are one function: PyTorch's gradients are
/// bit-identical in both (which also shows its classifier's dropout was off in train mode, as
/// in our graph), and one pass of ours is checked.
#[test]
fn vgg19_gradients_match_pytorch() {
    let fx = fixture(Arch::Vgg19);
    for (k, v) in fx.iter().filter(|(k, _)| k.starts_with("train/")) {
        let e = format!("eval/{}", &k["train/".len()..]);
        assert_eq!(fx.get(&e), Some(v), "{k}: the modes differ");
    }
    check(Arch::Vgg19, BnMode::Train);
}

/// Not run by default: the reference backend's f64 loops take 283 s for VGG19's two 224x224
/// images on this 2-core box (about 60 GFLOP per image forward and backward); CI's budget is a
/// minute. Measured: every value within 0.19 x PyTorch's own f32 error (7.6e-7 RMS), norms within
/// 5e-8 relative, the loss within 5e-8, where the fast kernels above are up to 9.4e-3 RMS off in
/// features.0..12 (ReLU inputs within f32 rounding of 0, see the module doc).
#[test]
#[ignore = "about 5 minutes on 2 cores: cargo test --release --test grads_parity -- --ignored vgg19"]
fn vgg19_gradients_on_the_reference_backend_match_pytorch_tightly() {
    check_tight(Arch::Vgg19, BnMode::Train);
}

/// The CUDA kernels (f32 sums like the fast CPU kernels, so the same kink-tolerant bounds),
/// under the emulator in CI (training-mode BN only, ~90 s of emulation; the frozen-BN backward
/// kernel is checked against the reference by the batchnorm op suite) and on a GPU in
/// tools/gpu_check.sh.
#[cfg(target_os = "linux")]
#[test]
fn cuda_emulator_resnet18_gradients_match_pytorch() {
    check_fast(
        &skinengine::testing::suite::emulator(),
        Arch::ResNet18,
        BnMode::Train,
    );
}

#[test]
#[ignore = "needs a GPU: run by tools/gpu_check.sh"]
fn gpu_gradients_match_pytorch() {
    let b = skinengine::testing::suite::gpu();
    for arch in grads::ARCHS {
        for mode in [BnMode::Train, BnMode::Eval] {
            check_fast(&b, arch, mode);
        }
    }
    check_fast(&b, Arch::Vgg19, BnMode::Train);
    check_fast(&b, Arch::ResNet34, BnMode::Train);
    for arch in [Arch::ResNet34, Arch::ResNet101, Arch::ResNet152] {
        check_fast(&b, arch, BnMode::Eval);
    }
}

/// `skinengine grads` end to end through the library: the file it writes holds the loss, the
/// exact input and every gradient under its name, and bad input is refused by name.
#[test]
fn grads_command_writes_every_gradient_and_refuses_bad_input() {
    use skinengine::grads::{GradsConfig, grads as run_grads, write};
    let dir = tempfile::tempdir().unwrap();
    let arch = Arch::ResNet18;
    let sd = grads::weights(arch);
    let wpath = dir.path().join("w.safetensors");
    let named: Vec<(&str, &skinengine::Tensor)> = sd.iter().map(|(k, v)| (k.as_str(), v)).collect();
    skinengine::io::safetensors::write(&wpath, &named, &Default::default()).unwrap();
    let xpath = dir.path().join("x.safetensors");
    let images = grads::images();
    skinengine::io::safetensors::write(&xpath, &[("images", &images)], &Default::default())
        .unwrap();
    let mut cfg = GradsConfig {
        weights: wpath.clone(),
        images: vec![xpath.clone()],
        labels: grads::LABELS.to_vec(),
        bn: BnMode::Eval,
        backbone: None,
        resize: skinengine::data::image::ResizeMode::Squash,
    };
    let r = run_grads(&CpuBackend, &cfg).unwrap();
    assert_eq!(r.arch, Arch::ResNet18, "recognised from the tensors");
    let out = dir.path().join("g.safetensors");
    write(&out, &r, &cfg.labels, cfg.bn, "cpu").unwrap();
    let f = skinengine::io::safetensors::read(&out).unwrap();
    assert_eq!(f.tensors["images"], images);
    let fx = fixture(arch);
    assert!((f.tensors["loss"].data()[0] as f64 - fx["eval/loss"].1[0]).abs() < 1e-5);
    for name in Net::from_state_dict(&CpuBackend, arch, &sd, true)
        .unwrap()
        .graph
        .params_from(0)
    {
        assert_eq!(f.tensors[&name].shape(), sd[&name].shape(), "{name}");
    }
    // Bad input: wrong label count, a label beyond the classifier, the wrong backbone.
    cfg.labels = vec![1];
    let e = run_grads(&CpuBackend, &cfg).err().unwrap().to_string();
    assert!(e.contains("2 images but 1 labels"), "{e}");
    cfg.labels = vec![1, 16];
    let e = run_grads(&CpuBackend, &cfg).err().unwrap().to_string();
    assert!(e.contains("label 16 is not below"), "{e}");
    cfg.labels = vec![1, 2];
    cfg.backbone = Some(Arch::ResNet50);
    let e = run_grads(&CpuBackend, &cfg).err().unwrap().to_string();
    assert!(
        e.contains("w.safetensors") && e.contains("--backbone resnet18"),
        "{e}"
    );
}
