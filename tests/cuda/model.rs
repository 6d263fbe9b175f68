//! ResNet50 end to end on the CUDA backend against torchvision's f64 outputs
//! (tests/fixtures/resnet50_parity.safetensors; see tests/resnet50_parity.rs for how it is made),
//! with the same tolerance as the CPU backend's test: max abs error <= 1e-5 of the largest
//! |feature| / |logit|. Also checks that a second forward pass allocates no device memory.

use safetensors::SafeTensors;
use skinengine::Tensor;
use skinengine::backend::Backend;
use skinengine::backend::cuda::CudaBackend;
use skinengine::model::parity;
use skinengine::model::resnet50::ResNet50;

const FIXTURE: &str = "tests/fixtures/resnet50_parity.safetensors";

fn fixture_f64(name: &str) -> Vec<f64> {
    let bytes = std::fs::read(FIXTURE).expect("fixture present");
    let st = SafeTensors::deserialize(&bytes).unwrap();
    let t = st.tensor(name).unwrap();
    assert_eq!(t.dtype(), safetensors::Dtype::F64);
    t.data()
        .chunks_exact(8)
        .map(|c| f64::from_le_bytes(c.try_into().unwrap()))
        .collect()
}

fn rel_err(got: &Tensor, want: &[f64]) -> f64 {
    assert_eq!(got.len(), want.len());
    let scale = want.iter().fold(0.0f64, |m, v| m.max(v.abs()));
    assert!(scale > 1e-3, "reference output is (nearly) zero");
    got.data()
        .iter()
        .zip(want)
        .map(|(g, w)| (*g as f64 - w).abs())
        .fold(0.0, f64::max)
        / scale
}

pub fn resnet50_matches_torchvision(be: &CudaBackend) {
    let model = ResNet50::from_state_dict(be, &parity::weights()).unwrap();
    let x = be.upload(&parity::images()).unwrap();
    let out = model.forward(be, &x, true).unwrap();
    let features = be.download(&out.features).unwrap();
    let logits = be.download(out.logits.as_ref().unwrap()).unwrap();
    let ef = rel_err(&features, &fixture_f64("features_f64"));
    let el = rel_err(&logits, &fixture_f64("logits_f64"));
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
