//! ReLU's backward fused into the batch norm's: on every backend, the fused entry points give
//! bit for bit what `relu_backward` followed by the plain batch-norm backward gives (the mask
//! only zeroes gradient values; every later operation is the same), in both modes, and the mask
//! matters (the unmasked gradient differs).

use super::*;

pub fn fused_relu_matches_unfused<B: Backend>(b: &B) {
    let mut rng = Rng::new(61);
    let shape = [3, 5, 4, 6];
    let up = |t: &Tensor| b.upload(t).unwrap();
    let down = |x: &B::Tensor| b.download(x).unwrap();
    let x = up(&Tensor::randn(&shape, 1.0, &mut rng));
    let dy = up(&Tensor::randn(&shape, 1.0, &mut rng));
    let c = shape[1];
    let p = bnp(
        up(&Tensor::randn(&[c], 1.0, &mut rng)),
        up(&Tensor::randn(&[c], 1.0, &mut rng)),
        up(&Tensor::randn(&[c], 0.3, &mut rng)),
        up(&Tensor::full(&[c], 1.5)),
        1e-5,
    );
    let same = |what: &str, got: &B::Tensor, want: &B::Tensor| {
        let (g, w) = (down(got), down(want));
        let bits = |t: &Tensor| t.data().iter().map(|v| v.to_bits()).collect::<Vec<_>>();
        assert_eq!(bits(&g), bits(&w), "{} {what}: fused != unfused", b.name());
    };

    // Training mode: batch statistics.
    let (y, stats) = b.batchnorm_train(&x, &p).unwrap();
    let r = b.relu(&y).unwrap();
    let masked = b.relu_backward(&dy, &r).unwrap();
    let want = b.batchnorm_train_backward(&masked, &x, &p, &stats).unwrap();
    let got = b
        .batchnorm_relu_train_backward(&dy, &r, &x, &p, &stats)
        .unwrap();
    same("train dx", &got.0, &want.0);
    same("train dgamma", &got.1, &want.1);
    same("train dbeta", &got.2, &want.2);
    let unmasked = b.batchnorm_train_backward(&dy, &x, &p, &stats).unwrap();
    assert_ne!(
        down(&unmasked.2).data(),
        down(&got.2).data(),
        "the mask was ignored"
    );

    // Inference mode: running statistics.
    let y = b.batchnorm_inference(&x, &p).unwrap();
    let r = b.relu(&y).unwrap();
    let masked = b.relu_backward(&dy, &r).unwrap();
    let want = b.batchnorm_inference_backward(&masked, &x, &p).unwrap();
    let got = b
        .batchnorm_relu_inference_backward(&dy, &r, &x, &p)
        .unwrap();
    same("inference dx", &got.0, &want.0);
    same("inference dgamma", &got.1, &want.1);
    same("inference dbeta", &got.2, &want.2);
    let zeros = down(&got.0).data().iter().filter(|&&v| v == 0.0).count();
    assert!(zeros > 0, "some ReLU outputs are 0, so some dx are 0");

    // A ReLU output of another shape is refused by name.
    let other = up(&Tensor::full(&[3, 5, 4, 5], 1.0));
    fails(
        b.batchnorm_relu_inference_backward(&dy, &other, &x, &p),
        &["batchnorm_backward", "ReLU output"],
    );
}
