//! ResNet50 end to end on the CUDA backend against torchvision's f64 outputs
//! (tests/fixtures/resnet50_parity.safetensors; see tests/resnet50_parity.rs for how it is made),
//! with the same tolerance as the CPU backend's test: max abs error <= 1e-5 of the largest
//! |feature| / |logit|. Also checks that a second forward pass allocates no device memory.

use crate::common::{fixture_f64, rel_err};
use skinengine::backend::Backend;
use skinengine::backend::cuda::CudaBackend;
use skinengine::model::parity;
use skinengine::model::resnet50::ResNet50;

pub fn resnet50_matches_torchvision(be: &CudaBackend) {
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
