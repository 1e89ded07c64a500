//! File pages to a socket without copying them through user space.
//!
//! A large download moves file → pipe on the ring (an io-wq worker does it,
//! so a file that is not in the page cache never stalls the thread), then
//! pipe → socket with a non-blocking `splice` on the thread once the socket
//! takes data. Both moves pass page references, not bytes.

use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::rc::Rc;

use io_uring::{opcode, types};

use super::{op, File};

/// A pipe between a file and a socket.
pub struct Pipe {
    pub read: OwnedFd,
    pub write: OwnedFd,
    /// Bytes the pipe holds at most.
    pub capacity: usize,
}

/// Opens a pipe of (up to) `want` bytes. The ends block: the ring's splice
/// into it waits on an io-wq worker when it is full, and the socket side
/// passes `SPLICE_F_NONBLOCK` itself.
pub fn pipe(want: usize) -> io::Result<Pipe> {
    let mut fds = [0; 2];
    // SAFETY: `fds` has room for the two descriptors pipe2 writes.
    if unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) } != 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: both descriptors were just created and belong to nobody else.
    let (read, write) = unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) };
    // Larger than /proc/sys/fs/pipe-max-size is refused: the default stays.
    // SAFETY: plain fcntl calls on a descriptor we own.
    let capacity = unsafe {
        libc::fcntl(write.as_raw_fd(), libc::F_SETPIPE_SZ, want as libc::c_int);
        libc::fcntl(write.as_raw_fd(), libc::F_GETPIPE_SZ)
    };
    if capacity <= 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(Pipe {
        read,
        write,
        capacity: capacity as usize,
    })
}

/// Moves up to `len` bytes of `file` from `pos` into the pipe; returns how
/// many moved (0 at the end of the file).
pub async fn file_to_pipe(file: Rc<File>, pos: u64, pipe: Rc<OwnedFd>, len: u32) -> io::Result<usize> {
    let sqe = opcode::Splice::new(
        types::Fd(file.as_raw_fd()),
        pos as i64,
        types::Fd(pipe.as_raw_fd()),
        -1,
        len,
    )
    .build();
    // The file and the pipe stay open until the kernel is done with them.
    op::submit((file, pipe), sqe).await.0.map(|n| n as usize)
}

/// Moves up to `len` bytes from the pipe to the socket without waiting.
pub fn pipe_to_socket(pipe: RawFd, socket: RawFd, len: usize) -> io::Result<usize> {
    // SAFETY: both descriptors are open for the duration of the call; null
    // offsets are what splice takes for a pipe and a socket.
    let n = unsafe {
        libc::splice(
            pipe,
            std::ptr::null_mut(),
            socket,
            std::ptr::null_mut(),
            len,
            libc::SPLICE_F_NONBLOCK | libc::SPLICE_F_MOVE | libc::SPLICE_F_MORE,
        )
    };
    if n < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(n as usize)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn file_pages_reach_the_other_end() {
        tokio_uring::start(async {
            let dir = std::env::temp_dir().join(format!("dlrepo-splice-{}", std::process::id()));
            std::fs::create_dir_all(&dir).expect("temp dir");
            let path = dir.join("f");
            let data: Vec<u8> = (0..300_000u32).map(|i| (i % 251) as u8).collect();
            std::fs::write(&path, &data).expect("write");
            let file = Rc::new(File::open(&path).await.expect("open"));
            let p = pipe(1 << 20).expect("pipe");
            assert!(p.capacity >= 4096);
            let w = Rc::new(p.write);
            let (a, b) = std::os::unix::net::UnixStream::pair().expect("pair");
            let reader = std::thread::spawn(move || {
                use std::io::Read;
                let mut b = b;
                let mut got = Vec::new();
                b.read_to_end(&mut got).expect("read");
                got
            });
            let mut pos = 1000u64;
            while pos < data.len() as u64 {
                let want = (p.capacity as u64 / 2).min(data.len() as u64 - pos) as u32;
                let n = file_to_pipe(file.clone(), pos, w.clone(), want).await.expect("splice");
                assert!(n > 0);
                let mut left = n;
                while left > 0 {
                    left -= pipe_to_socket(p.read.as_raw_fd(), a.as_raw_fd(), left).expect("to socket");
                }
                pos += n as u64;
            }
            assert_eq!(
                file_to_pipe(file.clone(), pos, w.clone(), 10)
                    .await
                    .expect("at the end"),
                0
            );
            drop(a);
            assert!(reader.join().expect("reader") == data[1000..]);
            std::fs::remove_dir_all(&dir).expect("clean up");
        });
    }
}
