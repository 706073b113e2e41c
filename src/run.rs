//! `run`: acquire a held session, run a command in it, tick while it runs, forward signals,
//! release, and exit with the command's status.

use std::ffi::OsString;
use std::process::Command;
use std::time::Duration;

use anyhow::Result;

use crate::app;
use crate::error::{ErrorCode, code_of, coded};
use crate::layout::Layout;
use crate::platform::{self, Signals};
use crate::profile;
use crate::protocol::{AcquireRequest, LinkModeRequest, ProfileName, SessionId};
use crate::ticker::{Outcome, Ticker};

/// Exit status when the wrapper itself fails before the command runs.
pub const EXIT_WRAPPER_FAILED: i32 = 125;
/// Exit status when the command cannot be executed (as a shell reports it).
pub const EXIT_NOT_EXECUTABLE: i32 = 126;
/// Exit status when the command is not found (as a shell reports it).
pub const EXIT_NOT_FOUND: i32 = 127;

pub struct RunOptions {
    pub profile: ProfileName,
    pub link_mode: Option<LinkModeRequest>,
    /// The command and its arguments; `claude` when empty.
    pub command: Vec<OsString>,
}

/// What happened, for the caller to turn into an exit status.
pub enum Finished {
    Exited(i32),
    /// The command could not be started: the status a shell would give, and why.
    NotStarted(i32, String),
}

/// Runs the command under the profile. Errors are the wrapper's own (before the command ran).
pub fn run(layout: &Layout, opts: RunOptions) -> Result<Finished> {
    let RunOptions {
        profile: name,
        link_mode,
        command,
    } = opts;
    // The store is checked first: a symlinked or foreign store is the answer, not a missing
    // profile inside it.
    layout.ensure_store()?;
    profile::require(layout, &name)?;
    let config = profile::load_config(layout, &name)?;
    // Catch signals before the session exists, so none can end us between acquire and release.
    let mut signals =
        Signals::catch().map_err(|e| coded(ErrorCode::Io, format!("cannot catch signals: {e}")))?;
    let request = AcquireRequest {
        profile: name,
        owner_pid: None,
        lease_ms: None,
        link_mode,
    };
    let held = retrying("acquire", || app::acquire_held(layout, &request))?;
    let id = SessionId::parse(&held.acquired.session)?;

    let mut argv = command.into_iter();
    let program = argv.next().unwrap_or_else(|| OsString::from("claude"));
    let mut cmd = Command::new(&program);
    cmd.args(argv);
    for key in &held.acquired.env_remove {
        cmd.env_remove(key);
    }
    cmd.envs(&config.env);
    cmd.envs(&held.acquired.env);

    // The command shares the hold: if this process is killed, the session lives on while the
    // command does, and its runtime is not reclaimed under it.
    if let Err(e) = held.share_with_children() {
        eprintln!("clauth-helper run: the session will end with this process: {e}");
    }
    let outcome = match cmd.spawn() {
        Err(e) => {
            let status = if e.kind() == std::io::ErrorKind::NotFound {
                EXIT_NOT_FOUND
            } else {
                EXIT_NOT_EXECUTABLE
            };
            Finished::NotStarted(
                status,
                format!("cannot run {}: {e}", program.to_string_lossy()),
            )
        }
        Ok(mut child) => {
            let mut ticker = Ticker::new();
            ticker.add(id.clone(), &held.acquired.profile);
            let status = loop {
                for arrived in signals.pending() {
                    // The terminal already signalled the whole process group; only signals sent
                    // to us alone are passed on, so the command never gets one twice.
                    if arrived.sent_by_process {
                        let _ = platform::send_signal(child.id(), arrived.signal);
                    }
                }
                match child.try_wait() {
                    Ok(Some(status)) => break platform::exit_code(status),
                    Ok(None) => {}
                    Err(e) => {
                        eprintln!("clauth-helper run: cannot wait for the command: {e}");
                        break EXIT_WRAPPER_FAILED;
                    }
                }
                for outcome in ticker.tick_if_due(layout) {
                    match outcome {
                        Outcome::Synced { .. } => {}
                        Outcome::Ended { session } => eprintln!(
                            "clauth-helper run: tick failed: session {session} was released by another process"
                        ),
                        Outcome::Failed { error, .. } => {
                            eprintln!("clauth-helper run: tick failed: {}", error.message)
                        }
                    }
                }
                std::thread::sleep(Duration::from_millis(20));
            };
            Finished::Exited(status)
        }
    };
    let released = retrying("release", || app::release(layout, &id));
    drop(held);
    if let Err(e) = released {
        eprintln!(
            "clauth-helper run: release failed: {e:#}; the session's runtime is kept, and `clauth-helper gc` saves and removes it later"
        );
        // The command's own failure says more; a clean exit must not hide the wrapper's.
        if let Finished::Exited(0) = outcome {
            return Ok(Finished::Exited(EXIT_WRAPPER_FAILED));
        }
    }
    Ok(outcome)
}

/// Delays between tries of a call whose failure is retryable (`lock_timeout`,
/// `keychain_locked`): about six seconds in all, beside the lock timeout each try waits.
const RETRY_DELAYS_MS: [u64; 6] = [100, 200, 400, 800, 1600, 3200];

/// Runs `call`, again after a pause while it fails with a retryable code.
fn retrying<T>(what: &str, mut call: impl FnMut() -> Result<T>) -> Result<T> {
    for (n, delay) in RETRY_DELAYS_MS.iter().enumerate() {
        match call() {
            Err(e) if code_of(&e).retryable() => {
                if n == 0 {
                    eprintln!("clauth-helper run: {what}: {e:#}; trying again");
                }
                std::thread::sleep(Duration::from_millis(*delay));
            }
            other => return other,
        }
    }
    call()
}
