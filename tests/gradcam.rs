//! Grad-CAM (`pipeline::gradcam`, `infer --heatmaps`) and dihedral test-time augmentation.
//!
//! - The gradient of the class logit with respect to the map, for a fine-tuned network and for
//!   head models on both backbone kinds (a `Net` and the folded ResNet50), against central finite
//!   differences of an independent f64 implementation of everything after the map.
//! - A known answer: a head whose logit reads one channel, and a map where that channel is large
//!   in one quadrant, puts all the heat in that quadrant (and the overlay's red there).
//! - End to end: a tiny head model trained by the CLI, `infer --heatmaps` (one PNG per image of
//!   the original's size, raw maps, the same CSV as without maps, an unknown class refused), and
//!   `--tta dihedral` equal to the mean of the 8 transformed views classified one by one.

use skinengine::backend::Backend;
use skinengine::classes;
use skinengine::cpu::CpuBackend;
use skinengine::data::image::{Decode, Preprocess, ResizeMode, Rgb, Transform};
use skinengine::data::input::view_tensor;
use skinengine::model::arch::Arch;
use skinengine::model::init::random_weights;
use skinengine::model::net::{Graph, HeadSpec, Net, Pool};
use skinengine::model::resnet50::ResNet50;
use skinengine::ops::BackendBase;
use skinengine::pipeline::FrozenBackbone;
use skinengine::pipeline::gradcam::{CamModel, Explainer};
use skinengine::pipeline::infer::{InferConfig, infer};
use skinengine::pipeline::tta::Tta;
use skinengine::reference::ReferenceBackend;
use skinengine::rng::Rng;
use skinengine::tensor::Tensor;
use skinengine::train::head::Head;
use skinengine::train::norm::FeatureNorm;
use std::collections::BTreeMap;
use std::path::Path;
use std::process::Command;

const PP: Preprocess = Preprocess {
    resize: ResizeMode::Squash,
    color_constancy: false,
    decode: Decode::Scaled,
};

fn images(n: usize, side: usize, seed: u64) -> Tensor {
    let mut rng = Rng::new(seed);
    Tensor::from_fn(&[n, 3, side, side], |_| rng.normal() as f32)
}

fn f64s(t: &Tensor) -> Vec<f64> {
    t.data().iter().map(|&v| v as f64).collect()
}

/// A hidden layer: weight [o, i], bias, optional BN (gamma, beta, running mean, running var).
type Layer = (Vec<f64>, Vec<f64>, Option<[Vec<f64>; 4]>);

/// Everything after the map, in f64 on the host: global average pool, optional
/// standardisation, dense layers (eval-mode BN and ReLU after the hidden ones).
struct HostTail {
    norm: Option<(Vec<f64>, Vec<f64>)>,
    hidden: Vec<Layer>,
    out: (Vec<f64>, Vec<f64>),
}

fn dense(x: &[f64], w: &[f64], b: &[f64]) -> Vec<f64> {
    let i = x.len();
    b.iter()
        .enumerate()
        .map(|(o, bo)| bo + (0..i).map(|k| w[o * i + k] * x[k]).sum::<f64>())
        .collect()
}

impl HostTail {
    /// The class logit of one image's map [C, hw].
    fn logit(&self, map: &[f64], hw: usize, class: usize) -> f64 {
        let mut h: Vec<f64> = map
            .chunks(hw)
            .map(|c| c.iter().sum::<f64>() / hw as f64)
            .collect();
        if let Some((mean, std)) = &self.norm {
            for ((v, m), s) in h.iter_mut().zip(mean).zip(std) {
                *v = (*v - m) / s;
            }
        }
        for (w, b, bn) in &self.hidden {
            h = dense(&h, w, b);
            if let Some([g, beta, m, var]) = bn {
                for (u, v) in h.iter_mut().enumerate() {
                    *v = g[u] * (*v - m[u]) / (var[u] + 1e-5).sqrt() + beta[u];
                }
            }
            h.iter_mut().for_each(|v| *v = v.max(0.0));
        }
        dense(&h, &self.out.0, &self.out.1)[class]
    }
}

/// Checks the gradient of each image's `class` logit with respect to its map (and the alphas,
/// its spatial means) against central differences of `tail`. The tail is piecewise linear in
/// the map (pooling, affine BN, ReLU, dense), so a difference that crosses no ReLU kink is exact
/// up to rounding: f64 rounding over the 1e-3 step is ~1e-13 here. The analytic side is f32
/// (each op's output rounded to f32, sums accumulated in f64 on the reference backend, in f32
/// on the CPU): its error is a few f32 roundings (6e-8 each) of the largest partial sums, which
/// are at most ~10x the largest gradient; 1e-5 of the largest gradient holds that with margin,
/// while any mistake (a missing 1/std, 1/hw, BN scale, mask) is of order the gradient itself.
fn check_against_finite_differences<B: Backend>(
    b: &B,
    ex: &Explainer<B>,
    x: &Tensor,
    tail: &HostTail,
    class: usize,
) {
    let map = ex.map(b, &b.upload(x).unwrap()).unwrap();
    let a = b.download(&map).unwrap();
    let [n, c, h, w] = a.shape().try_into().unwrap();
    let hw = h * w;
    let from = ex.logits_from_map(b, map.clone()).unwrap();
    // The logits from the map are the whole network's (and the host tail's).
    let logits = b.download(&from.logits).unwrap();
    let mut dy = vec![0f32; n * classes::COUNT];
    for i in 0..n {
        dy[i * classes::COUNT + class] = 1.0;
    }
    let dy = b
        .upload(&Tensor::new(&[n, classes::COUNT], dy).unwrap())
        .unwrap();
    let da = b.download(&ex.map_gradient(b, &from, dy).unwrap()).unwrap();
    let explained = ex.explain_map(b, map, 1, Some(class)).unwrap();
    let per = c * hw;
    for (i, e) in explained.iter().enumerate() {
        let m = f64s(&a)[i * per..(i + 1) * per].to_vec();
        let want = tail.logit(&m, hw, class);
        let got = logits.data()[i * classes::COUNT + class] as f64;
        assert!(
            (got - want).abs() <= 1e-5 * want.abs().max(1.0),
            "logit {got} vs {want}"
        );
        let g = &da.data()[i * per..(i + 1) * per];
        let max_g = g.iter().fold(0f64, |m, &v| m.max((v as f64).abs()));
        assert!(max_g > 1e-6, "image {i}: the gradient is zero");
        let step = 1e-3;
        let mut numeric = vec![0f64; per];
        for (k, num) in numeric.iter_mut().enumerate() {
            let mut p = m.clone();
            p[k] += step;
            let up = tail.logit(&p, hw, class);
            p[k] -= 2.0 * step;
            *num = (up - tail.logit(&p, hw, class)) / (2.0 * step);
            let tol = 1e-5 * max_g;
            assert!(
                (g[k] as f64 - *num).abs() <= tol,
                "image {i} element {k}: analytic {} vs numeric {num} (tol {tol:e})",
                g[k]
            );
        }
        for (ch, alpha) in e.alphas.iter().enumerate() {
            let mean = numeric[ch * hw..(ch + 1) * hw].iter().sum::<f64>() / hw as f64;
            assert!((*alpha as f64 - mean).abs() <= 1e-5 * max_g, "alpha {ch}");
        }
    }
}

/// Head tensors of a fine-tuned network from its state dict, in f64.
fn host_tail_of(sd: &BTreeMap<String, Tensor>, spec: &HeadSpec) -> HostTail {
    let t = |k: &str| f64s(&sd[k]);
    let hidden = (0..spec.hidden.len())
        .map(|k| {
            let p = format!("head.hidden.{k}");
            let bn = spec.batchnorm.then(|| {
                ["weight", "bias", "running_mean", "running_var"].map(|s| t(&format!("{p}.bn.{s}")))
            });
            (t(&format!("{p}.weight")), t(&format!("{p}.bias")), bn)
        })
        .collect();
    HostTail {
        norm: None,
        hidden,
        out: (t("head.out.weight"), t("head.out.bias")),
    }
}

/// Non-trivial BN statistics and biases (init gives mean 0, var 1, beta 0, bias 0).
fn stir(sd: &mut BTreeMap<String, Tensor>, rng: &mut Rng) {
    for (k, v) in sd.iter_mut() {
        if k.starts_with("head.") && !k.ends_with(".weight") || k.ends_with("bn.weight") {
            let pos = k.ends_with("running_var") || k.ends_with("bn.weight");
            for x in v.data_mut() {
                let r = rng.normal() as f32 * 0.3;
                *x = if pos { 1.0 + r.abs() } else { r };
            }
        }
    }
}

#[test]
fn the_fine_tuned_networks_map_gradient_matches_finite_differences() {
    // ResNet18 with a 512-6-7 head (BN, dropout: the identity when explaining) at 64x64: a
    // 2x2 map of 512 channels, on the reference backend.
    let b = ReferenceBackend;
    let spec = HeadSpec {
        pool: Pool::Avg,
        hidden: vec![6],
        batchnorm: true,
        dropout: 0.3,
        classes: classes::COUNT,
    };
    let mut sd = random_weights(Arch::ResNet18, 3, None);
    sd.extend(spec.init(512, 4).unwrap());
    stir(&mut sd, &mut Rng::new(5));
    let net = Net::from_graph(&b, Graph::with_head(Arch::ResNet18, &spec), &sd).unwrap();
    let tail = host_tail_of(&sd, &spec);
    let ex = Explainer {
        model: CamModel::Net(net),
        size: 64,
        preprocess: PP,
        classes: classes::ClassList::isic2018(),
    };
    let x = images(2, 64, 6);
    check_against_finite_differences(&b, &ex, &x, &tail, classes::BCC);
    // What infer computes for these images is what the explainer computes.
    let CamModel::Net(net) = &ex.model else {
        unreachable!()
    };
    use skinengine::pipeline::EvalModel;
    let out = net.eval_forward(&b, &x, true).unwrap().logits.unwrap();
    let from = ex.logits_from_map(&b, ex.map(&b, &x).unwrap()).unwrap();
    assert_eq!(
        out, from.logits,
        "the tail reproduces the whole network's logits"
    );
}

/// A 5-unit head with BN (non-trivial statistics) on `width` standardised features, and its
/// f64 twin.
fn head_model<B: Backend>(b: &B, width: usize, seed: u64) -> (Head<B>, FeatureNorm, HostTail) {
    let mut rng = Rng::new(seed);
    let mut head = Head::new(b, width, &[5], true, seed).unwrap();
    let norm = FeatureNorm {
        mean: (0..width).map(|_| rng.normal() as f32 * 0.1).collect(),
        std: (0..width)
            .map(|_| 0.5 + rng.normal().abs() as f32)
            .collect(),
    };
    // Head tensors are named as a fine-tuned network's without the "head." prefix.
    let mut sd: BTreeMap<String, Tensor> = head
        .named(b)
        .unwrap()
        .into_iter()
        .map(|(k, v)| (format!("head.{k}"), v))
        .collect();
    stir(&mut sd, &mut rng);
    let plain = sd
        .iter()
        .map(|(k, v)| (k["head.".len()..].to_string(), v.clone()))
        .collect();
    head.load_named(b, &plain, Path::new("test")).unwrap();
    let spec = HeadSpec {
        pool: Pool::Avg,
        hidden: vec![5],
        batchnorm: true,
        dropout: 0.0,
        classes: classes::COUNT,
    };
    let mut tail = host_tail_of(&sd, &spec);
    tail.norm = Some((
        norm.mean.iter().map(|&v| v as f64).collect(),
        norm.std.iter().map(|&v| v as f64).collect(),
    ));
    (head, norm, tail)
}

#[test]
fn a_head_models_map_gradient_matches_finite_differences_on_both_backbone_kinds() {
    // A Net backbone (what VGG19 runs as; built here from ResNet18 weights to stay small:
    // FrozenBackbone::new folds every ResNet), reference backend, 64x64: a 2x2 map.
    let b = ReferenceBackend;
    let (head, norm, tail) = head_model(&b, 512, 7);
    let sd = random_weights(Arch::ResNet18, 8, None);
    let ex = Explainer {
        model: CamModel::Head {
            backbone: FrozenBackbone::Net(
                Net::from_state_dict(&b, Arch::ResNet18, &sd, false).unwrap(),
            ),
            head,
            norm,
        },
        size: 64,
        preprocess: PP,
        classes: classes::ClassList::isic2018(),
    };
    check_against_finite_differences(&b, &ex, &images(2, 64, 9), &tail, classes::MEL);
    // The folded ResNet50 (BN in the convolutions; its own map function), on the CPU backend
    // to keep the test fast: 64x64, a 2x2 map of 2048 channels.
    let c = CpuBackend;
    let (head, norm, tail) = head_model(&c, 2048, 10);
    let sd = random_weights(Arch::ResNet50, 11, None);
    let ex = Explainer {
        model: CamModel::Head {
            backbone: FrozenBackbone::Folded(ResNet50::from_state_dict(&c, &sd).unwrap()),
            head,
            norm,
        },
        size: 64,
        preprocess: PP,
        classes: classes::ClassList::isic2018(),
    };
    check_against_finite_differences(&c, &ex, &images(1, 64, 12), &tail, classes::NV);
}

#[test]
fn a_logit_reading_one_channel_puts_the_heat_where_that_channel_is_large() {
    // A fine-tuned ResNet18 whose head is one dense layer with a single non-zero weight: the
    // MEL logit is 2 x (channel 17's spatial mean). Its gradient with respect to the map is
    // 2/16 on channel 17 and 0 elsewhere, so alpha_17 = 2/16, every other alpha 0, and the
    // CAM is channel 17 scaled by 1/8: 5/8 in the top-left quadrant, 0 elsewhere, whatever the
    // other channels hold.
    let b = ReferenceBackend;
    let spec = HeadSpec {
        pool: Pool::Avg,
        hidden: vec![],
        batchnorm: false,
        dropout: 0.0,
        classes: classes::COUNT,
    };
    let mut sd = random_weights(Arch::ResNet18, 1, None);
    sd.extend(spec.init(512, 2).unwrap());
    let mut w = Tensor::zeros(&[classes::COUNT, 512]);
    w.data_mut()[classes::MEL * 512 + 17] = 2.0;
    sd.insert("head.out.weight".into(), w);
    let ex = Explainer {
        model: CamModel::Net(
            Net::from_graph(&b, Graph::with_head(Arch::ResNet18, &spec), &sd).unwrap(),
        ),
        size: 128,
        preprocess: PP,
        classes: classes::ClassList::isic2018(),
    };
    let mut rng = Rng::new(3);
    let mut map = Tensor::from_fn(&[1, 512, 4, 4], |_| rng.normal().abs() as f32);
    for (i, v) in map.data_mut()[17 * 16..18 * 16].iter_mut().enumerate() {
        *v = if i / 4 < 2 && i % 4 < 2 { 5.0 } else { 0.0 };
    }
    let e = ex
        .explain_map(&b, b.upload(&map).unwrap(), 1, Some(classes::MEL))
        .unwrap()
        .pop()
        .unwrap();
    assert_eq!(e.class, classes::MEL);
    for (k, a) in e.alphas.iter().enumerate() {
        let want = if k == 17 { 0.125 } else { 0.0 };
        assert!((a - want).abs() <= 1e-7, "alpha {k} = {a}");
    }
    let want: Vec<f32> = (0..16)
        .map(|i| if i / 4 < 2 && i % 4 < 2 { 0.625 } else { 0.0 })
        .collect();
    for (got, want) in e.cam.data.iter().zip(&want) {
        assert!((got - want).abs() <= 1e-6, "{:?}", e.cam.data);
    }
    // Drawn over a grey 64x48 image: red (jet's hot end) in the top-left, blue (cold) in the
    // bottom-right.
    let grey = Rgb {
        width: 64,
        height: 48,
        pixels: vec![128; 64 * 48 * 3],
    };
    let img = ex.overlay(&grey, &e.cam);
    let px = |x: usize, y: usize| &img.pixels[(y * 64 + x) * 3..(y * 64 + x) * 3 + 3];
    // Jet's ends are (128, 0, 0) and (0, 0, 128); half blended over grey 128.
    assert_eq!(px(5, 5), [128, 64, 64]);
    assert_eq!(px(58, 42), [64, 64, 128]);
    // An explained class with no positive evidence anywhere: an all-zero map, normalised to
    // zeros (no NaN).
    let zero = ex
        .explain_map(&b, b.upload(&map).unwrap(), 1, Some(classes::NV))
        .unwrap()
        .pop()
        .unwrap();
    assert_eq!(zero.cam.max(), 0.0);
    assert!(zero.cam.normalised().iter().all(|&v| v == 0.0));
}

fn cli(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_skinengine"))
        .args(args)
        .output()
        .unwrap()
}

fn ok(args: &[&str]) -> String {
    let out = cli(args);
    assert!(
        out.status.success(),
        "{args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Probabilities of each image in a prediction CSV, by image id.
fn read_probs(csv: &Path) -> BTreeMap<String, Vec<f64>> {
    std::fs::read_to_string(csv)
        .unwrap()
        .lines()
        .skip(1)
        .map(|l| {
            let mut f = l.split(',');
            let id = f.next().unwrap().to_string();
            (id, f.map(|v| v.parse().unwrap()).collect())
        })
        .collect()
}

#[test]
fn infer_writes_a_heat_map_per_image_and_dihedral_tta_averages_the_eight_views() {
    // A head on random-init ResNet18 features, trained 1 epoch on 26 synthetic 64x48 images.
    let d = tempfile::tempdir().unwrap();
    let p = |s: &str| d.path().join(s).display().to_string();
    skinengine::data::synth::write_synth(
        Path::new(&p("data")),
        &skinengine::data::synth::SynthConfig {
            n: 26,
            width: 64,
            height: 48,
            seed: 4,
            ..Default::default()
        },
    )
    .unwrap();
    let common = ["--device", "cpu", "--threads", "2"];
    let (data, run) = (p("data"), p("run"));
    let mut train = vec!["train", "--data", &data, "--out", &run];
    train.extend(["--backbone", "resnet18", "--epochs", "1"]);
    train.extend(common);
    ok(&train);
    let model = p("run/model.safetensors");
    // Three of the images, one of them a PNG of another size.
    let found = skinengine::data::files::collect_images(&[data.clone().into()]).unwrap();
    std::fs::create_dir(p("few")).unwrap();
    for (_, f) in &found[..2] {
        std::fs::copy(f, d.path().join("few").join(f.file_name().unwrap())).unwrap();
    }
    let square = image::RgbImage::from_fn(80, 80, |x, y| {
        image::Rgb([(x * 3) as u8, (y * 3) as u8, ((x + y) % 256) as u8])
    });
    square.save(p("few/square.png")).unwrap();
    let (few, maps) = (p("few"), p("maps"));
    let infer_cli = |out: &str, extra: &[&str]| {
        let mut a = vec!["infer", "--model", &model, "--images", &few, "--out", out];
        a.extend(common);
        a.extend(extra);
        ok(&a)
    };
    infer_cli(&p("plain.csv"), &[]);
    let said = infer_cli(&p("maps.csv"), &["--heatmaps", &maps, "--heatmap-raw"]);
    assert!(said.contains("3 heat maps"), "{said}");
    // The same probabilities as without maps, byte for byte.
    assert_eq!(
        std::fs::read(p("plain.csv")).unwrap(),
        std::fs::read(p("maps.csv")).unwrap()
    );
    let mut pngs = 0;
    for f in std::fs::read_dir(&few).unwrap() {
        let f = f.unwrap().path();
        let id = f.file_stem().unwrap().to_str().unwrap();
        let (w, h) = image::image_dimensions(&f).unwrap();
        let png = d.path().join("maps").join(format!("{id}.png"));
        let heat = image::open(&png).unwrap();
        assert_eq!(
            image::ImageFormat::from_path(&png).unwrap(),
            image::ImageFormat::Png
        );
        assert_eq!((heat.width(), heat.height()), (w, h), "{id}");
        let raw = skinengine::io::safetensors::read(&png.with_extension("safetensors")).unwrap();
        // ResNet18 at 224x224: a 7x7 map, non-negative (after the ReLU).
        let cam = &raw.tensors["cam"];
        assert_eq!(cam.shape(), [7, 7]);
        assert!(cam.data().iter().all(|&v| v >= 0.0));
        pngs += 1;
    }
    assert_eq!(pngs, 3);
    assert_eq!(std::fs::read_dir(&maps).unwrap().count(), 6);
    // A named class is explained in every image; an unknown one is refused before any work,
    // naming the codes.
    let named = p("named");
    infer_cli(
        &p("n.csv"),
        &[
            "--heatmaps",
            &named,
            "--heatmap-class",
            "mel",
            "--heatmap-raw",
        ],
    );
    let meta =
        skinengine::io::safetensors::read(Path::new(&p("named/square.safetensors"))).unwrap();
    assert_eq!(meta.metadata["class"], "MEL");
    let mut bad = vec!["infer", "--model", &model, "--images", &few, "--out"];
    let bad_out = p("bad.csv");
    bad.extend([
        bad_out.as_str(),
        "--heatmaps",
        &named,
        "--heatmap-class",
        "MELANOMA",
    ]);
    let out = cli(&bad);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(
        err.contains("unknown class code 'MELANOMA'") && err.contains("MEL, NV, BCC"),
        "{err}"
    );
    assert!(!Path::new(&bad_out).exists());

    // `--tta` alone is `--tta mirror`.
    infer_cli(&p("tta.csv"), &["--tta"]);
    infer_cli(&p("mirror.csv"), &["--tta", "mirror"]);
    assert_eq!(
        std::fs::read(p("tta.csv")).unwrap(),
        std::fs::read(p("mirror.csv")).unwrap()
    );
    // Dihedral TTA = the mean of the 8 symmetries of the square input, each classified alone.
    // The views are made here with rotations written as index maps of their own: r quarter
    // turns (output (i, j) reads input (s-1-j, i), applied r times), then optionally mirrored.
    let b = CpuBackend;
    let ex = Explainer::load(&b, Path::new(&model), None).unwrap();
    let png = Path::new(&few).join("square.png");
    let pp = ex.preprocess;
    let x = view_tensor(&png, &Transform::IDENTITY, &pp, ex.size).unwrap();
    let s = ex.size as usize;
    let turn = |v: &[f32]| -> Vec<f32> {
        let mut o = vec![0f32; v.len()];
        for c in 0..3 {
            for i in 0..s {
                for j in 0..s {
                    o[c * s * s + i * s + j] = v[c * s * s + (s - 1 - j) * s + i];
                }
            }
        }
        o
    };
    let mirror = |v: &[f32]| -> Vec<f32> {
        let mut o = v.to_vec();
        for row in o.chunks_mut(s) {
            row.reverse();
        }
        o
    };
    let mut mean = [0f64; classes::COUNT];
    let mut view = x.data().to_vec();
    let mut singles = Vec::new();
    for _ in 0..4 {
        for v in [view.clone(), mirror(&view)] {
            let t = Tensor::new(&[1, 3, s, s], v).unwrap();
            let e = ex.explain(&b, &t, 1, None).unwrap().pop().unwrap();
            for (m, p) in mean.iter_mut().zip(&e.probs) {
                *m += *p as f64 / 8.0;
            }
            singles.push(e.probs);
        }
        view = turn(&view);
    }
    let run_tta = |tta: Tta| {
        let cfg = InferConfig {
            model: model.clone().into(),
            weights: None,
            images: vec![png.clone()],
            tta,
            batch: 4,
            strict: true,
            decode: Decode::default(),
            shard: None,
        };
        infer(&b, &cfg).unwrap().probs[0].clone()
    };
    let dihedral = run_tta(Tta::Dihedral);
    // Averaging 8 probabilities in f32 (infer) vs f64 (here): a few f32 roundings of values <= 1;
    // and the CPU picks Winograd or the direct kernel for a 3x3 layer by its tile count, so one
    // view at a time (here) and four per batch (infer) may run different algorithms, whose
    // rounding differs by up to ~60 u sum|w||x| per layer: ~1e-6 in these probabilities.
    for (got, want) in dihedral.iter().zip(mean) {
        assert!(
            (*got as f64 - want).abs() <= 1e-5,
            "{dihedral:?} vs {mean:?}"
        );
    }
    // The views really differ (so the test can tell dihedral from no TTA), and `Tta::None` is
    // the first view alone.
    let spread = singles
        .iter()
        .map(|p| (p[0] - singles[0][0]).abs())
        .fold(0f32, f32::max);
    assert!(
        spread > 1e-5,
        "the 8 views classify identically: {singles:?}"
    );
    assert_eq!(run_tta(Tta::None), singles[0]);
    // The CSV of `--tta dihedral` says the same.
    infer_cli(&p("d.csv"), &["--tta", "dihedral"]);
    let csv = read_probs(Path::new(&p("d.csv")));
    for (got, want) in csv["square"].iter().zip(dihedral) {
        assert!((got - want as f64).abs() <= 1e-6);
    }
}

/// The same fine-tuned network explained on the reference, CPU and CUDA-emulator backends:
/// probabilities and maps agree. Bound: the backends sum in different orders in f32 through
/// ResNet18 (measured 6e-7 of the largest map value); 1e-4 leaves room while a wrong kernel
/// (a dropped term, a wrong mask) moves the map by its own size.
#[cfg(target_os = "linux")]
#[test]
fn every_backend_explains_alike() {
    let spec = HeadSpec {
        pool: Pool::Avg,
        // A linear head on the pooled map: the predicted class's map sums to its logit (minus
        // a zero bias), positive, so the map cannot be all zero.
        hidden: vec![],
        batchnorm: false,
        dropout: 0.0,
        classes: classes::COUNT,
    };
    let mut sd = random_weights(Arch::ResNet18, 13, None);
    sd.extend(spec.init(512, 14).unwrap());
    stir(&mut sd, &mut Rng::new(15));
    // 48x48: a 2x2 map at half the emulator time of 64x64.
    let x = images(1, 48, 16);
    fn run<B: Backend>(
        b: &B,
        sd: &BTreeMap<String, Tensor>,
        spec: &HeadSpec,
        x: &Tensor,
    ) -> skinengine::pipeline::Explained {
        let ex = Explainer {
            model: CamModel::Net(
                Net::from_graph(b, Graph::with_head(Arch::ResNet18, spec), sd).unwrap(),
            ),
            size: 48,
            preprocess: PP,
            classes: classes::ClassList::isic2018(),
        };
        ex.explain(b, x, 1, None).unwrap().pop().unwrap()
    }
    let want = run(&ReferenceBackend, &sd, &spec, &x);
    let scale = want.cam.max();
    assert!(
        scale > 0.0,
        "the reference map is all zero: pick another seed"
    );
    for (name, got) in [
        ("cpu", run(&CpuBackend, &sd, &spec, &x)),
        (
            "cuda-emulator",
            run(&skinengine::testing::suite::emulator(), &sd, &spec, &x),
        ),
    ] {
        for (g, w) in got.cam.data.iter().zip(&want.cam.data) {
            assert!(
                (g - w).abs() <= 1e-4 * scale,
                "{name}: {:?} vs {:?}",
                got.cam,
                want.cam
            );
        }
        for (g, w) in got.probs.iter().zip(&want.probs) {
            assert!(
                (g - w).abs() <= 1e-5,
                "{name}: {:?} vs {:?}",
                got.probs,
                want.probs
            );
        }
    }
}
