//! Bad shapes and arguments are errors naming the op and the shapes involved, never panics.

use skinengine::ops::adam::{AdamConfig, reference as adam};
use skinengine::ops::batchnorm::reference as bn;
use skinengine::ops::conv2d::{Conv2dParams, reference as conv};
use skinengine::ops::dense::reference as dense;
use skinengine::ops::elementwise::reference as ew;
use skinengine::ops::loss::{Reduction, reference as loss};
use skinengine::ops::pool::{Pool2dParams, reference as pool};
use skinengine::{Result, Tensor};

fn z(shape: &[usize]) -> Tensor {
    Tensor::full(shape, 0.5)
}

/// The call failed and its message contains every fragment.
fn fails<T: std::fmt::Debug>(r: Result<T>, fragments: &[&str]) {
    let msg = match r {
        Ok(v) => panic!("expected an error containing {fragments:?}, got Ok({v:?})"),
        Err(e) => e.to_string(),
    };
    for f in fragments {
        assert!(msg.contains(f), "message {msg:?} lacks {f:?}");
    }
}

#[test]
fn tensor_construction() {
    fails(
        Tensor::new(&[2, 3], vec![0.0f32; 5]),
        &["tensor", "[2, 3]", "6", "5"],
    );
    fails(
        z(&[2, 3]).reshape(&[4, 2]),
        &["reshape", "[2, 3]", "[4, 2]"],
    );
}

#[test]
fn conv2d_errors() {
    let p = Conv2dParams::square(1, 0);
    fails(
        conv::forward(&z(&[1, 3, 5, 5]), &z(&[4, 2, 3, 3]), None, &p),
        &["conv2d", "[1, 3, 5, 5]", "[4, 2, 3, 3]", "3 channels"],
    );
    fails(
        conv::forward(&z(&[3, 5, 5]), &z(&[4, 3, 3, 3]), None, &p),
        &["conv2d", "[3, 5, 5]", "4-d"],
    );
    fails(
        conv::forward(&z(&[1, 3, 5, 5]), &z(&[4, 3, 3, 3]), Some(&z(&[3])), &p),
        &["conv2d", "bias", "[3]", "[4]"],
    );
    fails(
        conv::forward(&z(&[1, 1, 2, 2]), &z(&[1, 1, 3, 3]), None, &p),
        &["conv2d", "larger than padded input"],
    );
    fails(
        conv::forward(
            &z(&[1, 1, 4, 4]),
            &z(&[1, 1, 3, 3]),
            None,
            &Conv2dParams::square(0, 0),
        ),
        &["conv2d", "stride"],
    );
    fails(
        conv::backward_data(&z(&[1, 4, 2, 2]), &z(&[4, 3, 3, 3]), &[1, 3, 5, 5], &p),
        &["conv2d_backward_data", "[1, 4, 2, 2]", "[1, 4, 3, 3]"],
    );
    fails(
        conv::backward_weight(&z(&[1, 4, 3, 3]), &z(&[1, 3, 5, 5]), &[4, 2, 3, 3], &p),
        &["conv2d", "3 channels"],
    );
}

#[test]
fn batchnorm_errors() {
    fails(
        bn::forward_train(&z(&[2, 3, 4, 4]), &z(&[4]), &z(&[3]), 1e-5),
        &["batchnorm_train", "gamma", "[4]", "[2, 3, 4, 4]"],
    );
    fails(
        bn::forward_train(&z(&[2, 3, 4]), &z(&[3]), &z(&[3]), 1e-5),
        &["batchnorm_train", "[2, 3, 4]"],
    );
    fails(
        bn::forward_train(&z(&[1, 3]), &z(&[3]), &z(&[3]), 1e-5),
        &["batchnorm_train", "at least 2 values"],
    );
    fails(
        bn::forward_inference(&z(&[2, 3]), &z(&[3]), &z(&[3]), &z(&[2]), &z(&[3]), 1e-5),
        &["batchnorm_inference", "running_mean", "[2]"],
    );
    fails(
        bn::backward(
            &z(&[2, 4]),
            &z(&[2, 3]),
            &z(&[3]),
            &z(&[3]),
            &z(&[3]),
            1e-5,
            true,
        ),
        &["batchnorm_backward", "[2, 4]", "[2, 3]"],
    );
    let (mut rm, mut rv) = (z(&[3]), z(&[3]));
    fails(
        bn::update_running(&mut rm, &mut rv, &z(&[3]), &z(&[3]), 8, 1.5),
        &["momentum"],
    );
}

#[test]
fn elementwise_pool_dense_errors() {
    fails(
        ew::add(&z(&[2, 3]), &z(&[3, 2])),
        &["add", "[2, 3]", "[3, 2]"],
    );
    fails(
        ew::relu_backward(&z(&[2, 3]), &z(&[2, 4])),
        &["relu_backward", "[2, 3]", "[2, 4]"],
    );
    fails(
        pool::maxpool2d(&z(&[1, 1, 2, 2]), &Pool2dParams::square(5, 1, 1)),
        &["maxpool2d", "larger"],
    );
    fails(
        pool::maxpool2d(&z(&[1, 1, 8, 8]), &Pool2dParams::square(3, 2, 2)),
        &["maxpool2d", "padding"],
    );
    fails(
        pool::maxpool2d(&z(&[8, 8]), &Pool2dParams::square(3, 2, 1)),
        &["maxpool2d", "[8, 8]"],
    );
    fails(
        pool::maxpool2d_backward(
            &z(&[1, 1, 3, 3]),
            &z(&[1, 1, 8, 8]),
            &Pool2dParams::square(3, 2, 1),
        ),
        &["maxpool2d_backward", "[1, 1, 4, 4]", "[1, 1, 3, 3]"],
    );
    fails(
        pool::global_avg_pool(&z(&[2, 3])),
        &["global_avg_pool", "[2, 3]"],
    );
    fails(
        pool::global_avg_pool_backward(&z(&[2, 4]), &[2, 3, 5, 5]),
        &["global_avg_pool_backward", "[2, 4]", "[2, 3]"],
    );
    fails(
        dense::forward(&z(&[4, 2048]), &z(&[120, 2047]), None),
        &["dense", "[4, 2048]", "[120, 2047]"],
    );
    fails(
        dense::forward(&z(&[4, 8]), &z(&[3, 8]), Some(&z(&[4]))),
        &["dense", "bias", "[4]", "[3]"],
    );
    fails(
        dense::backward(&z(&[4, 2]), &z(&[4, 8]), &z(&[3, 8])),
        &["dense_backward", "[4, 2]", "[4, 3]"],
    );
}

#[test]
fn loss_and_adam_errors() {
    let w7 = [1.0f32; 7];
    fails(
        loss::weighted_cross_entropy(&z(&[2, 7]), &[0, 7], &w7, Reduction::Normalized),
        &["cross_entropy", "label 7"],
    );
    fails(
        loss::weighted_cross_entropy(&z(&[2, 7]), &[0], &w7, Reduction::Normalized),
        &["cross_entropy", "[2, 7]", "2 labels"],
    );
    fails(
        loss::weighted_cross_entropy(&z(&[2, 7]), &[0, 1], &[1.0; 6], Reduction::Seed),
        &["cross_entropy", "7 classes", "6 class weights"],
    );
    fails(
        loss::weighted_cross_entropy(&z(&[2, 2]), &[0, 1], &[1.0, f32::NAN], Reduction::Seed),
        &["class weight 1"],
    );
    fails(
        loss::weighted_cross_entropy(&z(&[2, 2]), &[0, 0], &[0.0, 1.0], Reduction::Normalized),
        &["weight 0"],
    );
    fails(loss::softmax(&z(&[7])), &["softmax", "[7]"]);
    let (mut p, mut m, mut v) = (z(&[3]), z(&[3]), z(&[3]));
    fails(
        adam::step(&mut p, &z(&[4]), &mut m, &mut v, &AdamConfig::default(), 1),
        &["adam", "gradient", "[3]", "[4]"],
    );
    fails(
        adam::step(&mut p, &z(&[3]), &mut m, &mut v, &AdamConfig::default(), 0),
        &["adam", "step"],
    );
}
