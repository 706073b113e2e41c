//! `run`: acquire a held session, run a command in it, tick while it runs, forward signals,
//! release, and exit with the command's status.

use std::collections::BTreeSet;
use std::ffi::OsString;
use std::process::Command;
use std::sync::mpsc::{self, RecvTimeoutError};
use std::time::Duration;

use anyhow::Result;

use crate::app;
use crate::error::{ErrorCode, code_of, coded};
use crate::fsx;
use crate::layout::Layout;
use crate::platform::{self, Arrived, Signals};
use crate::profile;
use crate::protocol::{AcquireRequest, LinkModeRequest, Pick, ProfileName, SessionId, SyncReport};
use crate::ticker::{Outcome, Ticker};

/// Exit status when the wrapper itself fails before the command runs.
pub const EXIT_WRAPPER_FAILED: i32 = 125;
/// Exit status when the command cannot be executed (as a shell reports it).
pub const EXIT_NOT_EXECUTABLE: i32 = 126;
/// Exit status when the command is not found (as a shell reports it).
pub const EXIT_NOT_FOUND: i32 = 127;

pub struct RunOptions {
    /// The profile, or `None` with `pick`.
    pub profile: Option<ProfileName>,
    /// Let the helper choose the profile (acquire's `pick`).
    pub pick: Option<Pick>,
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
        profile: named,
        pick,
        link_mode,
        command,
    } = opts;
    // The store is checked first: a symlinked or foreign store is the answer, not a missing
    // profile inside it.
    layout.ensure_store()?;
    if let Some(name) = &named {
        profile::require(layout, name)?;
        profile::load_config(layout, name)?;
    }
    // A new user may not have run Claude Code yet: its home is made as Claude Code makes it.
    if fsx::lstat_optional(&layout.claude_home)?.is_none() {
        fsx::ensure_dir(&layout.claude_home, fsx::PRIVATE_DIR)?;
        eprintln!(
            "clauth-helper run: created {}, Claude Code's home (it did not exist)",
            layout.claude_home.display()
        );
    }
    // Catch signals before the session exists, so none can end us between acquire and release.
    let signals =
        Signals::catch().map_err(|e| coded(ErrorCode::Io, format!("cannot catch signals: {e}")))?;
    let request = AcquireRequest {
        profile: named,
        pick,
        owner_pid: None,
        lease_ms: None,
        link_mode,
    };
    let held = retrying("acquire", || app::acquire_held(layout, &request))?;
    let id = SessionId::parse(&held.acquired.session)?;
    let name = ProfileName::parse(&held.acquired.profile)?;
    if let Some(picked) = &held.acquired.pick {
        let headroom = picked
            .headroom
            .map(|h| format!("{}% headroom", h.round()))
            .unwrap_or_else(|| "its usage is unknown".to_owned());
        eprintln!("clauth-helper run: picked profile {name} ({headroom})");
    }
    let config = profile::load_config(layout, &name)?;

    let (program, args) = program_and_args(command);
    let mut cmd = Command::new(&program);
    cmd.args(args);
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
    let mut notes = Notes {
        aside_before: kept_aside(layout, &name),
        ..Notes::default()
    };
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
            let (tx, wakes) = mpsc::channel();
            let pid = child.id();
            let exited = tx.clone();
            // The child is reaped here, by `try_wait`, so a signal passed on meanwhile can only
            // reach it. Where that wait is not to be had, the child is looked at every 50 ms.
            std::thread::spawn(move || {
                let _ = exited.send(match platform::await_exit(pid) {
                    Ok(()) => Wake::Exited,
                    Err(_) => Wake::CannotWait,
                });
            });
            let forwarded = tx.clone();
            let _signals =
                signals.forward(move |arrived| forwarded.send(Wake::Signal(arrived)).is_ok());
            let files = tx;
            let mut ticker = Ticker::new(move || {
                let _ = files.send(Wake::Files);
            });
            ticker.add(layout, id.clone(), &held.acquired.profile);
            let mut child_poll: Option<Duration> = None;
            let status = loop {
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
                        Outcome::Synced { report, .. } => notes.report(layout, &name, &report),
                        Outcome::Ended { session } => notes.say(format!(
                            "session {session} was released by another process; this run no longer saves what the command writes"
                        )),
                        Outcome::Failed { error, .. } => {
                            notes.say(format!("tick failed: {}", error.message))
                        }
                    }
                }
                let wait = match child_poll {
                    Some(poll) => ticker.until_due().min(poll),
                    None => ticker.until_due(),
                };
                match wakes.recv_timeout(wait) {
                    // The terminal already signalled the whole process group; only signals sent
                    // to us alone are passed on, so the command never gets one twice.
                    Ok(Wake::Signal(arrived)) if arrived.sent_by_process => {
                        let _ = platform::send_signal(child.id(), arrived.signal);
                    }
                    Ok(Wake::CannotWait) => child_poll = Some(Duration::from_millis(50)),
                    Ok(Wake::Signal(_) | Wake::Exited | Wake::Files)
                    | Err(RecvTimeoutError::Timeout | RecvTimeoutError::Disconnected) => {}
                }
            };
            Finished::Exited(status)
        }
    };
    let released = retrying("release", || app::release(layout, &id));
    drop(held);
    if let (Ok(r), Finished::Exited(_)) = (&released, &outcome) {
        notes.report(layout, &name, &r.report);
    }
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

/// What wakes `run` while the command runs.
enum Wake {
    /// The command exited (it is reaped by the loop).
    Exited,
    /// The command's exit cannot be waited for here: the loop looks every so often.
    CannotWait,
    Signal(Arrived),
    /// Something a tick looks at changed; the ticker knows what.
    Files,
}

/// The program and its arguments: `claude` when none is given, and when the first word starts
/// with '-' (`run work -- --continue` means `claude --continue`).
fn program_and_args(command: Vec<OsString>) -> (OsString, Vec<OsString>) {
    let claude = || OsString::from("claude");
    match command.first() {
        None => (claude(), Vec::new()),
        Some(first) if first.to_string_lossy().starts_with('-') => (claude(), command),
        Some(_) => {
            let mut words = command.into_iter();
            let program = words.next().unwrap_or_else(claude);
            (program, words.collect())
        }
    }
}

/// The pairs a profile keeps aside (`credentials.<what>-<ms>.json`), by file name.
fn kept_aside(layout: &Layout, name: &str) -> BTreeSet<String> {
    std::fs::read_dir(layout.profile_dir(name))
        .map(|entries| {
            entries
                .flatten()
                .filter_map(|e| e.file_name().into_string().ok())
                .filter(|n| n.starts_with("credentials.") && n != "credentials.json")
                .collect()
        })
        .unwrap_or_default()
}

/// What `run` tells the person about its session while the command runs: each thing once, in
/// one short line on stderr, never a secret (reports and errors carry none).
#[derive(Default)]
struct Notes {
    said: BTreeSet<String>,
    aside_before: BTreeSet<String>,
}

impl Notes {
    fn say(&mut self, line: String) {
        if self.said.insert(line.clone()) {
            eprintln!("clauth-helper run: {line}");
        }
    }

    /// The things of a sync report a person must know: a login not saved, a login kept aside
    /// (it may still be usable), documents that could not be merged, files changed on both
    /// sides.
    fn report(&mut self, layout: &Layout, name: &ProfileName, report: &SyncReport) {
        if let Some(why) = &report.credentials_rejected {
            self.say(format!(
                "profile {name}: the session's login was not saved: {why}"
            ));
        }
        if report.credentials_saved {
            let now = kept_aside(layout, name);
            if now.difference(&self.aside_before).next().is_some() {
                self.say(format!(
                    "profile {name}: saved the session's refreshed or new login; the pair it replaced is kept in {} (a refresh spends it; after a /login to another account it may still be usable)",
                    layout.profile_dir(name).display()
                ));
            }
            self.aside_before = now;
        }
        // Said the same way during the session and at its release, so it is said once.
        for doc in &report.rejected_documents {
            self.say(format!(
                "{doc} does not parse, so the session's changes to it were not merged; they are merged once it parses again, or kept in the profile if the session ends first"
            ));
        }
        for kept in &report.kept_documents {
            self.say(format!(
                "profile {name}: the session's copy that could not be merged is kept in {kept}"
            ));
        }
        if !report.conflicts.is_empty() {
            self.say(format!(
                "files changed both in the session and in the claude home; both versions are kept: {}",
                report.conflicts.join(", ")
            ));
        }
    }
}

/// Delays between tries of a call whose failure is retryable (`lock_timeout`,
/// `keychain_locked`): about six seconds in all, beside the lock timeout each try waits.
const RETRY_DELAYS_MS: [u64; 6] = [100, 200, 400, 800, 1600, 3200];

/// Runs `call`, again after a pause while it fails with a retryable code.
fn retrying<T>(what: &str, mut call: impl FnMut() -> Result<T>) -> Result<T> {
    for (n, delay) in RETRY_DELAYS_MS.iter().enumerate() {
        match call() {
            // `no_headroom` is retryable only once a window resets, hours away: not here.
            Err(e) if code_of(&e).retryable() && code_of(&e) != ErrorCode::NoHeadroom => {
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
