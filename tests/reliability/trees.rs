//! Trees as they are: names that are not UTF-8, folders deeper than any walk limit used to
//! allow, Claude Code's lock and temp files, and a home write racing a deletion the session
//! made.

use std::ffi::OsStr;
use std::fs;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::both_modes;
use crate::support::*;

fn raw(bytes: &[u8]) -> &OsStr {
    OsStr::from_bytes(bytes)
}

/// Every path under `dir` (not following links) whose last name satisfies `pick`.
fn find(dir: &Path, pick: &dyn Fn(&str) -> bool) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let Ok(entries) = fs::read_dir(dir) else {
        return out;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        if pick(&entry.file_name().to_string_lossy()) {
            out.push(path.clone());
        }
        if entry.file_type().is_ok_and(|t| t.is_dir()) {
            out.extend(find(&path, pick));
        }
    }
    out
}

both_modes!(
    names_that_are_not_utf8_are_mirrored_both_ways_and_never_deleted,
    |mode: &str| {
        let f = Fixture::new();
        f.add_profile("work", Some("work"));
        let home = f.claude();
        // In the home before the session: one at the top, one in a folder.
        fs::write(home.join(raw(b"caf\xe9.md")), "latin-1 name, home\n").unwrap();
        fs::write(
            home.join("projects").join(raw(b"n\xffte")),
            "nested, home\n",
        )
        .unwrap();
        let a = f.acquire("work", mode);
        let cfg = f.runtime("work");
        assert_eq!(
            fs::read_to_string(cfg.join(raw(b"caf\xe9.md"))).unwrap(),
            "latin-1 name, home\n",
            "the session sees the home's file"
        );
        assert_eq!(
            fs::read_to_string(cfg.join("projects").join(raw(b"n\xffte"))).unwrap(),
            "nested, home\n"
        );
        // The session writes its own, at the top and nested.
        fs::write(cfg.join(raw(b"s\xfe.txt")), "top, session\n").unwrap();
        fs::create_dir(cfg.join(raw(b"dir\x80"))).unwrap();
        fs::write(
            cfg.join(raw(b"dir\x80")).join(raw(b"in\x81")),
            "deep, session\n",
        )
        .unwrap();
        fs::write(
            cfg.join("projects").join(raw(b"m\xfd")),
            "nested, session\n",
        )
        .unwrap();
        let t = f.tick(&session_of(&a));
        assert!(
            t["skipped"].as_array().is_none_or(|s| s.is_empty()),
            "nothing skipped: {t}"
        );
        f.tick(&session_of(&a));
        f.release(&session_of(&a));
        for (path, text) in [
            (home.join(raw(b"caf\xe9.md")), "latin-1 name, home\n"),
            (
                home.join("projects").join(raw(b"n\xffte")),
                "nested, home\n",
            ),
            (home.join(raw(b"s\xfe.txt")), "top, session\n"),
            (
                home.join(raw(b"dir\x80")).join(raw(b"in\x81")),
                "deep, session\n",
            ),
            (
                home.join("projects").join(raw(b"m\xfd")),
                "nested, session\n",
            ),
        ] {
            assert_eq!(
                fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path:?}: {e}")),
                text,
                "{path:?}"
            );
        }
        assert!(
            find(&home, &|n| n.contains("clauth-conflict")).is_empty(),
            "no conflict copies"
        );
        eprintln!(
            "trees/non-UTF-8 names ({mode}): 2 home and 3 session files with such names kept"
        );
    }
);

both_modes!(
    a_tree_deeper_than_64_levels_is_mirrored_and_a_loop_in_it_reported,
    |mode: &str| {
        const DEPTH: usize = 100;
        let f = Fixture::new();
        f.add_profile("work", Some("work"));
        let deep = |root: &Path| -> PathBuf {
            let mut p = root.join("projects");
            for i in 0..DEPTH {
                p.push(format!("d{i}"));
            }
            p
        };
        fs::create_dir_all(deep(&f.claude())).unwrap();
        fs::write(deep(&f.claude()).join("home.md"), "from the home\n").unwrap();
        // A link to an ancestor, deep down: a loop the walk must see as one.
        std::os::unix::fs::symlink("../../..", deep(&f.claude()).join("up")).unwrap();
        let a = f.acquire("work", mode);
        let cfg = f.runtime("work");
        assert_eq!(
            fs::read_to_string(deep(&cfg).join("home.md")).unwrap(),
            "from the home\n"
        );
        fs::write(deep(&cfg).join("session.md"), "from the session\n").unwrap();
        let t = f.tick(&session_of(&a));
        let r = f.release(&session_of(&a));
        assert_eq!(
            fs::read_to_string(deep(&f.claude()).join("session.md")).unwrap(),
            "from the session\n"
        );
        assert!(deep(&f.claude()).join("home.md").exists());
        assert!(fs::symlink_metadata(deep(&f.claude()).join("up")).is_ok());
        if mode == "fake" {
            let skipped: Vec<&Value> = [&t, &r]
                .into_iter()
                .flat_map(|v| v["skipped"].as_array().into_iter().flatten())
                .collect();
            assert!(
                skipped
                    .iter()
                    .any(|s| s.as_str().is_some_and(|s| s.ends_with("/up"))),
                "the loop is reported: {t} {r}"
            );
        }
        eprintln!("trees/depth ({mode}): {DEPTH} levels mirrored both ways, the loop reported");
    }
);

both_modes!(
    claude_code_s_lock_and_temp_files_stay_in_their_runtime_and_go_with_it,
    |mode: &str| {
        let f = Fixture::new();
        f.add_profile("work", Some("work"));
        let a = f.acquire("work", mode);
        let cfg = f.runtime("work");
        // What Claude Code 2.1.332 leaves while it refreshes and writes: lock directories,
        // the owner record and its temp, a lock beside the config directory, and nested locks
        // and temps in the plugins folder.
        fs::create_dir(cfg.join(".oauth_refresh.lock")).unwrap();
        fs::write(cfg.join(".oauth_refresh.lock.owner"), r#"{"pid":1}"#).unwrap();
        fs::write(cfg.join(".oauth_refresh.lock.owner.tmp.0a1b2c3d"), "{}").unwrap();
        fs::create_dir(cfg.join(".storage-write.lock")).unwrap();
        fs::create_dir(cfg.join(".hybrid_oauth_refresh.lock")).unwrap();
        fs::write(
            cfg.join(".gcp_auth_refresh-0123456789abcdef.holder.json"),
            "{}",
        )
        .unwrap();
        fs::create_dir(cfg.join("settings.json.lock")).unwrap();
        fs::create_dir(cfg.parent().unwrap().join("config.lock")).unwrap();
        let plugins = cfg.join("plugins");
        fs::create_dir_all(plugins.join("marketplaces/m")).unwrap();
        if mode == "fake" {
            // In real mode plugins/ is the home's own folder, where these are Claude Code's
            // locks on the shared files, taken and removed by it.
            fs::create_dir(plugins.join("installed_plugins.json.lock")).unwrap();
            fs::write(plugins.join("installed_plugins.json.tmp.1a2b3c4d"), "{}").unwrap();
            fs::write(plugins.join("known.json.tmp.4242.0123456789ab"), "{}").unwrap();
        }
        // A plugin's own lock file is the user's, and travels like any file.
        fs::write(
            plugins.join("marketplaces/m/yarn.lock"),
            "# yarn lockfile\n",
        )
        .unwrap();
        let t = f.tick(&session_of(&a));
        let adopted = t["adopted"].as_array().cloned().unwrap_or_default();
        assert!(
            adopted
                .iter()
                .all(|n| !n.as_str().unwrap().contains(".lock")),
            "{t}"
        );
        f.tick(&session_of(&a));
        f.release(&session_of(&a));
        let home = f.claude();
        let lockish = |n: &str| {
            n.ends_with(".lock") && n != "yarn.lock"
                || n.contains(".lock.")
                || n.contains(".tmp.")
                || n.contains("_auth_refresh-")
                || n.contains("clauth-conflict")
        };
        let left = find(&home, &lockish);
        assert!(left.is_empty(), "left in ~/.claude: {left:?}");
        let runtimes = f.store().join("runtimes");
        let left = find(&runtimes, &|_| true);
        assert!(left.is_empty(), "left in runtimes/: {left:?}");
        assert_eq!(
            fs::read_to_string(home.join("plugins/marketplaces/m/yarn.lock")).unwrap(),
            "# yarn lockfile\n"
        );
        eprintln!("trees/lock family ({mode}): 11 lock and temp entries kept out of ~/.claude");
    }
);

/// A file the session deleted, written in the home while the tick's walk goes on, is not
/// deleted: the tick sees the write before it deletes and the next tick carries it across.
#[test]
fn a_home_write_during_the_walk_saves_a_file_the_session_deleted_in_fake_mode() {
    let f = Fixture::new();
    f.add_profile("work", Some("work"));
    let home = f.claude();
    fs::write(home.join("aaa.md"), "first version\n").unwrap();
    let a = f.acquire("work", "fake");
    let cfg = f.runtime("work");
    fs::remove_file(cfg.join("aaa.md")).unwrap();
    // A large new file, copied to the home after aaa.md was looked at and before deletions
    // are applied: while its copy is on its way, the home writes aaa.md.
    let big = vec![7u8; 256 << 20];
    fs::write(cfg.join("zzz.bin"), &big).unwrap();
    drop(big);
    let mut tick = Bin::of(&f)
        .command(&["tick"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    {
        use std::io::Write;
        let mut stdin = tick.stdin.take().unwrap();
        stdin
            .write_all(
                serde_json::json!({"protocol": 1, "session": session_of(&a)})
                    .to_string()
                    .as_bytes(),
            )
            .unwrap();
    }
    let deadline = Instant::now() + Duration::from_secs(60);
    let copying = || {
        fs::read_dir(&home).unwrap().flatten().any(|e| {
            let n = e.file_name().to_string_lossy().into_owned();
            n.starts_with(".clauth-tmp-") || n == "zzz.bin"
        })
    };
    while !copying() {
        assert!(Instant::now() < deadline, "the copy never started");
        std::thread::sleep(Duration::from_micros(200));
    }
    fs::write(home.join("aaa.md"), "written during the walk\n").unwrap();
    let out = tick.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    assert_eq!(
        fs::read_to_string(home.join("aaa.md")).unwrap(),
        "written during the walk\n",
        "the home's write survived"
    );
    f.tick(&session_of(&a));
    assert_eq!(
        fs::read_to_string(cfg.join("aaa.md")).unwrap(),
        "written during the walk\n",
        "and reached the session"
    );
    f.release(&session_of(&a));
    assert!(home.join("aaa.md").exists());
    eprintln!("trees/deletion race: a home write during the walk kept, then mirrored");
}

both_modes!(
    documents_with_lone_surrogates_as_node_writes_them_are_merged_and_written_back_as_they_were,
    |mode: &str| {
        let f = Fixture::new();
        f.add_profile("work", Some("work"));
        // `JSON.stringify` of a prompt cut in the middle of an emoji, as Claude Code saves it.
        let home_doc = "{\n  \"numStartups\": 12,\n  \"mcpServers\": {\n    \"docs\": {\n      \"command\": \"docs-mcp\"\n    }\n  },\n  \"projects\": {\n    \"/home/user/app\": {\n      \"allowedTools\": [],\n      \"hasTrustDialogAccepted\": true,\n      \"lastPrompt\": \"fix the \\ud83d\"\n    }\n  }\n}\n";
        fs::write(f.claude_json(), home_doc).unwrap();
        let a = f.acquire("work", mode);
        let runtime_doc = f.runtime("work").join(".claude.json");
        let text = fs::read_to_string(&runtime_doc).unwrap();
        assert!(text.contains("\"fix the \\ud83d\""), "{text}");
        assert!(text.contains("\"hasTrustDialogAccepted\": true"), "{text}");
        // The session adds a project of its own, with a cut emoji of its own.
        let mut doc: serde_json::Map<String, Value> =
            serde_json::from_str(&text.replace("\\ud83d", "CUT")).unwrap();
        doc["projects"]["/home/user/new"] =
            serde_json::json!({"hasTrustDialogAccepted": true, "lastPrompt": "LOW"});
        let written = serde_json::to_string_pretty(&doc)
            .unwrap()
            .replace("CUT", "\\ud83d")
            .replace("LOW", "\\ude00 tail");
        fs::write(&runtime_doc, written).unwrap();
        let t = f.tick(&session_of(&a));
        assert!(
            t["rejected_documents"]
                .as_array()
                .is_none_or(|r| r.is_empty()),
            "{t}"
        );
        f.release(&session_of(&a));
        let home = fs::read_to_string(f.claude_json()).unwrap();
        assert!(
            home.contains("\"lastPrompt\": \"fix the \\ud83d\""),
            "{home}"
        );
        assert!(home.contains("\"lastPrompt\": \"\\ude00 tail\""), "{home}");
        assert!(home.contains("\"/home/user/new\""), "{home}");
        assert!(
            home.contains("\"docs-mcp\""),
            "the MCP server is kept: {home}"
        );
        assert!(home.contains("\"hasTrustDialogAccepted\": true"), "{home}");
        eprintln!("trees/lone surrogates ({mode}): home and session escapes kept byte for byte");
    }
);

both_modes!(
    two_homes_sharing_one_store_never_trade_entries,
    |mode: &str| {
        let mut f = Fixture::new();
        fs::write(f.claude().join("CLAUDE.md"), "home A's instructions\n").unwrap();
        f.add_profile("work", Some("work"));
        let a = f.acquire("work", mode);
        // Another home on the same store: its own ~/.claude, its own files.
        let other = f.dir.path().join("other-home");
        fs::create_dir_all(other.join(".claude/projects")).unwrap();
        fs::write(other.join(".claude/CLAUDE.md"), "home B's instructions\n").unwrap();
        fs::write(other.join(".claude.json"), "{\n  \"theme\": \"light\"\n}\n").unwrap();
        let other_before = listing(&other);
        let before = f.snapshot();
        f.set_env("HOME", &other.to_string_lossy());
        // The session writes a file; ticks and release come from a process with the other HOME.
        fs::write(
            f.runtime("work").join("from-session.md"),
            "written in A's session\n",
        )
        .unwrap();
        for _ in 0..2 {
            let t = f.tick(&session_of(&a));
            assert!(
                t["conflicts"].as_array().is_none_or(|c| c.is_empty()),
                "{mode}: {t}"
            );
        }
        // An acquire under the other HOME is refused, not handed a runtime of home A.
        let refused = f.request(
            "acquire",
            serde_json::json!({"profile": "work", "link_mode": mode}),
        );
        assert_eq!(refused.error_code(), Some("home_mismatch"), "{mode}");
        f.release(&session_of(&a));
        assert_eq!(listing(&other), other_before, "{mode}: home B is as it was");
        let home_a = f.dir.path().join("home/.claude");
        assert_eq!(
            fs::read_to_string(home_a.join("from-session.md")).unwrap(),
            "written in A's session\n",
            "{mode}: the session's file went to its own home"
        );
        assert_eq!(
            fs::read_to_string(home_a.join("CLAUDE.md")).unwrap(),
            "home A's instructions\n"
        );
        let unchanged = |snap: &std::collections::BTreeMap<String, String>| {
            snap.iter()
                .filter(|(k, _)| k.starts_with("home/.claude/") && !k.contains("from-session"))
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect::<Vec<_>>()
        };
        assert_eq!(
            unchanged(&f.snapshot()),
            unchanged(&before),
            "{mode}: home A kept"
        );
        eprintln!("trees/two homes ({mode}): ticks and release from home B wrote only to home A");
    }
);
