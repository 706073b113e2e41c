//! Refreshed tokens are saved; invalid, partial and older ones never replace valid ones.

use std::fs;

use serde_json::json;

use crate::both_modes;
use crate::support::*;

both_modes!(
    a_refresh_written_by_rename_is_saved_by_tick,
    |mode: &str| {
        let f = Fixture::new();
        f.add_profile("work", Some("work"));
        let a = f.acquire("work", mode);
        let cred = f.runtime("work").join(".credentials.json");
        write_by_rename(&cred, &fixture_credentials("work-refreshed"));
        assert!(!is_symlink(&cred));
        let t = f.tick(&session_of(&a));
        assert_eq!(t["credentials_saved"], json!(true));
        assert_eq!(
            fs::read(f.canonical("work")).unwrap(),
            fixture_credentials("work-refreshed"),
            "saved byte for byte"
        );
        assert_eq!(file_mode(&f.canonical("work")), 0o600);
        if mode == "real" {
            assert!(is_symlink(&cred), "the symlink is put back");
        }
        assert_eq!(
            fs::read(&cred).unwrap(),
            fixture_credentials("work-refreshed")
        );
        // Nothing new: the next tick saves nothing.
        assert_eq!(f.tick(&session_of(&a))["credentials_saved"], json!(false));
        let status = f.status();
        assert_eq!(
            status["profiles"][0]["credentials"]["expires_at"],
            json!(1893459600000i64)
        );
        f.release(&session_of(&a));
    }
);

both_modes!(
    a_refresh_not_yet_ticked_is_saved_by_release,
    |mode: &str| {
        let f = Fixture::new();
        f.add_profile("work", Some("work"));
        let a = f.acquire("work", mode);
        write_by_rename(
            &f.runtime("work").join(".credentials.json"),
            &fixture_credentials("work-refreshed"),
        );
        let r = f.release(&session_of(&a));
        assert_eq!(r["credentials_saved"], json!(true));
        assert_eq!(
            fs::read(f.canonical("work")).unwrap(),
            fixture_credentials("work-refreshed")
        );
    }
);

both_modes!(
    invalid_and_partial_credentials_are_never_saved,
    |mode: &str| {
        for bad in ["truncated", "no-access-token", "no-oauth"] {
            let f = Fixture::new();
            f.add_profile("work", Some("work"));
            let a = f.acquire("work", mode);
            write_by_rename(
                &f.runtime("work").join(".credentials.json"),
                &fixture_credentials(bad),
            );
            let t = f.tick(&session_of(&a));
            assert_eq!(t["credentials_saved"], json!(false), "{bad}");
            assert!(
                t["credentials_rejected"].is_string(),
                "{bad}: the tick says why"
            );
            assert_eq!(
                fs::read(f.canonical("work")).unwrap(),
                fixture_credentials("work"),
                "{bad}"
            );
            f.release(&session_of(&a));
            assert_eq!(
                fs::read(f.canonical("work")).unwrap(),
                fixture_credentials("work"),
                "{bad} after release"
            );
        }
    }
);

both_modes!(
    a_pair_the_session_wrote_is_saved_whatever_its_expiry,
    |mode: &str| {
        let f = Fixture::new();
        f.add_profile("work", Some("work"));
        let a = f.acquire("work", mode);
        let cred = f.runtime("work").join(".credentials.json");
        // Another login (or a clock set right) gives an earlier expiry: it is still the newest
        // state of the profile's login, since the session wrote it.
        write_by_rename(&cred, &fixture_credentials("work-older"));
        let t = f.tick(&session_of(&a));
        assert_eq!(t["credentials_saved"], json!(true), "{t}");
        assert_eq!(
            fs::read(f.canonical("work")).unwrap(),
            fixture_credentials("work-older")
        );
        // The pair it replaced is kept aside in the profile, private.
        let kept = f.kept_aside("work", "replaced");
        assert_eq!(kept.len(), 1, "{kept:?}");
        assert_eq!(fs::read(&kept[0]).unwrap(), fixture_credentials("work"));
        assert_eq!(file_mode(&kept[0]), 0o600);
        f.release(&session_of(&a));
        assert_eq!(
            fs::read(f.canonical("work")).unwrap(),
            fixture_credentials("work-older")
        );
    }
);

both_modes!(a_stale_pair_written_back_is_not_saved, |mode: &str| {
    let f = Fixture::new();
    f.add_profile("work", Some("work"));
    let a = f.acquire("work", mode);
    let cred = f.runtime("work").join(".credentials.json");
    write_by_rename(&cred, &fixture_credentials("work-refreshed"));
    assert_eq!(f.tick(&session_of(&a))["credentials_saved"], json!(true));
    // A copy of the pair the refresh replaced comes back (a backup restored, an old process):
    // its refresh token is spent, so the profile keeps its current login and the session is
    // handed it again.
    write_by_rename(&cred, &fixture_credentials("work"));
    let t = f.tick(&session_of(&a));
    assert_eq!(t["credentials_saved"], json!(false), "{t}");
    assert!(t["credentials_rejected"].is_string(), "{t}");
    assert_eq!(
        fs::read(f.canonical("work")).unwrap(),
        fixture_credentials("work-refreshed")
    );
    assert_eq!(
        fs::read(&cred).unwrap(),
        fixture_credentials("work-refreshed")
    );
    f.release(&session_of(&a));
    assert_eq!(
        fs::read(f.canonical("work")).unwrap(),
        fixture_credentials("work-refreshed")
    );
});

both_modes!(
    a_login_inside_a_session_of_a_profile_without_credentials_is_saved,
    |mode: &str| {
        let f = Fixture::new();
        f.add_profile("fresh", None);
        let a = f.acquire("fresh", mode);
        assert_eq!(
            f.status()["profiles"][0]["credentials"]["present"],
            json!(false)
        );
        let cred = f.runtime("fresh").join(".credentials.json");
        write_by_rename(&cred, &fixture_credentials("personal"));
        assert_eq!(f.tick(&session_of(&a))["credentials_saved"], json!(true));
        assert_eq!(
            fs::read(f.canonical("fresh")).unwrap(),
            fixture_credentials("personal")
        );
        assert_eq!(file_mode(&f.canonical("fresh")), 0o600);
        let status = f.status();
        assert_eq!(
            status["profiles"][0]["credentials"],
            json!({"present": true, "expires_at": 1893456000000i64, "subscription_type": "max"})
        );
        f.release(&session_of(&a));
    }
);

both_modes!(a_refresh_in_place_is_saved_too, |mode: &str| {
    // Some writers truncate and rewrite instead of renaming; in fake mode the copy is a regular
    // file either way, in real mode the write goes through the link into the canonical file.
    let f = Fixture::new();
    f.add_profile("work", Some("work"));
    let a = f.acquire("work", mode);
    fs::write(
        f.runtime("work").join(".credentials.json"),
        fixture_credentials("work-refreshed"),
    )
    .unwrap();
    f.tick(&session_of(&a));
    assert_eq!(
        fs::read(f.canonical("work")).unwrap(),
        fixture_credentials("work-refreshed")
    );
    f.release(&session_of(&a));
});
