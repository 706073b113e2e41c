//! Usage for the verbs: logins are read under the state lock, and the usage endpoint is asked
//! after it is let go, so a slow network never holds up another clauth-helper.

use std::collections::BTreeSet;

use anyhow::Result;

use super::{live_of, settle};
use crate::error::{CodedError, ErrorCode};
use crate::layout::Layout;
use crate::lock::StateLock;
use crate::logins;
use crate::profile;
use crate::protocol::{Pick, Picked, ProfileName, UsageReport};
use crate::session::SessionRecord;
use crate::usage::{self, Login, Net, headroom, pick};

/// What the usage of `names` is worked out from: each login where it lives, the profile's env
/// and its live sessions. The caller holds the state lock.
pub(super) fn logins_of(
    layout: &Layout,
    names: &[ProfileName],
    live: &[SessionRecord],
) -> Result<Vec<Login>> {
    let home = logins::home_profile(layout)?;
    names
        .iter()
        .map(|name| {
            let credentials = match home.as_ref() == Some(name) {
                true => logins::read_home_login(layout)?,
                false => profile::read_credentials(layout, name)?,
            };
            Ok(Login {
                name: name.clone(),
                credentials,
                env: profile::load_config(layout, name)?.env,
                sessions: live_of(live, name).count(),
            })
        })
        .collect()
}

/// The usage of `names` (profiles that no longer exist are left out), for serve's watch.
pub fn usage_reports(
    layout: &Layout,
    names: &[ProfileName],
) -> Result<Vec<(ProfileName, UsageReport)>> {
    let logins = {
        let _lock = StateLock::acquire(layout)?;
        let names: Vec<ProfileName> = names
            .iter()
            .filter(|n| profile::exists(layout, n))
            .cloned()
            .collect();
        logins_of(layout, &names, &[])?
    };
    let reports = usage::reports(layout, &Net::from_env(), &logins);
    Ok(logins.into_iter().map(|l| l.name).zip(reports).collect())
}

/// `pick`: the profile to acquire, and what was known of it. Every profile named in `among`
/// must exist.
pub(super) fn pick_profile(layout: &Layout, request: &Pick) -> Result<(ProfileName, Picked)> {
    let logins = {
        let _lock = StateLock::acquire(layout)?;
        let names: Vec<ProfileName> = match &request.among {
            Some(among) => {
                for name in among {
                    profile::require(layout, name)?;
                }
                among
                    .iter()
                    .cloned()
                    .collect::<BTreeSet<_>>()
                    .into_iter()
                    .collect()
            }
            None => profile::list(layout)?,
        };
        let live = settle(layout)?;
        logins_of(layout, &names, &live)?
    };
    let reports = usage::reports(layout, &Net::from_env(), &logins);
    let candidates: Vec<pick::Candidate> = logins
        .iter()
        .zip(&reports)
        .map(|(login, report)| pick::Candidate {
            name: &login.name,
            sessions: login.sessions,
            report,
        })
        .collect();
    match pick::choose(&candidates, request.min_headroom) {
        Ok(i) => {
            let report = reports[i].clone();
            Ok((
                logins[i].name.clone(),
                Picked {
                    headroom: report.usage.as_ref().map(headroom),
                    report,
                },
            ))
        }
        Err(none) => Err(anyhow::Error::new(
            CodedError::new(ErrorCode::NoHeadroom, none.message)
                .with_resets_at(none.resets_at.map(usage::time::format_rfc3339)),
        )),
    }
}
