//! Decoding one batch ahead of the compute. Images are decoded on the CPU (in parallel within a
//! batch); the forward pass runs on the backend. Done in turns, a GPU waits for every batch's
//! decode and the CPU for every forward; with the next batch decoded on a second thread while
//! the current one is computed, the two overlap.

use rayon::prelude::*;

use crate::error::Result;
use crate::ops::host_buf::HostBuf;

/// Calls `consume(batch index, items of the batch, decoded items)` for each run of `batch`
/// items, in order, while the next batch is being decoded by `decode` (one item per call, the
/// batch's items in parallel). At most one decoded batch waits ahead. An error from `consume`
/// stops everything and is returned.
pub fn decode_ahead<T, D, F, C>(items: &[T], batch: usize, decode: F, mut consume: C) -> Result<()>
where
    T: Sync,
    D: Send,
    F: Fn(&T) -> D + Sync,
    C: FnMut(usize, &[T], Vec<D>) -> Result<()>,
{
    std::thread::scope(|scope| {
        let (tx, rx) = std::sync::mpsc::sync_channel(1);
        let decode = &decode;
        scope.spawn(move || {
            for (n, chunk) in items.chunks(batch.max(1)).enumerate() {
                let decoded: Vec<D> = chunk.par_iter().map(decode).collect();
                // The receiver is gone once the consumer has stopped on an error.
                if tx.send((n, chunk, decoded)).is_err() {
                    break;
                }
            }
        });
        for (n, chunk, decoded) in rx {
            consume(n, chunk, decoded)?;
        }
        Ok(())
    })
}

/// Host buffers in flight in [`decode_ahead_host`]: one being filled, `DEPTH - 1` waiting, one
/// being uploaded and computed. Two batches ahead instead of one smooths out slow images (a
/// GPU forward of a batch takes about as long as decoding it on 16 cores).
const DEPTH: usize = 2;

/// One batch assembled by [`decode_ahead_host`].
pub struct HostBatch<'a, T, E> {
    /// Index of the batch among all batches (`items[index * batch..]` is its first item).
    pub index: usize,
    pub items: &'a [T],
    /// The items that decoded, in order, as indices into `items`; item `good[j]`'s values are
    /// `buf[offsets[j]..offsets[j + 1]]`, one after another from `buf[0]`.
    pub good: Vec<usize>,
    pub offsets: Vec<usize>,
    /// The items that did not decode: (index into `items`, error).
    pub failed: Vec<(usize, E)>,
    /// Host memory from `alloc` (pinned on CUDA), reused batch after batch.
    pub buf: HostBuf,
}

/// [`decode_ahead`] into host buffers from `alloc(len)` (pinned on CUDA): each batch's items
/// are decoded in parallel over every core (the rayon pool: `--threads`), up to [`DEPTH`]
/// batches ahead of `consume`, and their values copied, in parallel, into one buffer on the
/// decoding thread, so `consume` gets an upload-ready batch. `consume` hands the buffer back
/// once nothing reads it any more (after the upload finished: the backend's `host_fence`) and
/// it is refilled; a buffer too small for a batch is replaced. An error from
/// `alloc` or `consume` stops everything and is returned.
pub fn decode_ahead_host<T, E, D, F, A, C>(
    items: &[T],
    batch: usize,
    alloc: A,
    decode: F,
    mut consume: C,
) -> Result<()>
where
    T: Sync,
    E: Send,
    D: AsRef<[f32]> + Send,
    F: Fn(&T) -> std::result::Result<D, E> + Sync,
    A: Fn(usize) -> Result<HostBuf> + Sync,
    C: FnMut(HostBatch<'_, T, E>) -> Result<HostBuf>,
{
    std::thread::scope(|scope| {
        let (tx, rx) = std::sync::mpsc::sync_channel(DEPTH - 1);
        let (back_tx, back_rx) = std::sync::mpsc::channel::<HostBuf>();
        let (decode, alloc) = (&decode, &alloc);
        let worker = scope.spawn(move || -> Result<()> {
            let mut made = 0;
            for (index, chunk) in items.chunks(batch.max(1)).enumerate() {
                let decoded: Vec<std::result::Result<D, E>> =
                    chunk.par_iter().map(decode).collect();
                let (mut good, mut offsets, mut failed, mut parts) =
                    (vec![], vec![0], vec![], vec![]);
                for (i, r) in decoded.into_iter().enumerate() {
                    match r {
                        Ok(v) => {
                            offsets.push(offsets.last().unwrap() + v.as_ref().len());
                            good.push(i);
                            parts.push(v);
                        }
                        Err(e) => failed.push((i, e)),
                    }
                }
                let len = *offsets.last().unwrap();
                // New buffers hold a whole batch of the largest item, so one batch with bad
                // items does not leave a buffer too small for the next.
                let longest = offsets.windows(2).map(|w| w[1] - w[0]).max().unwrap_or(0);
                let room = len.max(longest * batch.max(1));
                // A returned buffer, or a new one while fewer than DEPTH + 1 exist.
                let mut buf = match back_rx.try_recv() {
                    Ok(b) => b,
                    Err(_) if made <= DEPTH => {
                        made += 1;
                        alloc(room)?
                    }
                    Err(_) => match back_rx.recv() {
                        Ok(b) => b,
                        Err(_) => return Ok(()), // the consumer stopped
                    },
                };
                if buf.len() < len {
                    buf = alloc(room)?;
                }
                let mut slots = Vec::with_capacity(parts.len());
                let mut rest = &mut buf[..len];
                for w in offsets.windows(2) {
                    let (head, tail) = rest.split_at_mut(w[1] - w[0]);
                    slots.push(head);
                    rest = tail;
                }
                slots
                    .into_par_iter()
                    .zip(parts.into_par_iter())
                    .for_each(|(dst, src)| dst.copy_from_slice(src.as_ref()));
                let hb = HostBatch {
                    index,
                    items: chunk,
                    good,
                    offsets,
                    failed,
                    buf,
                };
                if tx.send(hb).is_err() {
                    break; // the consumer stopped on an error
                }
            }
            Ok(())
        });
        let mut result = Ok(());
        for hb in rx {
            match consume(hb) {
                // The worker may have finished: then the buffer is simply dropped.
                Ok(buf) => drop(back_tx.send(buf)),
                Err(e) => {
                    result = Err(e);
                    break;
                }
            }
        }
        // Unblocks a worker waiting for a buffer, so the scope can end.
        drop(back_tx);
        let worked = worker.join().expect("decode thread panicked");
        result.and(worked)
    })
}

#[cfg(test)]
mod tests {
    use super::decode_ahead;
    use crate::error::invalid;

    #[test]
    fn batches_arrive_in_order_with_their_items() {
        let items: Vec<u32> = (0..23).collect();
        let mut seen = Vec::new();
        decode_ahead(
            &items,
            5,
            |&v| v * 10,
            |n, chunk, decoded| {
                assert_eq!(chunk.len(), decoded.len());
                assert_eq!(chunk[0] as usize, n * 5);
                for (c, d) in chunk.iter().zip(&decoded) {
                    assert_eq!(*d, c * 10);
                }
                seen.extend(decoded);
                Ok(())
            },
        )
        .unwrap();
        assert_eq!(seen, (0..23).map(|v| v * 10).collect::<Vec<_>>());
    }

    #[test]
    fn an_error_stops_the_pipeline_and_is_returned() {
        let items: Vec<u32> = (0..100).collect();
        let mut calls = 0;
        let e = decode_ahead(
            &items,
            10,
            |&v| v,
            |n, _, _| {
                calls += 1;
                if n == 2 {
                    Err(invalid("test", "stop here"))
                } else {
                    Ok(())
                }
            },
        )
        .unwrap_err();
        assert!(e.to_string().contains("stop here"));
        assert_eq!(calls, 3);
    }
}
