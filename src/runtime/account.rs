//! The account-bound keys of `.claude.json`: which they are, and the profile's copy of them
//! (`profiles/<name>/account.json`).

use anyhow::Result;
use serde_json::{Map, Value};

use super::documents::{read_keys, read_object};
use crate::fsx;
use crate::layout::Layout;

/// Keys of `.claude.json` that belong to the account, so they stay with the profile: never in
/// `~/.claude.json` or another profile's runtime. Derived from Claude Code's bundles, 2.1.197 and
/// 2.1.332 (`docs/claude-code-facts.md`, section 3), in three parts:
///
/// 1. every key Claude Code's own logout resets (the function that ends in
///    `return e.oauthAccount=void 0,e.….=void 0,…,e}`, plus `primaryApiKey`, and
///    `subscriptionNoticeCount`, `hasAvailableSubscription` and `customApiKeyResponses` that
///    `/logout` resets): they describe the signed-in account. `tests/e2e` reads the installed
///    Claude Code's bundle and fails when its logout resets a key missing here;
/// 2. caches keyed by account or organisation, or evaluated for them, that logout leaves
///    (GrowthBook features under both names, grove, passes, extra usage, model defaults);
/// 3. the device ids (`userID`, `machineID`), random per config directory, kept per profile so
///    that two accounts are not linked by one id.
///
/// Keys that neither bundle names any more stay listed at the end: a `~/.claude.json` written
/// by an earlier version may still hold them.
///
/// `knownAccounts` (2.1.332: account id to e-mail address and organisation names, for every
/// account that signed in) is shared, not listed: it labels which account a resumed transcript
/// belonged to, transcripts (`projects/`) are shared between profiles, its entries hold no
/// credential, and logout itself keeps it.
pub const ACCOUNT_KEYS: &[&str] = &[
    // 1. Reset by logout (2.1.332; the 2.1.197 set is a subset).
    "oauthAccount",
    "connectorFileSendsAllowedV1",
    "managedSettingsNoticeSeenOrg",
    "trainingConsentSettledAt",
    "firstWeek",
    "additionalModelOptionsCache",
    "additionalModelOptionsAnsweredAt",
    "additionalModelCostsCache",
    "modelAccessCache",
    "orgModelDefaultCache",
    "cachedArtifactRoster",
    "artifactRosterDenied",
    "lastSeenOrgDefaultUpdatedAt",
    "clientDataCache",
    "clientDataCacheSlots",
    "autoCompactWindowsCache",
    "cachedUsageUtilization",
    "metricsStatusCache",
    "metricsStatusCacheByPrincipal",
    "githubWebConnectionStatusCache",
    "unusedLimitResetStatusCache",
    "promoCreditCheck",
    "startupPrefetchedAt",
    "primaryApiKey",
    "customApiKeyResponses",
    "subscriptionNoticeCount",
    "hasAvailableSubscription",
    // 2. Caches for the account or its organisation that logout leaves.
    "cachedGrowthBookFeatures",
    "cachedFeatureFlags",
    "cachedGrowthBookFeaturesAt",
    "cachedExperimentFeatures",
    "cachedDynamicConfigs",
    "cachedExtraUsageDisabledReason",
    "claudeCodeFirstTokenDate",
    "groveConfigCache",
    "passesEligibilityCache",
    "passesLastSeenRemaining",
    "passesUpsellSeenCount",
    "hasVisitedPasses",
    "penguinModeOrgEnabled",
    "fableOverageConsentV2",
    "fotwEligibilityCache",
    "fotwClaimedFeatures",
    "fotwUpsellFulfilled",
    "subscriptionUpsellShownCount",
    "bridgeOauthDeadExpiresAt",
    "bridgeOauthDeadFailCount",
    "hasAcknowledgedCostThreshold",
    // 3. Device ids.
    "userID",
    "machineID",
    // Named by neither 2.1.197 nor 2.1.332; written by earlier versions.
    "cachedStatsigGates",
    "hasAvailableMaxSubscription",
    "s1mAccessCache",
    "s1mNonSubscriberAccessCache",
    "fallbackAvailableWarningThreshold",
    "recommendedSubscription",
    "hasOpusPlanDefault",
];

/// Copies the account keys of `~/.claude.json` into a profile (for `profile add --from-claude`).
/// A home document that does not parse gives nothing.
pub fn import_account(layout: &Layout, profile: &str) -> Result<()> {
    let Ok(Some(account)) = read_keys(&layout.claude_json, ACCOUNT_KEYS) else {
        return Ok(());
    };
    if account.is_empty() {
        return Ok(());
    }
    save_account(layout, profile, &account)
}

pub fn load_account(layout: &Layout, profile: &str) -> Result<Map<String, Value>> {
    Ok(fsx::read_optional(&layout.profile_account(profile))?
        .and_then(|b| crate::nodejson::from_slice::<Map<String, Value>>(&b).ok())
        .unwrap_or_default())
}

pub fn save_account(layout: &Layout, profile: &str, account: &Map<String, Value>) -> Result<()> {
    let bytes = crate::nodejson::to_vec_pretty(account)?;
    fsx::atomic_write(&layout.profile_account(profile), &bytes, fsx::PRIVATE_FILE)
}

/// Removes a profile's account keys (its login moved into the claude home).
pub fn remove_account(layout: &Layout, profile: &str) -> Result<()> {
    fsx::remove_entry(&layout.profile_account(profile))
}

/// The account keys of `~/.claude.json` (none when it is missing or does not parse).
pub fn home_account(layout: &Layout) -> Result<Map<String, Value>> {
    Ok(
        read_keys(&fsx::resolve_link(&layout.claude_json), ACCOUNT_KEYS)
            .ok()
            .flatten()
            .unwrap_or_default(),
    )
}

/// Puts `account` in place of the account keys of `~/.claude.json`, keeping every other key.
/// The caller holds Claude Code's lock on the file. A document that does not parse is not
/// written over.
pub fn set_home_account(layout: &Layout, account: &Map<String, Value>) -> Result<()> {
    let path = fsx::resolve_link(&layout.claude_json);
    let mut doc = match read_object(&path)? {
        Some(doc) => doc,
        None if account.is_empty() => return Ok(()),
        None => Map::new(),
    };
    for key in ACCOUNT_KEYS {
        doc.shift_remove(*key);
    }
    doc.extend(account.clone());
    let mut bytes = crate::nodejson::to_vec_pretty(&doc)?;
    bytes.push(b'\n');
    let mode = std::fs::metadata(&path)
        .ok()
        .and_then(|m| crate::platform::mode_of(&m))
        .unwrap_or(fsx::PRIVATE_FILE);
    fsx::atomic_write(&path, &bytes, mode)
}

/// `oauthAccount.accountUuid` of an account-keys map.
pub fn account_uuid(account: &Map<String, Value>) -> Option<&str> {
    account.get("oauthAccount")?.get("accountUuid")?.as_str()
}
