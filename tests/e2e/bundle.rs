//! What the installed Claude Code's bundle says about `.claude.json`, checked against the
//! helper's list of per-profile keys.

/// The keys Claude Code's logout resets, read from the bundle's bytes: the one expression
/// `return e.oauthAccount=void 0,e.k1=void 0,…,e}` (any minified name for `e`).
fn logout_keys(bundle: &[u8]) -> Vec<Vec<String>> {
    let needle = b".oauthAccount=void 0,";
    let mut found = Vec::new();
    for pos in memchr::memmem::find_iter(bundle, needle) {
        // Back over the identifier to `return `.
        let start = bundle[..pos]
            .iter()
            .rposition(|b| !(b.is_ascii_alphanumeric() || *b == b'_' || *b == b'$'))
            .map_or(0, |p| p + 1);
        let ident = &bundle[start..pos];
        if ident.is_empty() || !bundle[..start].ends_with(b"return ") {
            continue;
        }
        let mut keys = vec!["oauthAccount".to_owned()];
        let mut at = pos + needle.len();
        let closed = loop {
            let rest = &bundle[at..];
            if rest.starts_with(ident) && rest[ident.len()..].starts_with(b"}") {
                break true;
            }
            if !(rest.starts_with(ident) && rest[ident.len()..].starts_with(b".")) {
                break false;
            }
            let key_at = at + ident.len() + 1;
            let Some(len) = bundle[key_at..]
                .iter()
                .position(|b| !(b.is_ascii_alphanumeric() || *b == b'_' || *b == b'$'))
            else {
                break false;
            };
            let after = key_at + len;
            if !bundle[after..].starts_with(b"=void 0,") {
                break false;
            }
            keys.push(String::from_utf8_lossy(&bundle[key_at..after]).into_owned());
            at = after + b"=void 0,".len();
        };
        if closed {
            found.push(keys);
        }
    }
    found
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    memchr::memmem::find(hay, needle)
}

/// Every key Claude Code's logout resets is one the helper keeps per profile: a key shared
/// between profiles would carry one account's state into another's sessions.
#[test]
#[ignore = "needs Claude Code from the npm registry; .ci/run installs it and runs this with --include-ignored"]
fn every_key_claude_code_s_logout_resets_is_kept_per_profile() {
    let path = super::claude_binary();
    let bundle = std::fs::read(&path).unwrap();
    let found = logout_keys(&bundle);
    assert_eq!(
        found.len(),
        1,
        "the logout's reset expression is found exactly once in {}: {found:?}",
        path.display()
    );
    let keys = &found[0];
    assert!(keys.len() >= 9, "{keys:?}");
    // `/logout` also resets these two of the onboarding block.
    let mut wanted: Vec<&str> = keys.iter().map(String::as_str).collect();
    if find(&bundle, b".subscriptionNoticeCount=0,").is_some() {
        wanted.extend(["subscriptionNoticeCount", "hasAvailableSubscription"]);
    }
    let shared: Vec<&&str> = wanted
        .iter()
        .filter(|k| !clauth_helper::runtime::ACCOUNT_KEYS.contains(k))
        .collect();
    assert!(
        shared.is_empty(),
        "Claude Code's logout resets keys the helper shares between profiles: {shared:?}; add them to ACCOUNT_KEYS (src/runtime/account.rs)"
    );
    eprintln!(
        "e2e/bundle: logout resets {} keys, all per profile: {}",
        wanted.len(),
        wanted.join(", ")
    );
}

#[test]
fn the_reader_finds_the_logout_expression_in_both_shapes() {
    let old =
        b"x;return i.oauthAccount=void 0,i.modelAccessCache=void 0,i.clientDataCache=void 0,i})";
    assert_eq!(
        logout_keys(old),
        vec![vec!["oauthAccount", "modelAccessCache", "clientDataCache"]]
    );
    let new = b"function coo(e){return e.oauthAccount=void 0,e.firstWeek=void 0,e}";
    assert_eq!(logout_keys(new), vec![vec!["oauthAccount", "firstWeek"]]);
    // An assignment elsewhere is not the logout's.
    assert!(logout_keys(b"a.oauthAccount=void 0,b.x=1").is_empty());
}
