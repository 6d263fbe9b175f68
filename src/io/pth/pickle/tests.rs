use super::*;

fn run(b: &[u8]) -> Result<Pickle, PickleError> {
    load(b, Limits::default())
}

fn global(module: &str, name: &str) -> Vec<u8> {
    [b"c", module.as_bytes(), b"\n", name.as_bytes(), b"\n"].concat()
}

fn unicode(s: &str) -> Vec<u8> {
    [b"X", &(s.len() as u32).to_le_bytes()[..], s.as_bytes()].concat()
}

/// What torch.save writes for {'w': tensor of 2x3 f32 seen transposed, offset 1}.
fn torch_like() -> Vec<u8> {
    [
        &b"\x80\x02"[..],
        &global("collections", "OrderedDict"),
        b"q\x00)Rq\x01(",
        &unicode("w"),
        &global("torch._utils", "_rebuild_tensor_v2"),
        b"((",
        &unicode("storage"),
        &global("torch", "FloatStorage"),
        &unicode("0"),
        &unicode("cpu"),
        b"K\x07tQK\x01K\x03K\x02\x86K\x01K\x03\x86\x89h\x00)Rtq\x02Rq\x03",
        // A Parameter around the same tensor under another key (BINGET of the memo).
        &unicode("p"),
        &global("torch._utils", "_rebuild_parameter"),
        b"h\x03\x88h\x00)R\x87R",
        b"u}b.",
    ]
    .concat()
}

#[test]
fn reads_a_torch_state_dict_pickle() {
    let p = run(&torch_like()).unwrap();
    let items = p.dict_items(p.root).unwrap();
    assert_eq!(items.len(), 2);
    assert_eq!(items[0].0, Some("w"));
    let Obj::Tensor(t) = p.get(items[0].1) else {
        panic!("{:?}", p.get(items[0].1))
    };
    assert_eq!(
        *t,
        TensorRef {
            storage: StorageRef {
                dtype: DType::F32,
                key: "0".into(),
                numel: 7
            },
            offset: 1,
            size: vec![3, 2],
            stride: vec![1, 3],
        }
    );
    assert_eq!(p.get(items[1].1), p.get(items[0].1));
}

#[test]
fn reads_numbers_strings_and_containers() {
    // LONG1 -2, BININT -5, BININT2 513, BINFLOAT 1.5, SHORT_BINUNICODE, SHORT_BINBYTES,
    // a set, a frozenset, EMPTY_LIST + APPENDS, DUP / POP, MEMOIZE + BINGET, FRAME.
    let b = [
        &b"\x80\x04\x95\x00\x00\x00\x00\x00\x00\x00\x00(\x8a\x01\xfeJ\xfb\xff\xff\xffM\x01\x02"[..],
        b"G\x3f\xf8\x00\x00\x00\x00\x00\x00\x8c\x02hiC\x02\x00\x01\x8f(K\x01\x90(K\x02\x91",
        b"](K\x03K\x04e\x94N20\x8a\x09\x00\x00\x00\x00\x00\x00\x00\x00\x01h\x00t.",
    ]
    .concat();
    let p = run(&b).unwrap();
    let Obj::Tuple(v) = p.get(p.root) else {
        panic!()
    };
    let got: Vec<&Obj> = v.iter().map(|&i| p.get(i)).collect();
    assert_eq!(got[0], &Obj::Int(-2));
    assert_eq!(got[1], &Obj::Int(-5));
    assert_eq!(got[2], &Obj::Int(513));
    assert_eq!(got[3], &Obj::Float(1.5));
    assert_eq!(got[4], &Obj::Str("hi".into()));
    assert_eq!(got[5], &Obj::Bytes(vec![0, 1]));
    assert!(matches!(got[6], Obj::Set(s) if s.len() == 1));
    assert!(matches!(got[7], Obj::Set(s) if s.len() == 1));
    assert!(matches!(got[8], Obj::List(l) if l.len() == 2));
    assert_eq!(got[9], &Obj::None);
    assert_eq!(got[10], &Obj::BigInt);
    assert!(matches!(got[11], Obj::List(_)));
    assert_eq!(v.len(), 12);
}

#[test]
fn refuses_globals_off_the_allow_list_before_reading_on() {
    for (module, name) in [
        ("os", "system"),
        ("posix", "system"),
        ("builtins", "eval"),
        ("__builtin__", "getattr"),
        ("subprocess", "Popen"),
        ("torch", "load"),
        ("torch._utils", "_rebuild_device_tensor_from_numpy"),
        ("torch.nn.modules.conv", "Conv2d"),
        ("collections", "defaultdict"),
    ] {
        // Whatever follows (here bytes that are no opcode) is never read.
        let b = [&b"\x80\x02"[..], &global(module, name), b"\xff\xff"].concat();
        let e = run(&b).unwrap_err();
        assert_eq!(
            e,
            PickleError::Refused {
                at: 2,
                global: format!("{module}.{name}")
            }
        );
        assert!(e.to_string().contains(&format!("`{module}.{name}`")), "{e}");
        assert!(e.to_string().contains("Nothing was run"), "{e}");
    }
    // STACK_GLOBAL (protocol 4) the same.
    let b = [
        &b"\x80\x04\x8c\x08builtins\x94\x8c\x04eval\x94\x93"[..],
        b"\x8c\x01x\x85R.",
    ]
    .concat();
    assert!(
        matches!(run(&b), Err(PickleError::Refused { global, .. }) if global == "builtins.eval")
    );
}

#[test]
fn refuses_calls_that_build_nothing_known() {
    let bad = |b: &[u8], needle: &str| {
        let e = run(b).unwrap_err();
        assert!(
            matches!(e, PickleError::Bad { .. }) && e.to_string().contains(needle),
            "{needle}: {e}"
        );
    };
    // REDUCE on a dict, on a storage type; NEWOBJ on a rebuild function; BUILD on a list.
    bad(b"\x80\x02})R.", "REDUCE on a dict");
    bad(
        &[&global("torch", "FloatStorage")[..], b")R."].concat(),
        "not callable",
    );
    bad(
        &[&global("torch._utils", "_rebuild_tensor_v2")[..], b")\x81."].concat(),
        "only collections.OrderedDict",
    );
    bad(b"]}b.", "BUILD on a list");
    // _rebuild_tensor_v2 on something that is no storage, with a wrong arity.
    bad(
        &[
            &global("torch._utils", "_rebuild_tensor_v2")[..],
            b"(NK\x00)))\x89}tR.",
        ]
        .concat(),
        "not a persistent storage",
    );
    bad(
        &[&global("torch._utils", "_rebuild_tensor_v2")[..], b"(NtR."].concat(),
        "takes 6 or 7 arguments",
    );
    // Persistent ids other than torch's storage tuples.
    bad(b"K\x01Q.", "persistent id is not a tuple");
    bad(
        &[&b"("[..], &unicode("storage"), b"K\x01K\x02K\x03K\x04tQ."].concat(),
        "unsupported persistent id",
    );
    // Memo keys never stored, stack underflow, popping past a MARK, no MARK.
    bad(b"h\x05.", "memo key 5");
    bad(b"R.", "stack underflow");
    bad(b"N(0.", "stack underflow");
    bad(b"Nt.", "no MARK");
    // Strings that are no UTF-8; APPEND to a dict.
    bad(b"X\x01\x00\x00\x00\xff.", "UTF-8");
    bad(b"}Na.", "APPEND to a dict");
    bad(b"\x80\x06.", "protocol 6");
}

#[test]
fn unknown_and_unsupported_opcodes_and_truncation_are_errors() {
    assert_eq!(
        run(b"\x80\x02\xff").unwrap_err(),
        PickleError::Opcode {
            at: 2,
            op: 0xff,
            name: None
        }
    );
    for (b, n) in [
        (&b"(i__main__\nX\n."[..], "INST"),
        (b"(o.", "OBJ"),
        (b"P0\n.", "PERSID"),
        (b"\x82\x01.", "EXT1"),
        (b"I1\n.", "INT"),
    ] {
        let e = run(b).unwrap_err();
        assert!(
            matches!(e, PickleError::Opcode { name: Some(x), .. } if x == n),
            "{e}"
        );
    }
    for b in [
        &b""[..],
        b"\x80",
        b"\x80\x02}",
        b"X\xff\xff\xff\x7fabc",
        b"\x8d\xff\xff\xff\xff\xff\xff\xff\xff",
        b"cos\nsys",
        b"J\x01\x02",
    ] {
        assert!(
            matches!(run(b), Err(PickleError::Truncated { .. })),
            "{b:?}: {:?}",
            run(b)
        );
    }
}

#[test]
fn limits_stop_a_pickle_that_would_exhaust_memory() {
    let small = Limits {
        max_objects: 100,
        max_stack: 50,
        max_memo: 10,
        max_marks: 5,
        max_items: 60,
        max_ndim: 3,
    };
    let limit = |b: Vec<u8>, what: &str| {
        let e = load(&b, small).unwrap_err();
        assert!(
            matches!(&e, PickleError::Limit { what: w, .. } if *w == what),
            "{what}: {e}"
        );
    };
    limit(b"N".repeat(51), "stack items");
    limit([&b"N"[..], &b"2".repeat(60)].concat(), "stack items");
    limit(b"N0".repeat(101), "values");
    limit(
        (0u8..11).flat_map(|i| [b'N', b'q', i]).collect(),
        "memo entries",
    );
    limit(b"(".repeat(6), "open MARKs");
    limit(
        [&b"]"[..], &b"(N2222222222e".repeat(6)].concat(),
        "container items",
    );
    limit(
        [
            &global("torch._utils", "_rebuild_tensor_v2")[..],
            b"((",
            &unicode("storage"),
            &global("torch", "FloatStorage"),
            b"K\x00K\x00K\x01tQK\x00(K\x01K\x01K\x01K\x01t(K\x01K\x01K\x01K\x01t\x89}tR.",
        ]
        .concat(),
        "tensor dimensions",
    );
}

#[test]
fn deep_nesting_and_cycles_are_harmless() {
    // 200,000 lists each inside the next: no recursion anywhere, dropping included.
    let n = 200_000;
    let b = [b"]".repeat(n), b"a".repeat(n - 1), b".".to_vec()].concat();
    let p = run(&b).unwrap();
    assert_eq!(p.objs.len(), n);
    // A list that contains itself.
    let p = run(b"]q\x00h\x00a.").unwrap();
    assert_eq!(p.get(p.root), &Obj::List(vec![p.root]));
}
