//! The application layer: the one place where the state lock, session records and runtimes
//! meet. Every verb of the protocol, profile administration and the held acquires of `serve`
//! and `run` are here; the protocol's [`Handler`](crate::protocol::Handler) for one-shot calls is
//! [`OneShot`].

mod admin;
mod handler;
mod home;
mod sessions;
mod usage;

use anyhow::Result;

pub use admin::{
    Collected, EnvChange, REMOVED_KEPT_MS, Removed, Restored, add_profile, change_env, gc,
    profile_status, remove_profile, rename_profile, restore_profile, use_profile,
};
pub use handler::OneShot;
pub use home::{Used, plain_claude_running};
pub use sessions::{
    Held, PROFILE_VAR, acquire, acquire_held, release, status, status_with_usage, tick, tick_with,
};
pub use usage::usage_reports;

use crate::ids::now_ms;
use crate::layout::Layout;
use crate::session::{self, SessionRecord};

/// Removes records of dead sessions; returns the live ones and how many were removed.
fn prune(layout: &Layout) -> Result<(Vec<SessionRecord>, usize)> {
    let now = now_ms();
    let mut live = Vec::new();
    let mut pruned = 0;
    for record in session::load_all(layout)? {
        match record {
            Ok(r) if r.is_alive(layout, now) => live.push(r),
            Ok(r) => {
                session::remove(layout, &r.id)?;
                pruned += 1;
            }
            Err(id) => {
                session::remove(layout, &id)?;
                pruned += 1;
            }
        }
    }
    Ok((live, pruned))
}

/// Prunes dead sessions and puts every login in its one place before a command looks at the
/// store: an unfinished `profile use` is finished and copies made by an earlier
/// `--from-claude` are folded into the home profile. Returns the live sessions.
fn settle(layout: &Layout) -> Result<Vec<SessionRecord>> {
    home::finish_switch(layout)?;
    let (live, _) = prune(layout)?;
    home::migrate_copies(layout, &live)?;
    Ok(live)
}

/// The live sessions of one profile.
fn live_of<'a>(
    live: &'a [SessionRecord],
    profile: &str,
) -> impl Iterator<Item = &'a SessionRecord> {
    live.iter().filter(move |r| r.profile == profile)
}
