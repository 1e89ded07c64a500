//! The default server URL compiled into `dlrepo-cli`, and how a server
//! rewrites it when it serves the binary at `/cli`: a marker followed by
//! the URL, NUL-padded to a fixed size, so the file keeps its length and
//! layout.

/// What precedes the URL in the binary.
pub const SLOT_MARKER: &[u8] = b"\0DLREPO-CLI-DEFAULT-URL:";
/// The whole slot, marker included.
pub const SLOT_LEN: usize = 512;
/// The URL when nobody rewrote it.
pub const DEFAULT_URL: &str = "http://127.0.0.1:1337";

/// Writes `url` into every slot of `binary`; false when there is none or
/// the URL does not fit (the binary is then served unchanged).
pub fn rewrite(binary: &mut [u8], url: &str) -> bool {
    let room = SLOT_LEN - SLOT_MARKER.len();
    if url.len() >= room || url.as_bytes().contains(&0) {
        return false;
    }
    let mut found = false;
    let mut at = 0;
    while let Some(i) = find(&binary[at..], SLOT_MARKER) {
        let start = at + i + SLOT_MARKER.len();
        let Some(slot) = binary.get_mut(start..start + room) else {
            break;
        };
        // Only a slot that still looks like one: a URL, then NULs to the end.
        let end = slot.iter().position(|&b| b == 0).unwrap_or(room);
        if slot[end..].iter().all(|&b| b == 0) && slot[..end].iter().all(|b| b.is_ascii_graphic()) {
            slot.fill(0);
            slot[..url.len()].copy_from_slice(url.as_bytes());
            found = true;
        }
        at = start;
    }
    found
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_slot_is_rewritten_in_place() {
        let mut b = b"head".to_vec();
        b.extend_from_slice(SLOT_MARKER);
        b.extend_from_slice(DEFAULT_URL.as_bytes());
        b.resize(4 + SLOT_LEN, 0);
        b.extend_from_slice(b"tail");
        let len = b.len();
        assert!(rewrite(&mut b, "https://dl.example.com/x"));
        assert_eq!(b.len(), len);
        let s = 4 + SLOT_MARKER.len();
        assert_eq!(&b[s..s + 24], b"https://dl.example.com/x");
        assert!(b[s + 24..4 + SLOT_LEN].iter().all(|&c| c == 0));
        assert!(b.ends_with(b"tail"));
        assert!(!rewrite(&mut b, &"x".repeat(SLOT_LEN)));
        assert!(!rewrite(&mut b"no slot here".to_vec(), "http://a"));
    }
}
