//! Decoding one batch ahead of the compute. Images are decoded on the CPU (in parallel within a
//! batch); the forward pass runs on the backend. Done in turns, a GPU waits for every batch's
//! decode and the CPU for every forward; with the next batch decoded on a second thread while
//! the current one is computed, the two overlap.

use rayon::prelude::*;

use crate::error::Result;

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
