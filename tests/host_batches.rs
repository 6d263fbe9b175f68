//! The batch loop's host buffers (issue 13): batches are decoded ahead into the backend's host
//! buffers (pinned on CUDA; the emulator runs the same pinned-buffer code with ordinary memory)
//! and uploaded from there. What reaches the model must be exactly what a plain upload of the
//! stacked images gives, whatever the backend, batch size and bad items.

use skinengine::backend::Backend;
use skinengine::cpu::CpuBackend;
use skinengine::data::prefetch::decode_ahead_host;
use skinengine::error::{Result, invalid};
use skinengine::ops::host_buf::HostBuf;
use skinengine::pipeline::batches::{BatchOptions, run_batches};
use skinengine::pipeline::{EvalModel, Outputs};
use skinengine::reference::ReferenceBackend;
use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};

/// Returns its input as the features: the loop's upload path, observed exactly.
struct Identity;

impl<B: Backend> EvalModel<B> for Identity {
    fn eval_forward(&self, b: &B, x: &B::Tensor, _logits: bool) -> Result<Outputs<B::Tensor>> {
        let sh = b.shape(x).to_vec();
        let features = b.reshape(x, &[sh[0], sh[1] * sh[2] * sh[3]])?;
        Ok(Outputs {
            features,
            logits: None,
        })
    }
}

const SIZE: usize = 4;
const LEN: usize = 3 * SIZE * SIZE;

/// Item i's "image": distinct values per item and position; items i % 7 == 3 are bad.
fn decode(&i: &usize) -> Result<Vec<f32>> {
    if i % 7 == 3 {
        return Err(invalid("decode", format!("item {i} is truncated")));
    }
    Ok((0..LEN).map(|k| (i * 1000 + k) as f32 * 0.5).collect())
}

/// The features run_batches gives for `n` items at batch `batch` on `b`, and the skipped items.
fn run<B: Backend>(b: &B, n: usize, batch: usize) -> (Vec<usize>, Vec<f32>, usize) {
    let items: Vec<usize> = (0..n).collect();
    let opts = BatchOptions {
        batch,
        strict: false,
        logits: false,
        progress: None,
        size: SIZE as u32,
    };
    let (mut ids, mut feats) = (Vec::new(), Vec::new());
    let skipped = run_batches(
        b,
        &Identity,
        &items,
        &opts,
        |i| PathBuf::from(format!("{i}.jpg")),
        decode,
        |c| {
            assert_eq!(c.views, 1);
            ids.extend(c.items.iter().map(|&&i| i));
            feats.extend_from_slice(c.features.data());
            Ok(())
        },
    )
    .unwrap();
    (ids, feats, skipped.len())
}

/// What a plain upload of the good items, stacked, gives.
fn expected(n: usize) -> (Vec<usize>, Vec<f32>, usize) {
    let good: Vec<usize> = (0..n).filter(|i| i % 7 != 3).collect();
    let feats = good.iter().flat_map(|i| decode(i).unwrap()).collect();
    (good, feats, n - (0..n).filter(|i| i % 7 != 3).count())
}

#[test]
fn batches_reach_the_model_exactly_as_stacked_on_every_backend() {
    for (n, batch) in [(23, 5), (8, 8), (3, 16), (30, 1)] {
        let want = expected(n);
        assert_eq!(run(&CpuBackend, n, batch), want, "cpu n {n} batch {batch}");
        assert_eq!(
            run(&ReferenceBackend, n, batch),
            want,
            "reference n {n} batch {batch}"
        );
        #[cfg(skinengine_emu)]
        {
            let emu = skinengine::testing::suite::emulator();
            assert_eq!(run(&emu, n, batch), want, "emulator n {n} batch {batch}");
        }
    }
}

#[cfg(skinengine_emu)]
#[test]
fn the_emulator_hands_out_pinned_buffers_and_uploads_from_them() {
    use skinengine::ops::BackendBase;
    let emu = skinengine::testing::suite::emulator();
    let mut buf = emu.host_buffer(10).unwrap();
    assert!(buf.is_pinned(), "{buf:?}");
    for (i, v) in buf.iter_mut().enumerate() {
        *v = i as f32;
    }
    let t = emu.upload_host(&buf, &[2, 3]).unwrap();
    emu.host_fence().unwrap();
    // The first 6 values, in order; the buffer can be overwritten after the fence.
    buf[0] = 99.0;
    assert_eq!(emu.download(&t).unwrap().data(), &[0., 1., 2., 3., 4., 5.]);
    assert!(emu.upload_host(&buf, &[11]).is_err());
    // Host backends give plain memory.
    assert!(!CpuBackend.host_buffer(4).unwrap().is_pinned());
}

#[test]
fn buffers_are_reused_and_bounded_and_an_error_stops_the_loop() {
    let items: Vec<usize> = (0..40).collect();
    let allocs = AtomicUsize::new(0);
    let alloc = |len: usize| {
        allocs.fetch_add(1, Ordering::SeqCst);
        Ok(HostBuf::plain(len))
    };
    let mut seen = 0;
    decode_ahead_host(&items, 4, alloc, decode, |hb| {
        assert_eq!(hb.index * 4, hb.items[0]);
        assert_eq!(hb.good.len() + hb.failed.len(), hb.items.len());
        for (j, &g) in hb.good.iter().enumerate() {
            let want = decode(&hb.items[g]).unwrap();
            assert_eq!(&hb.buf[hb.offsets[j]..hb.offsets[j + 1]], &want[..]);
        }
        for (i, e) in &hb.failed {
            assert!(e.to_string().contains(&format!("item {} ", hb.items[*i])));
        }
        seen += 1;
        Ok(hb.buf)
    })
    .unwrap();
    assert_eq!(seen, 10);
    // At most 3 buffers in flight (one filling, one waiting, one in use), each sized for a
    // whole batch even when the first batch had bad items: 10 batches, at most 3 allocations.
    let made = allocs.load(Ordering::SeqCst);
    assert!((1..=3).contains(&made), "{made} allocations for 10 batches");

    let mut calls = 0;
    let e = decode_ahead_host(
        &items,
        4,
        |len| Ok(HostBuf::plain(len)),
        decode,
        |hb| {
            calls += 1;
            if hb.index == 2 {
                Err(invalid("test", "stop here"))
            } else {
                Ok(hb.buf)
            }
        },
    )
    .unwrap_err();
    assert!(e.to_string().contains("stop here"));
    assert_eq!(calls, 3);
    // An allocation failure is the loop's error too.
    let e = decode_ahead_host(
        &items,
        4,
        |_| Err(invalid("alloc", "no pinned memory")),
        decode,
        |hb| Ok(hb.buf),
    )
    .unwrap_err();
    assert!(e.to_string().contains("no pinned memory"));
}

#[test]
fn an_empty_item_list_calls_nothing() {
    let items: Vec<usize> = vec![];
    decode_ahead_host(
        &items,
        4,
        |_| -> Result<HostBuf> { panic!("no batch, no buffer") },
        decode,
        |_| -> Result<HostBuf> { panic!("no batch") },
    )
    .unwrap();
}
