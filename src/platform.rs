//! Every platform split in one place: symlinks, process identity, ownership and modes.
//!
//! Each public function forwards to `imp`, defined once per platform family.

use std::io;
use std::path::Path;

/// Creates a symlink at `link` pointing to `target` (a file or a directory).
pub fn symlink(target: &Path, link: &Path) -> io::Result<()> {
    imp::symlink(target, link)
}

/// The start time of process `pid` in an opaque unit that is stable for the process's life, or
/// `None` when no such process is running. Zombies count as dead.
pub fn process_start_time(pid: u32) -> Option<u64> {
    imp::process_start_time(pid)
}

/// Whether `pid` names a live process that started at `start` (when known).
pub fn process_alive(pid: u32, start: Option<u64>) -> bool {
    match (process_start_time(pid), start) {
        (None, _) => false,
        (Some(now), Some(then)) => now == then,
        (Some(_), None) => true,
    }
}

/// Gives files that `options` creates the permission bits `mode` (ignored where the platform
/// has none).
pub fn create_mode(options: &mut std::fs::OpenOptions, mode: u32) {
    imp::create_mode(options, mode)
}

/// Whether two metadata describe the same file (device and inode where the platform has them;
/// elsewhere it cannot tell, and says yes).
pub fn same_file(a: &std::fs::Metadata, b: &std::fs::Metadata) -> bool {
    imp::same_file(a, b)
}

/// Makes an open not wait for a writer or a device (`O_NONBLOCK`), where the platform has it.
pub fn open_nonblocking(options: &mut std::fs::OpenOptions) {
    imp::open_nonblocking(options)
}

/// Best-effort fsync of a directory, so a rename inside it survives a power cut (a no-op where
/// directories cannot be opened).
pub fn sync_dir(dir: &Path) {
    imp::sync_dir(dir)
}

/// Whether [`process_start_time`] is field 22 of `/proc/<pid>/stat`, the value Claude Code
/// records as `procStart` in its `sessions/<pid>.json`.
pub const START_TIME_IS_PROC_STAT: bool = cfg!(target_os = "linux");

/// Whether Claude Code keeps its login in the Keychain here (macOS), so the helper does too
/// unless `CLAUTH_CREDENTIAL_STORE` says otherwise.
pub const KEYCHAIN_BY_DEFAULT: bool = cfg!(target_os = "macos");

/// Whether `owner_pid` can be honoured: a process's start time is known, so a reused pid does
/// not keep a dead session alive.
pub const OWNER_PID_SUPPORTED: bool = cfg!(unix);

/// The value of `CLAUDE_CONFIG_DIR` in the environment of process `pid`: `Some(None)` when it
/// is unset or empty, `None` when it cannot be known (another platform, or not readable).
pub fn config_dir_of_process(pid: u32) -> Option<Option<std::ffi::OsString>> {
    imp::config_dir_of_process(pid)
}

/// This process's id.
pub fn current_pid() -> u32 {
    std::process::id()
}

/// Sets the permission bits of `path` (ignored where the platform has none).
pub fn set_mode(path: &Path, mode: u32) -> io::Result<()> {
    imp::set_mode(path, mode)
}

/// Sets the permission bits of an open file (ignored where the platform has none).
pub fn set_file_mode(file: &std::fs::File, mode: u32) -> io::Result<()> {
    imp::set_file_mode(file, mode)
}

/// The permission bits of `meta`, or `None` where the platform has none.
pub fn mode_of(meta: &std::fs::Metadata) -> Option<u32> {
    imp::mode_of(meta)
}

/// The device and inode of `meta`, which tell one directory from another whatever path led to
/// it; `None` where the platform has none.
pub fn dir_id(meta: &std::fs::Metadata) -> Option<(u64, u64)> {
    imp::dir_id(meta)
}

/// Whether `meta` belongs to the user running this process (always true where unknowable).
pub fn owned_by_current_user(meta: &std::fs::Metadata) -> bool {
    imp::owned_by_current_user(meta)
}

/// An id of the file (inode) that changes when the path is replaced by rename; 0 where unknown.
pub fn file_id(meta: &std::fs::Metadata) -> u64 {
    imp::file_id(meta)
}

/// Puts `new` at `target` in one step and moves what was at `target` to `new`'s path. Returns
/// `false` when nothing was at `target` (then `new` is simply renamed there, never over
/// something that appeared meanwhile). Where the platform cannot exchange atomically, this is a
/// rename that reports `true` only after saving the old entry aside first.
pub fn exchange(new: &Path, target: &Path) -> io::Result<bool> {
    imp::exchange(new, target)
}

/// Where the platform cannot exchange atomically: keep the old entry by a hard link, then
/// rename. A write that lands between the two calls is lost; Linux never takes this path.
#[allow(dead_code)]
fn exchange_by_link(new: &Path, target: &Path) -> io::Result<bool> {
    let aside = new.with_extension("old");
    let had = std::fs::hard_link(target, &aside).is_ok();
    std::fs::rename(new, target)?;
    if had {
        std::fs::rename(&aside, new)?;
    }
    Ok(had)
}

/// Whether child processes started from now on inherit `file` (its lock with it).
pub fn set_inheritable(file: &std::fs::File, inherit: bool) -> io::Result<()> {
    imp::set_inheritable(file, inherit)
}

/// Sends `signal` to `pid`; used by `run` to forward signals to its child.
pub fn send_signal(pid: u32, signal: i32) -> io::Result<()> {
    imp::send_signal(pid, signal)
}

/// The bytes of a file name that is not valid Unicode, and the name back from them: the names
/// a Unix file system holds are any bytes but `/` and NUL.
pub fn name_bytes(name: &std::ffi::OsStr) -> Vec<u8> {
    imp::name_bytes(name)
}

pub fn name_from_bytes(bytes: Vec<u8>) -> std::ffi::OsString {
    imp::name_from_bytes(bytes)
}

/// Makes the allocator give big freed buffers back to the system at once. glibc raises its mmap
/// threshold to the size of the last big buffer freed, and buffers under it live in the heap,
/// where freed memory stays resident: a holder that reads a big document every few seconds
/// would keep three of its texts resident instead of the two it holds. Once per process.
pub fn return_big_frees() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(imp::return_big_frees);
}

#[cfg(unix)]
mod imp {
    pub use super::imp_signals::{Signals, exit_code};
    use std::io;
    use std::os::unix::fs::{MetadataExt, PermissionsExt};
    use std::path::Path;

    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    pub fn return_big_frees() {
        // SAFETY: mallopt only sets an allocator parameter; M_MMAP_THRESHOLD takes a size, and
        // a fixed one also stops its adjustment.
        unsafe {
            libc::mallopt(libc::M_MMAP_THRESHOLD, 1 << 20);
        }
    }

    #[cfg(not(all(target_os = "linux", target_env = "gnu")))]
    pub fn return_big_frees() {}

    pub fn symlink(target: &Path, link: &Path) -> io::Result<()> {
        std::os::unix::fs::symlink(target, link)
    }

    pub fn name_bytes(name: &std::ffi::OsStr) -> Vec<u8> {
        std::os::unix::ffi::OsStrExt::as_bytes(name).to_vec()
    }

    pub fn name_from_bytes(bytes: Vec<u8>) -> std::ffi::OsString {
        std::os::unix::ffi::OsStringExt::from_vec(bytes)
    }

    #[cfg(target_os = "linux")]
    pub fn process_start_time(pid: u32) -> Option<u64> {
        if pid == 0 {
            return None;
        }
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
        // The command name may hold spaces and parentheses: fields resume after the last ')'.
        let rest = &stat[stat.rfind(')')? + 1..];
        let mut fields = rest.split_whitespace();
        let state = fields.next()?;
        if state == "Z" || state == "X" {
            return None;
        }
        // After the state come 18 fields; the 19th is starttime (field 22 of the whole line).
        fields.nth(18)?.parse().ok()
    }

    #[cfg(not(target_os = "linux"))]
    pub fn process_start_time(pid: u32) -> Option<u64> {
        if pid == 0 || pid > i32::MAX as u32 {
            return None;
        }
        // SAFETY: kill with signal 0 only checks that the process exists and may be signalled.
        let rc = unsafe { libc::kill(pid as libc::pid_t, 0) };
        if rc == 0 || io::Error::last_os_error().raw_os_error() == Some(libc::EPERM) {
            // No portable start time here; 0 means "alive, start unknown".
            Some(0)
        } else {
            None
        }
    }

    pub fn set_mode(path: &Path, mode: u32) -> io::Result<()> {
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode))
    }

    pub fn create_mode(options: &mut std::fs::OpenOptions, mode: u32) {
        std::os::unix::fs::OpenOptionsExt::mode(options, mode);
    }

    pub fn open_nonblocking(options: &mut std::fs::OpenOptions) {
        std::os::unix::fs::OpenOptionsExt::custom_flags(options, libc::O_NONBLOCK);
    }

    pub fn same_file(a: &std::fs::Metadata, b: &std::fs::Metadata) -> bool {
        use std::os::unix::fs::MetadataExt;
        a.dev() == b.dev() && a.ino() == b.ino()
    }

    pub fn sync_dir(dir: &Path) {
        if let Ok(d) = std::fs::File::open(dir) {
            let _ = d.sync_all();
        }
    }

    #[cfg(target_os = "linux")]
    pub fn config_dir_of_process(pid: u32) -> Option<Option<std::ffi::OsString>> {
        use std::os::unix::ffi::OsStrExt;
        let environ = std::fs::read(format!("/proc/{pid}/environ")).ok()?;
        let value = environ
            .split(|b| *b == 0)
            .find_map(|kv| kv.strip_prefix(b"CLAUDE_CONFIG_DIR="))
            .filter(|v| !v.is_empty())
            .map(|v| std::ffi::OsStr::from_bytes(v).to_owned());
        Some(value)
    }

    #[cfg(not(target_os = "linux"))]
    pub fn config_dir_of_process(_pid: u32) -> Option<Option<std::ffi::OsString>> {
        None
    }

    pub fn set_file_mode(file: &std::fs::File, mode: u32) -> io::Result<()> {
        file.set_permissions(std::fs::Permissions::from_mode(mode))
    }

    pub fn mode_of(meta: &std::fs::Metadata) -> Option<u32> {
        Some(meta.permissions().mode() & 0o7777)
    }

    pub fn dir_id(meta: &std::fs::Metadata) -> Option<(u64, u64)> {
        Some((meta.dev(), meta.ino()))
    }

    pub fn owned_by_current_user(meta: &std::fs::Metadata) -> bool {
        // SAFETY: geteuid has no preconditions and cannot fail.
        let uid = unsafe { libc::geteuid() };
        meta.uid() == uid
    }

    pub fn file_id(meta: &std::fs::Metadata) -> u64 {
        meta.ino()
    }

    #[cfg(any(target_os = "linux", target_os = "android"))]
    pub fn exchange(new: &Path, target: &Path) -> io::Result<bool> {
        use std::ffi::CString;
        use std::os::unix::ffi::OsStrExt;
        let a = CString::new(new.as_os_str().as_bytes())?;
        let b = CString::new(target.as_os_str().as_bytes())?;
        let rename = |flags| {
            // SAFETY: both paths are NUL-terminated and live across the call.
            let rc = unsafe {
                libc::renameat2(
                    libc::AT_FDCWD,
                    a.as_ptr(),
                    libc::AT_FDCWD,
                    b.as_ptr(),
                    flags,
                )
            };
            if rc == 0 {
                Ok(())
            } else {
                Err(io::Error::last_os_error())
            }
        };
        loop {
            match rename(libc::RENAME_EXCHANGE) {
                Ok(()) => return Ok(true),
                Err(e) if e.raw_os_error() == Some(libc::ENOENT) => {}
                Err(e) => return Err(e),
            }
            // Nothing at target: move in without replacing anything that appears meanwhile.
            match rename(libc::RENAME_NOREPLACE) {
                Ok(()) => return Ok(false),
                Err(e) if e.raw_os_error() == Some(libc::EEXIST) => {}
                Err(e) => return Err(e),
            }
        }
    }

    #[cfg(not(any(target_os = "linux", target_os = "android")))]
    pub fn exchange(new: &Path, target: &Path) -> io::Result<bool> {
        super::exchange_by_link(new, target)
    }

    pub fn set_inheritable(file: &std::fs::File, inherit: bool) -> io::Result<()> {
        use std::os::fd::AsRawFd;
        let fd = file.as_raw_fd();
        // SAFETY: fcntl on a descriptor we own, reading and setting only FD_CLOEXEC.
        unsafe {
            let flags = libc::fcntl(fd, libc::F_GETFD);
            if flags < 0 {
                return Err(io::Error::last_os_error());
            }
            let flags = if inherit {
                flags & !libc::FD_CLOEXEC
            } else {
                flags | libc::FD_CLOEXEC
            };
            if libc::fcntl(fd, libc::F_SETFD, flags) < 0 {
                return Err(io::Error::last_os_error());
            }
        }
        Ok(())
    }

    pub fn send_signal(pid: u32, signal: i32) -> io::Result<()> {
        if pid == 0 || pid > i32::MAX as u32 {
            return Err(io::Error::new(io::ErrorKind::InvalidInput, "bad pid"));
        }
        // SAFETY: kill has no memory-safety preconditions; the pid is a positive process id.
        let rc = unsafe { libc::kill(pid as libc::pid_t, signal) };
        if rc == 0 {
            Ok(())
        } else {
            Err(io::Error::last_os_error())
        }
    }

    pub fn await_exit(pid: u32) -> io::Result<()> {
        if pid == 0 || pid > i32::MAX as u32 {
            return Err(io::Error::new(io::ErrorKind::InvalidInput, "bad pid"));
        }
        loop {
            // SAFETY: an all-zero siginfo_t is a valid value for waitid to fill in.
            let mut info: libc::siginfo_t = unsafe { std::mem::zeroed() };
            // SAFETY: `info` is a live siginfo_t; WNOWAIT leaves the child to be reaped later.
            let rc = unsafe {
                libc::waitid(
                    libc::P_PID,
                    pid as libc::id_t,
                    &mut info,
                    libc::WEXITED | libc::WNOWAIT,
                )
            };
            if rc == 0 {
                return Ok(());
            }
            let e = io::Error::last_os_error();
            if e.kind() != io::ErrorKind::Interrupted {
                return Err(e);
            }
        }
    }
}

#[cfg(windows)]
mod imp {
    pub use super::imp_signals::{Signals, exit_code};
    use std::io;
    use std::path::Path;

    pub fn return_big_frees() {}

    /// Windows names are 16-bit units: an unpaired surrogate is carried as its units, two
    /// bytes each, little-endian.
    pub fn name_bytes(name: &std::ffi::OsStr) -> Vec<u8> {
        use std::os::windows::ffi::OsStrExt;
        name.encode_wide().flat_map(u16::to_le_bytes).collect()
    }

    pub fn name_from_bytes(bytes: Vec<u8>) -> std::ffi::OsString {
        use std::os::windows::ffi::OsStringExt;
        let units: Vec<u16> = bytes
            .chunks(2)
            .map(|c| u16::from_le_bytes([c[0], *c.get(1).unwrap_or(&0)]))
            .collect();
        std::ffi::OsString::from_wide(&units)
    }

    pub fn symlink(target: &Path, link: &Path) -> io::Result<()> {
        if target.is_dir() {
            std::os::windows::fs::symlink_dir(target, link)
        } else {
            std::os::windows::fs::symlink_file(target, link)
        }
    }

    pub fn process_start_time(pid: u32) -> Option<u64> {
        // Without a process API here, only our own process is known to be alive; other owners
        // are kept alive by leases or by a serve lock.
        (pid == std::process::id()).then_some(0)
    }

    pub fn set_mode(_path: &Path, _mode: u32) -> io::Result<()> {
        Ok(())
    }

    pub fn create_mode(_options: &mut std::fs::OpenOptions, _mode: u32) {}

    pub fn open_nonblocking(_options: &mut std::fs::OpenOptions) {}

    pub fn same_file(_a: &std::fs::Metadata, _b: &std::fs::Metadata) -> bool {
        true
    }

    pub fn sync_dir(_dir: &Path) {}

    pub fn config_dir_of_process(_pid: u32) -> Option<Option<std::ffi::OsString>> {
        None
    }

    pub fn set_file_mode(_file: &std::fs::File, _mode: u32) -> io::Result<()> {
        Ok(())
    }

    pub fn mode_of(_meta: &std::fs::Metadata) -> Option<u32> {
        None
    }

    pub fn dir_id(_meta: &std::fs::Metadata) -> Option<(u64, u64)> {
        None
    }

    pub fn owned_by_current_user(_meta: &std::fs::Metadata) -> bool {
        true
    }

    pub fn file_id(_meta: &std::fs::Metadata) -> u64 {
        0
    }

    pub fn exchange(new: &Path, target: &Path) -> io::Result<bool> {
        super::exchange_by_link(new, target)
    }

    pub fn set_inheritable(_file: &std::fs::File, _inherit: bool) -> io::Result<()> {
        // Handles are not inherited by std's spawn on Windows; the hold ends with this process.
        Ok(())
    }

    pub fn send_signal(_pid: u32, _signal: i32) -> io::Result<()> {
        Err(io::Error::new(
            io::ErrorKind::Unsupported,
            "signals are not forwarded on Windows",
        ))
    }

    pub fn await_exit(_pid: u32) -> io::Result<()> {
        Err(io::Error::new(
            io::ErrorKind::Unsupported,
            "no wait that leaves the child unreaped here",
        ))
    }
}

/// The exit code a shell would report for `status`: the code, or 128+N for signal N.
pub fn exit_code(status: std::process::ExitStatus) -> i32 {
    imp::exit_code(status)
}

/// Termination signals delivered to this process, so `run` and `serve` can end cleanly.
pub struct Signals(imp::Signals);

/// A signal that arrived, and whether a process sent it (as opposed to the terminal driver,
/// which already delivers to the whole foreground process group, child included).
#[derive(Debug, Clone, Copy)]
pub struct Arrived {
    pub signal: i32,
    pub sent_by_process: bool,
}

impl Signals {
    /// Catches SIGINT, SIGTERM and SIGHUP from now on.
    pub fn catch() -> io::Result<Signals> {
        imp::Signals::catch().map(Signals)
    }

    /// Signals that arrived since the last call.
    pub fn pending(&mut self) -> Vec<Arrived> {
        self.0.pending()
    }

    /// Hands every signal that arrives from now on (and any already pending) to `on`, on a
    /// thread of its own that blocks until one does, so a waiting loop needs no timeout to see
    /// them. The thread ends when `on` returns false or the returned value is dropped.
    pub fn forward(self, on: impl FnMut(Arrived) -> bool + Send + 'static) -> Forwarding {
        Forwarding {
            _stop: self.0.forward(on),
        }
    }
}

/// Signals being handed on by [`Signals::forward`]; dropping it stops that and the catching.
pub struct Forwarding {
    _stop: imp_signals::Forwarding,
}

/// Blocks until the child process `pid` has exited, without reaping it: its pid stays its own
/// (a zombie) until the caller waits for it, so signals sent to the pid meanwhile reach no
/// other process. Fails where the platform cannot wait so.
pub fn await_exit(pid: u32) -> io::Result<()> {
    imp::await_exit(pid)
}

#[cfg(unix)]
mod imp_signals {
    use std::io;

    use signal_hook::consts::{SIGHUP, SIGINT, SIGTERM};
    use signal_hook::iterator::SignalsInfo;
    use signal_hook::iterator::exfiltrator::WithOrigin;
    use signal_hook::low_level::siginfo::Cause;

    use super::Arrived;

    pub struct Signals(SignalsInfo<WithOrigin>);

    pub struct Forwarding(signal_hook::iterator::Handle);

    impl Drop for Forwarding {
        fn drop(&mut self) {
            self.0.close();
        }
    }

    fn arrived(origin: signal_hook::low_level::siginfo::Origin) -> Arrived {
        Arrived {
            signal: origin.signal,
            sent_by_process: matches!(origin.cause, Cause::Sent(_) | Cause::Unknown),
        }
    }

    impl Signals {
        pub fn catch() -> io::Result<Signals> {
            SignalsInfo::<WithOrigin>::new([SIGINT, SIGTERM, SIGHUP]).map(Signals)
        }

        pub fn pending(&mut self) -> Vec<Arrived> {
            self.0.pending().map(arrived).collect()
        }

        pub fn forward(self, mut on: impl FnMut(Arrived) -> bool + Send + 'static) -> Forwarding {
            let mut signals = self.0;
            let handle = signals.handle();
            std::thread::spawn(move || {
                // Ends when the handle is closed.
                for origin in signals.forever() {
                    if !on(arrived(origin)) {
                        break;
                    }
                }
            });
            Forwarding(handle)
        }
    }

    pub fn exit_code(status: std::process::ExitStatus) -> i32 {
        use std::os::unix::process::ExitStatusExt;
        status
            .code()
            .or_else(|| status.signal().map(|s| 128 + s))
            .unwrap_or(1)
    }
}

#[cfg(windows)]
mod imp_signals {
    use std::io;
    use std::sync::Arc;
    use std::sync::atomic::{AtomicBool, Ordering};

    use super::Arrived;

    pub struct Signals(Arc<AtomicBool>);

    pub struct Forwarding(Arc<AtomicBool>);

    impl Drop for Forwarding {
        fn drop(&mut self) {
            self.0.store(true, Ordering::SeqCst);
        }
    }

    impl Signals {
        /// Without a blocking wait for signals here, the flag is looked at ten times a second.
        pub fn forward(
            mut self,
            mut on: impl FnMut(Arrived) -> bool + Send + 'static,
        ) -> Forwarding {
            let stop = Arc::new(AtomicBool::new(false));
            let stopped = stop.clone();
            std::thread::spawn(move || {
                while !stopped.load(Ordering::SeqCst) {
                    for signal in self.pending() {
                        if !on(signal) {
                            return;
                        }
                    }
                    std::thread::sleep(std::time::Duration::from_millis(100));
                }
            });
            Forwarding(stop)
        }

        pub fn catch() -> io::Result<Signals> {
            let flag = Arc::new(AtomicBool::new(false));
            signal_hook::flag::register(signal_hook::consts::SIGINT, flag.clone())?;
            signal_hook::flag::register(signal_hook::consts::SIGTERM, flag.clone())?;
            Ok(Signals(flag))
        }

        pub fn pending(&mut self) -> Vec<Arrived> {
            if self.0.swap(false, Ordering::SeqCst) {
                vec![Arrived {
                    signal: signal_hook::consts::SIGTERM,
                    sent_by_process: true,
                }]
            } else {
                Vec::new()
            }
        }
    }

    pub fn exit_code(status: std::process::ExitStatus) -> i32 {
        status.code().unwrap_or(1)
    }
}
