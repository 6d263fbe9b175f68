//! ReLU and add: one f32 operation per element, so results must equal the reference exactly.

use skinengine::backend::Backend;
use skinengine::backend::cuda::CudaBackend;
use skinengine::{ReferenceBackend, Rng, Tensor};

pub fn all(be: &CudaBackend) {
    let r = ReferenceBackend;
    let mut rng = Rng::new(31);
    // 1, a partial block, and more than one block per grid-stride pass.
    for shape in [vec![1], vec![3, 5, 7], vec![2, 64, 33, 17]] {
        let x = Tensor::randn(&shape, 1.0, &mut rng);
        let y = Tensor::randn(&shape, 1.0, &mut rng);
        let (xd, yd) = (be.upload(&x).unwrap(), be.upload(&y).unwrap());
        let got = be.download(&be.relu(&xd).unwrap()).unwrap();
        assert_eq!(got, r.relu(&x).unwrap(), "relu {shape:?}");
        let got = be.download(&be.relu_backward(&yd, &xd).unwrap()).unwrap();
        assert_eq!(
            got,
            r.relu_backward(&y, &x).unwrap(),
            "relu_backward {shape:?}"
        );
        let got = be.download(&be.add(&xd, &yd).unwrap()).unwrap();
        assert_eq!(got, r.add(&x, &y).unwrap(), "add {shape:?}");
    }
    let a = be.upload(&Tensor::zeros(&[2, 3])).unwrap();
    let b = be.upload(&Tensor::zeros(&[3, 2])).unwrap();
    let e = be.add(&a, &b).unwrap_err().to_string();
    assert!(e.contains("[2, 3]") && e.contains("[3, 2]"), "{e}");
}
