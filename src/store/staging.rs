//! Staging files: `.uploads/<32 hex>` receiving a streamed upload.
//!
//! While a [`Staging`] exists, its uuid is in `Store::active_uploads`, so the
//! orphan GC leaves the file alone however slow the client is (invariant
//! I2). Data is hashed as it arrives and written through the ring with up
//! to two writes in flight, so hashing on this thread overlaps with the
//! kernel copying the previous chunk on an io-wq worker.

use std::path::{Path, PathBuf};
use std::rc::Rc;

use sha2::Digest as _;

use super::digest::to_hex;
use super::Store;
use crate::io::{self, File};

/// Size of the buffers handed to the ring.
const WRITE_CHUNK: usize = 1 << 20;

/// Hash algorithms the server can verify uploads with.
pub enum Hasher {
    Sha224(sha2::Sha224),
    Sha256(sha2::Sha256),
    Sha384(sha2::Sha384),
    Sha512(sha2::Sha512),
}

impl Hasher {
    pub fn for_algo(algo: &str) -> Option<Hasher> {
        Some(match algo {
            "sha224" => Hasher::Sha224(sha2::Sha224::new()),
            "sha256" => Hasher::Sha256(sha2::Sha256::new()),
            "sha384" => Hasher::Sha384(sha2::Sha384::new()),
            "sha512" => Hasher::Sha512(sha2::Sha512::new()),
            _ => return None,
        })
    }

    pub fn update(&mut self, data: &[u8]) {
        match self {
            Hasher::Sha224(h) => h.update(data),
            Hasher::Sha256(h) => h.update(data),
            Hasher::Sha384(h) => h.update(data),
            Hasher::Sha512(h) => h.update(data),
        }
    }

    pub fn finish_hex(self) -> String {
        match self {
            Hasher::Sha224(h) => to_hex(&h.finalize()),
            Hasher::Sha256(h) => to_hex(&h.finalize()),
            Hasher::Sha384(h) => to_hex(&h.finalize()),
            Hasher::Sha512(h) => to_hex(&h.finalize()),
        }
    }
}

type InFlight = tokio_uring::InFlightOneshot<
    tokio_uring::WriteData<Vec<u8>>,
    tokio_uring::WriteTransform<Vec<u8>>,
>;

pub struct Staging {
    store: Rc<Store>,
    uuid: String,
    path: PathBuf,
    file: Option<File>,
    hasher: Option<Hasher>,
    buf: Vec<u8>,
    /// Bytes handed to the ring so far.
    written: u64,
    inflight: Option<(InFlight, u64, usize)>,
    /// Set once the file was renamed or removed by its owner.
    consumed: bool,
}

impl Staging {
    /// Creates a fresh, empty staging file (mode 0600, exclusive create).
    pub async fn create(store: &Rc<Store>, hasher: Hasher) -> std::io::Result<Staging> {
        let dir = store.uploads_dir();
        let mut retried_dir = false;
        loop {
            store.ensure_dir(&dir).await?;
            let uuid = io::random_hex(16);
            let path = dir.join(&uuid);
            // Pin before the file exists, so the GC can never see it unpinned.
            store.active_uploads.borrow_mut().insert(uuid.clone());
            match io::create_new(&path, 0o600).await {
                Ok(file) => {
                    return Ok(Staging {
                        store: store.clone(),
                        uuid,
                        path,
                        file: Some(file),
                        hasher: Some(hasher),
                        buf: Vec::with_capacity(WRITE_CHUNK),
                        written: 0,
                        inflight: None,
                        consumed: false,
                    });
                }
                Err(e) => {
                    store.active_uploads.borrow_mut().remove(&uuid);
                    match e.kind() {
                        std::io::ErrorKind::AlreadyExists => continue,
                        // `.uploads` was removed under us (0.44 does that after a mismatch).
                        std::io::ErrorKind::NotFound if !retried_dir => {
                            store.forget_dir(&dir);
                            retried_dir = true;
                        }
                        _ => return Err(e),
                    }
                }
            }
        }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    pub fn len(&self) -> u64 {
        self.written + self.buf.len() as u64
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Appends data: hashes it now and writes it through the ring.
    pub async fn write(&mut self, mut data: &[u8]) -> std::io::Result<()> {
        if let Some(h) = self.hasher.as_mut() {
            h.update(data);
        }
        while !data.is_empty() {
            let room = WRITE_CHUNK - self.buf.len();
            let n = room.min(data.len());
            self.buf.extend_from_slice(&data[..n]);
            data = &data[n..];
            if self.buf.len() == WRITE_CHUNK {
                self.flush_buf().await?;
            }
        }
        Ok(())
    }

    /// Submits the current buffer; waits for the previous write first, so
    /// at most two buffers are in flight (this one and the kernel's copy).
    async fn flush_buf(&mut self) -> std::io::Result<()> {
        if self.buf.is_empty() {
            return Ok(());
        }
        let buf = std::mem::replace(&mut self.buf, Vec::with_capacity(WRITE_CHUNK));
        let len = buf.len();
        let pos = self.written;
        self.wait_inflight().await?;
        let file = self
            .file
            .as_ref()
            .ok_or_else(|| std::io::Error::other("staging file closed"))?;
        let op = file.write_at(buf, pos).submit();
        self.inflight = Some((op, pos, len));
        self.written += len as u64;
        Ok(())
    }

    async fn wait_inflight(&mut self) -> std::io::Result<()> {
        if let Some((op, pos, len)) = self.inflight.take() {
            let (res, buf) = op.await;
            let n = res?;
            if n < len {
                // Short write: finish it synchronously with the ring helper.
                let file = self
                    .file
                    .as_ref()
                    .ok_or_else(|| std::io::Error::other("staging file closed"))?;
                io::write_all_at(file, buf[n..len].to_vec(), pos + n as u64).await?;
            }
        }
        Ok(())
    }

    /// Flushes everything, optionally fdatasyncs, closes the file and
    /// returns the hex digest of the data.
    pub async fn finish(&mut self, durable: bool) -> std::io::Result<String> {
        self.flush_buf().await?;
        self.wait_inflight().await?;
        if let Some(file) = self.file.take() {
            if durable {
                file.sync_data().await?;
            }
            file.close().await?;
        }
        Ok(self
            .hasher
            .take()
            .map(Hasher::finish_hex)
            .unwrap_or_default())
    }

    /// The owner renamed or deleted the file itself.
    pub fn mark_consumed(&mut self) {
        self.consumed = true;
    }

    /// Deletes the staging file now.
    pub async fn discard(mut self) {
        self.file.take();
        let _ = io::unlink_opt(&self.path).await;
        self.consumed = true;
    }
}

impl Drop for Staging {
    fn drop(&mut self) {
        self.store.active_uploads.borrow_mut().remove(&self.uuid);
        if !self.consumed {
            // A disconnect or an error dropped the upload: remove its file.
            let path = std::mem::take(&mut self.path);
            self.file.take();
            tokio_uring::spawn(async move {
                let _ = io::unlink_opt(&path).await;
            });
        }
    }
}
