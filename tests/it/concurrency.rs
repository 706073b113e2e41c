//! Several processes at once on one store.

use std::collections::BTreeSet;
use std::thread;

use serde_json::json;

use crate::support::*;

#[test]
fn concurrent_acquires_and_releases_from_many_processes_stay_consistent() {
    for mode in MODES {
        let f = Fixture::new();
        f.add_profile("work", Some("work"));
        f.add_profile("personal", Some("personal"));
        let sessions: Vec<String> = thread::scope(|s| {
            let handles: Vec<_> = (0..6)
                .map(|i| {
                    let f = &f;
                    s.spawn(move || {
                        let profile = if i % 2 == 0 { "work" } else { "personal" };
                        let mut ids = Vec::new();
                        for _ in 0..3 {
                            let a = f.acquire(profile, mode);
                            f.tick(&session_of(&a));
                            ids.push(a["session"].as_str().unwrap().to_owned());
                        }
                        // Release all but one, so each profile keeps live sessions.
                        for id in &ids[1..] {
                            f.release(&json!(id));
                        }
                        ids[0].clone()
                    })
                })
                .collect();
            handles.into_iter().map(|h| h.join().unwrap()).collect()
        });
        let unique: BTreeSet<_> = sessions.iter().collect();
        assert_eq!(unique.len(), 6, "every acquire got its own session");
        let status = f.status();
        for p in status["profiles"].as_array().unwrap() {
            assert_eq!(p["sessions"].as_array().unwrap().len(), 3, "{mode}: {p}");
            assert_eq!(p["runtime"]["link_mode"], json!(mode));
        }
        for id in &sessions {
            f.release(&json!(id));
        }
        assert!(
            std::fs::read_dir(f.store().join("runtimes"))
                .unwrap()
                .next()
                .is_none(),
            "{mode}: every runtime is gone"
        );
        assert!(
            std::fs::read_dir(f.store().join("sessions"))
                .unwrap()
                .next()
                .is_none(),
            "{mode}: every record is gone"
        );
    }
}
