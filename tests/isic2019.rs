//! ISIC 2019 Task 1 end to end on synthetic data: `synth --layout isic2019` -> the reader (8
//! trained classes, UNK column, metadata lesion ids, empty ones) -> head training on ResNet18
//! features -> the model file's class list -> `infer` writing ISIC 2019's 9 columns (UNK 0.0)
//! -> `eval` of train's validation files and of infer's CSV; and the reader's errors on bad
//! class headers, each naming the file.

use skinengine::CpuBackend;
use skinengine::classes::ClassList;
use skinengine::data::class_weights::ClassWeights;
use skinengine::data::dataset::{Layout, load};
use skinengine::data::image::Decode;
use skinengine::data::synth::{SynthConfig, SynthLayout, write_synth};
use skinengine::data::views::{ViewConfig, make_views};
use skinengine::eval::{EvalConfig, evaluate_files};
use skinengine::io::safetensors as st;
use skinengine::metrics::score_files;
use skinengine::model::arch::Arch;
use skinengine::pipeline::infer::{InferConfig, infer};
use skinengine::train::{TrainConfig, train};
use std::path::Path;

const GT: &str = "ISIC_2019_Training_GroundTruth.csv";
const META: &str = "ISIC_2019_Training_Metadata.csv";

fn synth(dir: &Path, n: usize, seed: u64) -> skinengine::data::synth::SynthSummary {
    write_synth(
        dir,
        &SynthConfig {
            n,
            width: 64,
            height: 48,
            seed,
            layout: SynthLayout::Isic2019,
            ..SynthConfig::default()
        },
    )
    .unwrap()
}

#[test]
fn synthetic_isic2019_reads_with_its_class_list_and_lesions() {
    let d = tempfile::tempdir().unwrap();
    let data = d.path().join("data");
    let s = synth(&data, 120, 3);
    assert!(data.join("ISIC_2019_Training_Input").is_dir());
    let gt = std::fs::read_to_string(data.join(GT)).unwrap();
    assert!(
        gt.starts_with("image,MEL,NV,BCC,AK,BKL,DF,VASC,SCC,UNK\n"),
        "{gt}"
    );
    // UNK all zeros, as in the official training ground truth.
    assert!(gt.lines().skip(1).all(|l| l.ends_with(",0.0")));
    let meta = std::fs::read_to_string(data.join(META)).unwrap();
    assert!(meta.starts_with("image,age_approx,anatom_site_general,lesion_id,sex\n"));

    let ds = load(&data).unwrap();
    assert_eq!(ds.layout, Layout::Isic2019);
    assert_eq!(ds.classes, ClassList::isic2019());
    assert_eq!(ds.samples.len(), 120);
    assert!(ds.problems.is_empty(), "{:?}", ds.problems);
    assert_eq!(ds.counts(), s.class_images);
    // Every class has images, SCC (index 7) included: 120 >= 2 * 8 images.
    assert!(s.class_lesions.iter().all(|&l| l >= 2), "{s:?}");
    // Empty lesion ids: the image is its own lesion, said once in a note.
    let empty = meta
        .lines()
        .skip(1)
        .filter(|l| l.split(',').nth(3) == Some(""))
        .count();
    assert!(empty > 0, "the synthetic metadata has no empty lesion id");
    assert!(
        ds.notes
            .iter()
            .any(|n| n.contains(&format!("{empty} images have an empty lesion_id"))),
        "{:?}",
        ds.notes
    );
    assert_eq!(ds.lesion_count(), s.lesions);
    // Metadata columns are kept per sample.
    assert!(ds.samples[0].meta.contains_key("anatom_site_general"));

    // The seed's oversampling keyed by code: AK (the seed's AKIEC) gets the vertical flip, DF
    // and VASC the crops, SCC (a class the seed did not know) nothing extra.
    let cfg = ViewConfig {
        oversample: true,
        ..ViewConfig::default()
    };
    let all: Vec<usize> = (0..ds.samples.len()).collect();
    let views = make_views(&ds, &all, &cfg, 1);
    let per_class = |suffix: &str, class: usize| {
        views
            .iter()
            .filter(|v| v.name.ends_with(suffix) && ds.samples[v.sample].label == Some(class))
            .count()
    };
    let counts = ds.counts();
    assert_eq!(per_class("_vflip", 3), counts[3]);
    assert_eq!(per_class("_crop1", 5), counts[5]);
    assert_eq!(per_class("_crop1", 6), counts[6]);
    let scc_views = views
        .iter()
        .filter(|v| ds.samples[v.sample].label == Some(7))
        .count();
    assert_eq!(scc_views, counts[7]);

    // Class weights over 8 classes; 7 explicit weights do not fit the data.
    let labels: Vec<usize> = ds.samples.iter().map(|s| s.label.unwrap()).collect();
    let w = ClassWeights::Inverse
        .compute_for(&ds.classes, &labels)
        .unwrap();
    assert_eq!(w.len(), 8);
    let seven: ClassWeights = "1,1,1,1,1,1,1".parse().unwrap();
    let e = seven
        .compute_for(&ds.classes, &labels)
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("7 explicit class weights for the 8 classes"),
        "{e}"
    );
}

#[test]
fn bad_isic2019_class_headers_are_errors_naming_the_file() {
    let d = tempfile::tempdir().unwrap();
    let data = d.path().join("data");
    synth(&data, 10, 1);
    let path = data.join(GT);
    let good = std::fs::read_to_string(&path).unwrap();
    let (header, rows) = good.split_once('\n').unwrap();
    let cases: [(&str, &str, &[&str]); 4] = [
        (
            "MEL,NV,BCC,AK,BKL,DF,VASC,SCC,UNK",
            "MEL,NV,BCC,AK,BKL,DF,VASC,XYZ,UNK",
            &["missing column(s) SCC"],
        ),
        (
            "MEL,NV,BCC,AK,BKL,DF,VASC,SCC,UNK",
            "MEL,NV,BCC,AK,BKL,DF,VASC,SCC,FOO",
            &["unexpected column(s) FOO"],
        ),
        (
            "MEL,NV,BCC,AK,BKL,DF,VASC,SCC,UNK",
            "MEL,NV,BCC,AK,BKL,DF,VASC,SCC,MEL",
            &["duplicate column 'MEL'", "columns 2 and 10"],
        ),
        ("image,", "img,", &["missing column 'image'"]),
    ];
    for (from, to, want) in cases {
        std::fs::write(&path, format!("{}\n{rows}", header.replace(from, to))).unwrap();
        let e = load(&data).unwrap_err().to_string();
        assert!(e.contains(&path.display().to_string()), "{e}");
        for w in want {
            assert!(e.contains(w), "{to}: {e}");
        }
    }
    // Without the UNK column the file still reads (the 8 trained classes); a row that is UNK
    // is left out and listed.
    let no_unk: String = good
        .lines()
        .map(|l| l.rsplit_once(',').unwrap().0.to_string() + "\n")
        .collect();
    std::fs::write(&path, &no_unk).unwrap();
    assert_eq!(load(&data).unwrap().samples.len(), 10);
    let mut lines: Vec<String> = good.lines().map(String::from).collect();
    let id = lines[1].split(',').next().unwrap().to_string();
    lines[1] = format!("{id},0.0,0.0,0.0,0.0,0.0,0.0,0.0,0.0,1.0");
    std::fs::write(&path, lines.join("\n") + "\n").unwrap();
    let ds = load(&data).unwrap();
    assert_eq!(ds.samples.len(), 9);
    assert!(
        ds.problems
            .iter()
            .any(|p| p.contains(&id) && p.contains("UNK") && p.contains(GT)),
        "{:?}",
        ds.problems
    );
}

#[test]
fn isic2019_trains_infers_and_evaluates_end_to_end() {
    let d = tempfile::tempdir().unwrap();
    let data = d.path().join("data");
    synth(&data, 40, 9);
    let run = d.path().join("run");
    let mut cfg = TrainConfig::new(data.clone(), run.clone());
    cfg.head = vec![16];
    cfg.epochs = 2;
    cfg.batch_size = 8;
    cfg.val_fraction = 0.3;
    cfg.seed = 2;
    cfg.strict = true;
    cfg.class_weights = ClassWeights::Inverse;
    cfg.views.oversample = true;
    cfg.fine.backbone = Some(Arch::ResNet18);
    let b = CpuBackend;
    let r = train(&b, &cfg).unwrap();
    assert_eq!(r.history.len(), 2);
    assert_eq!(r.classes, ClassList::isic2019());
    assert!(r.val_probs.iter().all(|p| p.len() == 8));

    // The model file records the list; its head has 8 outputs.
    let mf = st::read(&run.join("model.safetensors")).unwrap();
    assert_eq!(mf.metadata["classes"], "MEL,NV,BCC,AK,BKL,DF,VASC,SCC");
    assert_eq!(mf.tensors["out.weight"].shape()[0], 8);

    // train's validation files hold the 8 trained classes and score as train reported.
    let vt = std::fs::read_to_string(run.join("val_truth.csv")).unwrap();
    let vp = std::fs::read_to_string(run.join("val_pred.csv")).unwrap();
    assert!(vt.starts_with("image,MEL,NV,BCC,AK,BKL,DF,VASC,SCC\n"));
    assert!(vp.starts_with("image,MEL,NV,BCC,AK,BKL,DF,VASC,SCC\n"));
    let rep = score_files(&run.join("val_truth.csv"), &run.join("val_pred.csv")).unwrap();
    assert_eq!(rep.classes.len(), 8);
    let best = r.history.iter().find(|h| h.epoch == r.best_epoch).unwrap();
    assert_eq!(rep.bmca.to_bits(), best.val_bmca.to_bits());
    let report = std::fs::read_to_string(run.join("report.md")).unwrap();
    assert!(report.contains("| **SCC** |"), "{report}");

    // infer writes the submission columns: the 8 classes and UNK as 0.0.
    let icfg = InferConfig {
        model: run.join("model.safetensors"),
        weights: None,
        images: vec![data.join("ISIC_2019_Training_Input")],
        tta: skinengine::pipeline::tta::Tta::None,
        shard: None,
        batch: 16,
        strict: true,
        decode: Decode::Full,
    };
    let inf = infer(&b, &icfg).unwrap();
    assert_eq!(inf.classes, ClassList::isic2019());
    assert_eq!(inf.ids.len(), 40);
    let pred = d.path().join("pred.csv");
    inf.write_csv(&pred).unwrap();
    let text = std::fs::read_to_string(&pred).unwrap();
    assert!(text.starts_with("image,MEL,NV,BCC,AK,BKL,DF,VASC,SCC,UNK\n"));
    assert!(text.lines().skip(1).all(|l| l.ends_with(",0.0")));
    assert!(inf.summary(&pred).contains("SCC"));

    // eval against the data's own ground truth (9 columns, no UNK image): scored over the 9
    // columns as the official scorer takes them, UNK's AUC undefined, and the notes say so.
    let e = evaluate_files(&EvalConfig {
        truth: data.join(GT),
        pred: pred.clone(),
        out: None,
    })
    .unwrap();
    assert_eq!(e.report.classes.len(), 9);
    assert_eq!(e.report.classes[8], "UNK");
    assert!(e.report.per_class[8].auc.is_nan());
    assert!(e.report.per_class[7].auc.is_finite());
    assert_eq!(e.report.n, 40);
    assert!(e.notes.iter().any(|n| n.contains("UNK")), "{:?}", e.notes);
    // A prediction CSV with UNK against a truth without it is the scorer's error.
    let err = evaluate_files(&EvalConfig {
        truth: run.join("val_truth.csv"),
        pred,
        out: None,
    })
    .err()
    .expect("UNK is not a column of val_truth.csv")
    .to_string();
    assert!(err.contains("unexpected column(s) UNK"), "{err}");
}
