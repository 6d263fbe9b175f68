//! `skinengine convert` and the `.pth` reader behind it, on checkpoints written by torch 2.15
//! (tests/fixtures/pth/, made by tools/make_pth_fixtures.py) compared bit for bit with the f32
//! values torch itself gives, and on hand-made archives for every way a file can be wrong.

use skinengine::Tensor;
use skinengine::convert::{ConvertConfig, convert};
use skinengine::io::pth::{PthFile, PthLimits, parse_pth, read_pth, read_pth_with};
use skinengine::io::safetensors as st;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/pth")
        .join(name)
}

fn err(path: &Path) -> String {
    read_pth(path).unwrap_err().to_string()
}

/// Same names, shapes and f32 bit patterns.
fn assert_bit_exact(got: &BTreeMap<String, Tensor>, want: &BTreeMap<String, Tensor>) {
    assert_eq!(
        got.keys().collect::<Vec<_>>(),
        want.keys().collect::<Vec<_>>()
    );
    for (k, w) in want {
        let g = &got[k];
        assert_eq!(g.shape(), w.shape(), "{k}");
        let gb: Vec<u32> = g.data().iter().map(|v| v.to_bits()).collect();
        let wb: Vec<u32> = w.data().iter().map(|v| v.to_bits()).collect();
        assert_eq!(gb, wb, "{k}");
    }
}

fn small_expected() -> BTreeMap<String, Tensor> {
    st::read(&fixture("small_expected.safetensors"))
        .unwrap()
        .tensors
}

fn has_note(f: &PthFile, needle: &str) -> bool {
    f.notes.iter().any(|n| n.contains(needle))
}

#[test]
fn small_state_dict_matches_torch_bit_for_bit() {
    let f = read_pth(&fixture("small.pth")).unwrap();
    let want = small_expected();
    // Transposed, offset views sharing a storage, stride 0, 0-d and empty tensors included.
    for k in [
        "fc.weight",
        "shared.a",
        "shared.b",
        "expanded",
        "scalar",
        "empty",
    ] {
        assert!(want.contains_key(k), "{k}");
    }
    assert_bit_exact(&f.tensors, &want);
    assert_eq!(f.tensors["scalar"].shape(), &[] as &[usize]);
    assert_eq!(f.tensors["empty"].shape(), &[0, 3]);
    assert_eq!(f.state_dict_key, None);
    assert_eq!(f.stripped_prefixes, 0);
    assert_eq!(f.dropped_num_batches_tracked, 1);
    let dtypes: Vec<(&str, usize)> = f.source_dtypes.iter().map(|(k, v)| (*k, *v)).collect();
    assert_eq!(
        dtypes,
        [
            ("bfloat16", 1),
            ("float16", 1),
            ("float32", 9),
            ("float64", 1)
        ]
    );
    assert!(has_note(&f, "'index': int32 tensor"), "{:?}", f.notes);
    assert!(has_note(&f, "'step': not a tensor (int)"), "{:?}", f.notes);
    assert!(
        has_note(&f, "'comment': not a tensor (str)"),
        "{:?}",
        f.notes
    );
    assert!(
        has_note(&f, "dropped 1 num_batches_tracked"),
        "{:?}",
        f.notes
    );
}

#[test]
fn nested_deflated_big_endian_and_timm_checkpoints() {
    // Under `state_dict` with `module.` prefixes, beside other entries; no CRC-32s written.
    let f = read_pth(&fixture("nested.pth")).unwrap();
    assert_bit_exact(&f.tensors, &small_expected());
    assert_eq!(f.state_dict_key.as_deref(), Some("state_dict"));
    assert_eq!(f.stripped_prefixes, 16);
    assert!(
        has_note(
            &f,
            "ignored the other top-level entries: epoch, arch, best_acc1, optimizer"
        ),
        "{:?}",
        f.notes
    );
    // Every entry deflate-compressed.
    let f = read_pth(&fixture("deflate.pth")).unwrap();
    assert_bit_exact(&f.tensors, &small_expected());
    // Storages written big-endian.
    let f = read_pth(&fixture("big_endian.pth")).unwrap();
    let want = st::read(&fixture("big_endian_expected.safetensors")).unwrap();
    assert_bit_exact(&f.tensors, &want.tensors);
    // timm / training checkpoint: the state dict under `model`.
    let f = read_pth(&fixture("model_key.pth")).unwrap();
    assert_eq!(f.state_dict_key.as_deref(), Some("model"));
    assert_eq!(
        f.tensors.keys().collect::<Vec<_>>(),
        ["head.bias", "head.weight"]
    );
    assert_eq!(f.tensors["head.weight"].shape(), &[2, 3]);
}

#[test]
fn malicious_pickles_are_refused_naming_the_file_and_the_global() {
    for (name, global) in [
        ("malicious_os_system.pth", "`os.system`"),
        ("malicious_eval.pth", "`__builtin__.eval`"),
    ] {
        let p = fixture(name);
        let e = err(&p);
        assert!(e.starts_with(&p.display().to_string()), "{e}");
        assert!(e.contains("refused") && e.contains(global), "{e}");
        assert!(e.contains("Nothing was run"), "{e}");
    }
}

#[test]
fn wrong_files_say_what_they_are() {
    let e = err(&fixture("truncated.pth"));
    assert!(e.contains("truncated"), "{e}");
    let e = err(&fixture("not_zip.pth"));
    assert!(e.contains("not a zip archive"), "{e}");
    let e = err(&fixture("legacy.pth"));
    assert!(
        e.contains("legacy PyTorch checkpoint")
            && e.contains("_use_new_zipfile_serialization=True"),
        "{e}"
    );
    let e = err(&fixture("small_expected.safetensors"));
    assert!(e.contains("already a safetensors file"), "{e}");
    let dir = tempfile::tempdir().unwrap();
    let empty = dir.path().join("empty.pth");
    std::fs::write(&empty, b"").unwrap();
    assert!(err(&empty).contains("empty file"));
    assert!(err(&dir.path().join("absent.pth")).contains("cannot read"));

    // Every cut of a real checkpoint is an error, never a panic or a wrong result.
    let whole = std::fs::read(fixture("small.pth")).unwrap();
    let cut = dir.path().join("cut.pth");
    for n in (0..whole.len()).step_by(97) {
        std::fs::write(&cut, &whole[..n]).unwrap();
        assert!(read_pth(&cut).is_err(), "cut at {n}");
    }
    // One flipped byte in data.pkl ('conv.weight' -> 'conw.weight') fails the CRC-32.
    let at = whole.windows(11).position(|w| w == b"conv.weight").unwrap();
    let mut bad = whole.clone();
    bad[at + 3] = b'w';
    std::fs::write(&cut, &bad).unwrap();
    let e = err(&cut);
    assert!(e.contains("data.pkl' fails its CRC-32 check"), "{e}");
}

#[test]
fn mutated_checkpoints_never_panic() {
    // nested.pth has no CRC-32s, so changed bytes in data.pkl reach the pickle reader; the
    // others exercise the zip reader and the CRC checks. Every result must be Ok or Err.
    let mut seed = 0x9e37_79b9_7f4a_7c15u64;
    let mut next = || {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed
    };
    let limits = PthLimits::default();
    for name in ["nested.pth", "small.pth", "deflate.pth"] {
        let whole = std::fs::read(fixture(name)).unwrap();
        let mut ok = 0;
        for _ in 0..3000 {
            let mut b = whole.clone();
            for _ in 0..1 + next() % 4 {
                let i = (next() % b.len() as u64) as usize;
                b[i] = next() as u8;
            }
            ok += parse_pth(Path::new(name), &b, &limits).is_ok() as usize;
        }
        assert!(ok < 3000, "{name}: no mutation was noticed");
    }
}

// ---- Hand-made archives: a stored zip writer and a pickle of one tensor. ----

/// A zip archive of stored entries, as torch.save lays them out.
fn zip(entries: &[(&str, &[u8])]) -> Vec<u8> {
    let mut out = Vec::new();
    let mut central = Vec::new();
    for (name, data) in entries {
        let crc = crc32fast::hash(data);
        let offset = out.len() as u32;
        let common = |v: &mut Vec<u8>| {
            v.extend_from_slice(&20u16.to_le_bytes()); // version needed
            v.extend_from_slice(&0u16.to_le_bytes()); // flags
            v.extend_from_slice(&0u16.to_le_bytes()); // stored
            v.extend_from_slice(&0u32.to_le_bytes()); // time, date
            v.extend_from_slice(&crc.to_le_bytes());
            v.extend_from_slice(&(data.len() as u32).to_le_bytes());
            v.extend_from_slice(&(data.len() as u32).to_le_bytes());
            v.extend_from_slice(&(name.len() as u16).to_le_bytes());
            v.extend_from_slice(&0u16.to_le_bytes()); // extra
        };
        out.extend_from_slice(&0x0403_4b50u32.to_le_bytes());
        common(&mut out);
        out.extend_from_slice(name.as_bytes());
        out.extend_from_slice(data);
        central.extend_from_slice(&0x0201_4b50u32.to_le_bytes());
        central.extend_from_slice(&20u16.to_le_bytes()); // version made by
        common(&mut central);
        central.extend_from_slice(&[0; 6]); // comment len, disk, internal attr
        central.extend_from_slice(&0u32.to_le_bytes()); // external attr
        central.extend_from_slice(&offset.to_le_bytes());
        central.extend_from_slice(name.as_bytes());
    }
    let cd_offset = out.len() as u32;
    out.extend_from_slice(&central);
    out.extend_from_slice(&0x0605_4b50u32.to_le_bytes());
    out.extend_from_slice(&[0; 4]);
    out.extend_from_slice(&(entries.len() as u16).to_le_bytes());
    out.extend_from_slice(&(entries.len() as u16).to_le_bytes());
    out.extend_from_slice(&(central.len() as u32).to_le_bytes());
    out.extend_from_slice(&cd_offset.to_le_bytes());
    out.extend_from_slice(&0u16.to_le_bytes());
    out
}

fn unicode(s: &str) -> Vec<u8> {
    [b"X", &(s.len() as u32).to_le_bytes()[..], s.as_bytes()].concat()
}

fn ints(v: &[u32]) -> Vec<u8> {
    let mut b = vec![b'('];
    for x in v {
        b.push(b'J');
        b.extend_from_slice(&x.to_le_bytes());
    }
    b.push(b't');
    b
}

/// {'w': _rebuild_tensor_v2(storage '0' of `numel` f32, offset, size, stride)}.
fn one_tensor_pkl(numel: u32, offset: u32, size: &[u32], stride: &[u32]) -> Vec<u8> {
    [
        &b"\x80\x02}("[..],
        &unicode("w"),
        b"ctorch._utils\n_rebuild_tensor_v2\n((",
        &unicode("storage"),
        b"ctorch\nFloatStorage\n",
        &unicode("0"),
        &unicode("cpu"),
        b"J",
        &numel.to_le_bytes(),
        b"tQJ",
        &offset.to_le_bytes(),
        &ints(size),
        &ints(stride),
        b"\x89ccollections\nOrderedDict\n)RtRu.",
    ]
    .concat()
}

fn floats(n: usize) -> Vec<u8> {
    (0..n).flat_map(|i| (i as f32).to_le_bytes()).collect()
}

#[test]
fn hand_made_archives_cover_every_error() {
    let dir = tempfile::tempdir().unwrap();
    let write = |name: &str, bytes: Vec<u8>| {
        let p = dir.path().join(name);
        std::fs::write(&p, bytes).unwrap();
        p
    };
    // A good one first: a transposed view, read back right.
    let ok = write(
        "ok.pth",
        zip(&[
            ("a/data.pkl", &one_tensor_pkl(6, 0, &[3, 2], &[1, 3])),
            ("a/data/0", &floats(6)),
        ]),
    );
    let f = read_pth(&ok).unwrap();
    assert_eq!(f.tensors["w"].data(), &[0., 3., 1., 4., 2., 5.]);

    let cases: Vec<(&str, Vec<u8>, &str)> = vec![
        (
            "no_pkl.pth",
            zip(&[("a/data/0", &floats(6))]),
            "missing data.pkl",
        ),
        (
            "no_storage.pth",
            zip(&[("a/data.pkl", &one_tensor_pkl(6, 0, &[6], &[1]))]),
            "storage a/data/0 is missing",
        ),
        (
            "short_storage.pth",
            zip(&[
                ("a/data.pkl", &one_tensor_pkl(6, 0, &[6], &[1])),
                ("a/data/0", &floats(5)),
            ]),
            "storage data/0 is truncated: 20 bytes",
        ),
        (
            "out_of_range.pth",
            zip(&[
                ("a/data.pkl", &one_tensor_pkl(6, 2, &[2, 3], &[3, 1])),
                ("a/data/0", &floats(6)),
            ]),
            "reaches element 7 of a storage of 6",
        ),
        (
            "huge.pth",
            zip(&[
                (
                    "a/data.pkl",
                    &one_tensor_pkl(1, 0, &[1 << 30, 1 << 30], &[0, 0]),
                ),
                ("a/data/0", &floats(1)),
            ]),
            "exceed the memory limit",
        ),
        (
            "opcode.pth",
            zip(&[("a/data.pkl", b"\x80\x02}\xfe.")]),
            "unknown pickle opcode 0xfe",
        ),
        (
            "list.pth",
            zip(&[("a/data.pkl", b"\x80\x02].")]),
            "holds a list, not a dict",
        ),
        (
            "no_tensors.pth",
            zip(&[("a/data.pkl", b"\x80\x02}X\x01\x00\x00\x00kK\x01s.")]),
            "no floating-point tensors found",
        ),
        (
            "byteorder.pth",
            zip(&[
                ("a/data.pkl", &one_tensor_pkl(6, 0, &[6], &[1])),
                ("a/byteorder", b"middle"),
            ]),
            "unknown byte order",
        ),
        (
            "torchscript.pth",
            zip(&[
                ("a/data.pkl", b"\x80\x02}."),
                ("a/code/__torch__.py", b"class X: pass"),
                ("a/constants.pkl", b"\x80\x02)."),
            ]),
            "TorchScript archive",
        ),
        (
            "two.pth",
            zip(&[("a/data.pkl", b"\x80\x02}."), ("b/data.pkl", b"\x80\x02}.")]),
            "more than one",
        ),
    ];
    for (name, bytes, needle) in cases {
        let p = write(name, bytes);
        let e = err(&p);
        assert!(
            e.starts_with(&p.display().to_string()) && e.contains(needle),
            "{name}: {e}"
        );
    }
    // Two names that become one once `module.` is stripped: 'w' and 'module.w'.
    let pkl = one_tensor_pkl(6, 0, &[6], &[1]);
    let tensor_start = pkl.windows(6).position(|w| w == b"ctorch").unwrap();
    let tensor = &pkl[tensor_start..pkl.len() - 2]; // up to SETITEMS, STOP
    let pkl2 = [
        &pkl[..tensor_start],
        tensor,
        &unicode("module.w"),
        tensor,
        b"u.",
    ]
    .concat();
    let p = write(
        "dup.pth",
        zip(&[("a/data.pkl", &pkl2), ("a/data/0", &floats(6))]),
    );
    assert!(err(&p).contains("two entries are named 'w'"), "{}", err(&p));
    // The memory limit counts decompressed entries and f32 output together.
    let limits = PthLimits {
        alloc_bytes: Some(20),
        ..PthLimits::default()
    };
    let e = read_pth_with(&ok, &limits).unwrap_err().to_string();
    assert!(e.contains("memory limit"), "{e}");
}

#[test]
fn convert_writes_safetensors_and_reports() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("sub/out.safetensors");
    let r = convert(&ConvertConfig {
        from: fixture("nested.pth"),
        out: out.clone(),
    })
    .unwrap();
    let written = st::read(&out).unwrap();
    assert_bit_exact(&written.tensors, &small_expected());
    assert_eq!(written.metadata["state_dict_key"], "state_dict");
    assert_eq!(written.metadata["converted_from"], "nested.pth");
    assert_eq!(r.tensors, 12);
    // 107 values, of which bn.running_mean and bn.running_var hold 8.
    assert_eq!(r.parameters, 99);
    assert!(
        r.report
            .contains("12 tensors as float32 (from 1 bfloat16, 1 float16, 9 float32, 1 float64), 107 values (99 parameters + 8 BatchNorm running statistics)"),
        "{}",
        r.report
    );
    assert!(!r.resnet50);
    assert!(
        r.report
            .contains("state dict under top-level key 'state_dict'"),
        "{}",
        r.report
    );
    assert!(r.report.contains("'module.' prefix stripped from 16 names"));
    assert!(
        r.report
            .contains("usable as ResNet50 backbone: no (missing conv1.weight"),
        "{}",
        r.report
    );
    // Converting a file onto itself is refused before anything is read or written.
    let e = convert(&ConvertConfig {
        from: out.clone(),
        out: out.clone(),
    })
    .unwrap_err();
    assert!(e.to_string().contains("overwrite"), "{e}");
}

#[test]
fn cli_converts_and_refuses() {
    let bin = env!("CARGO_BIN_EXE_skinengine");
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("w.safetensors");
    let o = Command::new(bin)
        .args(["convert", "--from"])
        .arg(fixture("small.pth"))
        .arg("--out")
        .arg(&out)
        .output()
        .unwrap();
    let (stdout, stderr) = (
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr),
    );
    assert!(o.status.success(), "{stdout}\n{stderr}");
    assert!(stdout.contains("12 tensors"), "{stdout}");
    assert!(
        stdout.contains("usable as ResNet50 backbone: no"),
        "{stdout}"
    );
    assert!(stderr.contains("note: skipped 'index'"), "{stderr}");
    assert_bit_exact(&st::read(&out).unwrap().tensors, &small_expected());

    let bad = dir.path().join("bad.safetensors");
    let o = Command::new(bin)
        .args(["convert", "--from"])
        .arg(fixture("malicious_os_system.pth"))
        .arg("--out")
        .arg(&bad)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(1));
    assert!(
        stderr.contains("error: ") && stderr.contains("`os.system`"),
        "{stderr}"
    );
    assert!(!bad.exists());
}
