//! A model trained on ISIC 2019's 8 classes (`synth --layout isic2019` -> `train`, a fine-tuned
//! ResNet18 at 32x32 so that it is quick) explained and served with its own class list:
//! `infer --heatmaps` writes the maps and the CSV plain `infer` writes (UNK column included),
//! takes `--heatmap-class SCC` and refuses ISIC 2018's AKIEC naming the model's codes; `serve`
//! answers with the 8 classes and `infer`'s probabilities, takes `class=scc`, refuses `akiec`,
//! and its page carries the model's list.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::Path;
use std::process::Command;
use std::time::Duration;

use serde_json::Value;
use skinengine::CpuBackend;
use skinengine::backend::select::DeviceChoice;
use skinengine::classes::ClassList;
use skinengine::data::synth::{SynthConfig, SynthLayout, write_synth};
use skinengine::model::arch::Arch;
use skinengine::serve::{ServeConfig, start};
use skinengine::train::finetune::{FineTune, FineTuneConfig};
use skinengine::train::{TrainConfig, train};

const CODES: &str = "MEL, NV, BCC, AK, BKL, DF, VASC, SCC";

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

/// One HTTP/1.1 request with `Connection: close`: (status, body).
fn http(addr: SocketAddr, method: &str, path: &str, ct: &str, body: &[u8]) -> (u16, Vec<u8>) {
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(60))).unwrap();
    let head = format!(
        "{method} {path} HTTP/1.1\r\nHost: t\r\nConnection: close\r\nContent-Type: {ct}\r\n\
         Content-Length: {}\r\n\r\n",
        body.len()
    );
    s.write_all(head.as_bytes()).unwrap();
    s.write_all(body).unwrap();
    let mut buf = Vec::new();
    s.read_to_end(&mut buf).unwrap();
    let at = buf.windows(4).position(|w| w == b"\r\n\r\n").unwrap();
    let status = String::from_utf8_lossy(&buf[9..12]).parse().unwrap();
    (status, buf[at + 4..].to_vec())
}

#[test]
fn an_isic2019_model_is_explained_and_served_with_its_8_classes() {
    let d = tempfile::tempdir().unwrap();
    let p = |s: &str| d.path().join(s).display().to_string();
    let data = d.path().join("data");
    write_synth(
        &data,
        &SynthConfig {
            n: 40,
            width: 64,
            height: 48,
            seed: 5,
            layout: SynthLayout::Isic2019,
            ..SynthConfig::default()
        },
    )
    .unwrap();
    let run = d.path().join("run");
    let mut cfg = TrainConfig::new(data.clone(), run.clone());
    cfg.head = vec![8];
    cfg.epochs = 1;
    cfg.batch_size = 8;
    cfg.val_fraction = 0.3;
    cfg.seed = 4;
    cfg.strict = true;
    cfg.fine = FineTuneConfig {
        depth: FineTune::Layer4,
        backbone: Some(Arch::ResNet18),
        image_size: 32,
        ..FineTuneConfig::default()
    };
    assert_eq!(
        train(&CpuBackend, &cfg).unwrap().classes,
        ClassList::isic2019()
    );
    let model = p("run/model.safetensors");
    let images = data.join("ISIC_2019_Training_Input");
    let imgs = images.display().to_string();

    // infer --heatmaps: the CSV plain infer writes (ISIC 2019's columns, UNK as 0.0), byte for
    // byte, and one PNG per image of the image's size; the named class is SCC in every map.
    let infer_cli = |out: &str, extra: &[&str]| {
        let mut a = vec!["infer", "--model", &model, "--images", &imgs, "--out", out];
        a.extend(["--device", "cpu", "--threads", "2"]);
        a.extend(extra);
        ok(&a)
    };
    infer_cli(&p("plain.csv"), &[]);
    let maps = p("maps");
    let said = infer_cli(
        &p("maps.csv"),
        &[
            "--heatmaps",
            &maps,
            "--heatmap-class",
            "scc",
            "--heatmap-raw",
        ],
    );
    assert!(said.contains("40 heat maps"), "{said}");
    let plain = std::fs::read_to_string(p("plain.csv")).unwrap();
    assert!(plain.starts_with("image,MEL,NV,BCC,AK,BKL,DF,VASC,SCC,UNK\n"));
    assert_eq!(plain, std::fs::read_to_string(p("maps.csv")).unwrap());
    for f in std::fs::read_dir(&images).unwrap() {
        let f = f.unwrap().path();
        let id = f.file_stem().unwrap().to_str().unwrap();
        let png = d.path().join("maps").join(format!("{id}.png"));
        assert_eq!(
            image::image_dimensions(&png).unwrap(),
            image::image_dimensions(&f).unwrap()
        );
        let raw = skinengine::io::safetensors::read(&png.with_extension("safetensors")).unwrap();
        assert_eq!(raw.metadata["class"], "SCC");
    }
    // embed --logits: the model's 8 class logits, and the file says which classes they are.
    let emb = p("emb.safetensors");
    ok(&[
        "embed", "--model", &model, "--images", &imgs, "--out", &emb, "--logits", "--device", "cpu",
    ]);
    let e = skinengine::io::safetensors::read(std::path::Path::new(&emb)).unwrap();
    assert_eq!(e.metadata["classes"], "MEL,NV,BCC,AK,BKL,DF,VASC,SCC");
    assert_eq!(e.tensors["logits"].shape(), &[40, 8]);
    // ISIC 2018's AKIEC is no class of this model: refused before any output, naming its codes.
    let bad = cli(&[
        "infer",
        "--model",
        &model,
        "--images",
        &imgs,
        "--out",
        &p("bad.csv"),
        "--heatmaps",
        &p("bad_maps"),
        "--heatmap-class",
        "AKIEC",
    ]);
    let err = String::from_utf8_lossy(&bad.stderr);
    assert!(!bad.status.success());
    assert!(
        err.contains("unknown class code 'AKIEC'") && err.contains(CODES),
        "{err}"
    );
    assert!(!Path::new(&p("bad.csv")).exists() && !Path::new(&p("bad_maps")).exists());

    // serve: the model's 8 classes, infer's probabilities (the CSV's shortest round-trip f32s).
    let first = plain.lines().nth(1).unwrap();
    let mut cols = first.split(',');
    let id = cols.next().unwrap();
    let want: Vec<f32> = cols.take(8).map(|v| v.parse().unwrap()).collect();
    let jpeg = std::fs::read(images.join(format!("{id}.jpg"))).unwrap();
    let mut scfg = ServeConfig::new(model.clone().into());
    scfg.device = DeviceChoice::Cpu;
    scfg.addr = SocketAddr::from(([127, 0, 0, 1], 0));
    let s = start(&scfg).unwrap();
    s.wait_ready(Duration::from_secs(60)).unwrap();
    let addr = s.addr();
    let (status, body) = http(addr, "POST", "/v1/classify?class=scc", "image/jpeg", &jpeg);
    assert_eq!(status, 200, "{}", String::from_utf8_lossy(&body));
    let v: Value = serde_json::from_slice(&body).unwrap();
    let codes: Vec<&str> = v["classes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c.as_str().unwrap())
        .collect();
    assert_eq!(codes.join(", "), CODES);
    assert_eq!(v["probabilities"].as_object().unwrap().len(), 8);
    for (c, w) in codes.iter().zip(&want) {
        let got = v["probabilities"][c].as_f64().unwrap() as f32;
        assert!((got - w).abs() <= 1e-6, "{c}: serve {got} vs infer {w}");
    }
    let best = (0..8).max_by(|&a, &b| want[a].total_cmp(&want[b])).unwrap();
    let l = ClassList::isic2019();
    assert_eq!(v["predicted"]["class"], l.code(best));
    assert_eq!(v["predicted"]["name"], l.name(best));
    assert_eq!(v["heatmap"]["class"], "SCC");
    let (status, body) = http(
        addr,
        "POST",
        "/v1/classify?class=akiec",
        "image/jpeg",
        &jpeg,
    );
    let e = String::from_utf8_lossy(&body);
    assert_eq!(status, 400, "{e}");
    assert!(e.contains("class=akiec") && e.contains(CODES), "{e}");
    // The page names the model's classes, not ISIC 2018's.
    let (status, page) = http(addr, "GET", "/", "text/plain", b"");
    let page = String::from_utf8(page).unwrap();
    assert_eq!(status, 200);
    assert!(page.contains(r#"["SCC","squamous cell carcinoma"]"#));
    assert!(!page.contains("AKIEC") && !page.contains("ISIC 2018"));
    s.shutdown().unwrap();
}
