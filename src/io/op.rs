//! Submitting raw io_uring entries through tokio-uring's public custom-op API.

use std::io;
use std::marker::PhantomData;

use io_uring::{cqueue, squeue};
use tokio_uring::{OneshotOutputTransform, UnsubmittedOneshot};

/// Keeps the operation's buffers (paths, statx buffer) alive until the
/// kernel completes it, then hands them back with the result.
pub struct KeepData<D>(PhantomData<D>);

impl<D> OneshotOutputTransform for KeepData<D> {
    type Output = (io::Result<u32>, D);
    type StoredData = D;

    fn transform_oneshot_output(self, data: D, cqe: cqueue::Entry) -> Self::Output {
        let res = cqe.result();
        let out = if res >= 0 {
            Ok(res as u32)
        } else {
            Err(io::Error::from_raw_os_error(-res))
        };
        (out, data)
    }
}

/// Submits `sqe`, whose pointers must point into `data`, and waits for it.
///
/// If the future is dropped early, tokio-uring keeps `data` alive until the
/// kernel has finished with it.
pub async fn submit<D: Unpin + 'static>(data: D, sqe: squeue::Entry) -> (io::Result<u32>, D) {
    UnsubmittedOneshot::new(data, KeepData(PhantomData), sqe).submit().await
}
