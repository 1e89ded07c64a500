//! Whether the root takes writes, for `/health`.

use super::Store;
use crate::io;

pub struct Health {
    pub writable: bool,
    /// Why not, when not.
    pub error: Option<String>,
    pub free_bytes: Option<u64>,
}

impl Store {
    /// Writes a few bytes under `.dlrepo-rs` (a full or read-only root
    /// refuses them) and reads the free space.
    pub async fn health(&self) -> Health {
        let dir = self.root.join(".dlrepo-rs");
        let probe = async {
            self.ensure_dir(&dir).await?;
            io::write_file_atomic(&dir.join("health"), b"ok\n".to_vec(), false).await
        };
        let free_bytes = io::free_bytes(&self.root).ok();
        let (writable, error) = match probe.await {
            Ok(()) if free_bytes == Some(0) => (false, Some("no space left on the root".to_string())),
            Ok(()) => (true, None),
            Err(e) => (false, Some(e.to_string())),
        };
        if let Some(e) = &error {
            tracing::warn!("health: the root takes no writes: {e}");
        }
        Health {
            writable,
            error,
            free_bytes,
        }
    }
}
