//! Tick keeps the runtime and the claude home in step: mirrors in fake mode, links in real mode.

use std::fs;

use serde_json::{Value, json};

use crate::both_modes;
use crate::support::*;

both_modes!(
    an_edit_in_the_runtime_reaches_the_claude_home,
    |mode: &str| {
        let f = Fixture::new();
        f.add_profile("work", Some("work"));
        let a = f.acquire("work", mode);
        let rel = "projects/-home-user-app/0b6c9a4e-1111-4c6e-9a53-2f0c1d7e8a01.jsonl";
        let mut text = fs::read_to_string(f.runtime("work").join(rel)).unwrap();
        text.push_str("{\"type\":\"user\",\"uuid\":\"a3\"}\n");
        fs::write(f.runtime("work").join(rel), &text).unwrap();
        let t = f.tick(&session_of(&a));
        if mode == "fake" {
            assert_eq!(t["copied_to_home"], json!(1));
        }
        assert_eq!(fs::read_to_string(f.claude().join(rel)).unwrap(), text);
        f.release(&session_of(&a));
        assert_eq!(fs::read_to_string(f.claude().join(rel)).unwrap(), text);
    }
);

both_modes!(
    a_file_added_to_the_claude_home_reaches_the_runtime,
    |mode: &str| {
        let f = Fixture::new();
        f.add_profile("work", Some("work"));
        let a = f.acquire("work", mode);
        fs::write(f.claude().join("commands/new.md"), "new command\n").unwrap();
        fs::write(f.claude().join("CLAUDE.md"), "be brief\n").unwrap();
        let t = f.tick(&session_of(&a));
        if mode == "fake" {
            assert_eq!(t["copied_to_runtime"], json!(2));
        } else {
            assert_eq!(t["linked"], json!(["CLAUDE.md"]));
        }
        assert_eq!(
            fs::read_to_string(f.runtime("work").join("commands/new.md")).unwrap(),
            "new command\n"
        );
        assert_eq!(
            fs::read_to_string(f.runtime("work").join("CLAUDE.md")).unwrap(),
            "be brief\n"
        );
        f.release(&session_of(&a));
    }
);

both_modes!(a_tick_with_nothing_changed_changes_nothing, |mode: &str| {
    let f = Fixture::new();
    f.add_profile("work", Some("work"));
    let a = f.acquire("work", mode);
    f.tick(&session_of(&a));
    let before = f.snapshot();
    let t = f.tick(&session_of(&a));
    for key in [
        "copied_to_home",
        "copied_to_runtime",
        "deleted_in_home",
        "deleted_in_runtime",
    ] {
        assert_eq!(t[key], json!(0), "{key}");
    }
    assert_eq!(t["adopted"], json!([]));
    assert_eq!(before, f.snapshot());
    f.release(&session_of(&a));
});

#[test]
fn fake_mode_carries_deletions_both_ways() {
    let f = Fixture::new();
    f.add_profile("work", Some("work"));
    let a = f.acquire("work", "fake");
    fs::remove_file(f.runtime("work").join("commands/review.md")).unwrap();
    fs::remove_file(
        f.claude()
            .join("todos/0b6c9a4e-1111-4c6e-9a53-2f0c1d7e8a01-agent.json"),
    )
    .unwrap();
    let t = f.tick(&session_of(&a));
    assert_eq!(t["deleted_in_home"], json!(1));
    assert_eq!(t["deleted_in_runtime"], json!(1));
    assert!(
        !f.claude().join("commands/review.md").exists(),
        "deleted in the session, deleted at home"
    );
    assert!(
        !f.runtime("work")
            .join("todos/0b6c9a4e-1111-4c6e-9a53-2f0c1d7e8a01-agent.json")
            .exists()
    );
    f.release(&session_of(&a));
    assert!(
        !f.claude().join("commands/review.md").exists(),
        "it does not come back"
    );
}

#[test]
fn fake_mode_keeps_both_versions_of_a_file_changed_on_both_sides() {
    let f = Fixture::new();
    f.add_profile("work", Some("work"));
    let a = f.acquire("work", "fake");
    fs::write(f.claude().join("commands/review.md"), "home version\n").unwrap();
    std::thread::sleep(std::time::Duration::from_millis(20));
    fs::write(
        f.runtime("work").join("commands/review.md"),
        "session version, longer\n",
    )
    .unwrap();
    let t = f.tick(&session_of(&a));
    let conflicts = t["conflicts"].as_array().unwrap();
    assert_eq!(conflicts.len(), 1, "{t}");
    let aside = f.claude().join(conflicts[0].as_str().unwrap());
    assert!(
        aside
            .file_name()
            .unwrap()
            .to_string_lossy()
            .contains("clauth-conflict")
    );
    assert_eq!(fs::read_to_string(&aside).unwrap(), "home version\n");
    assert_eq!(
        fs::read_to_string(f.claude().join("commands/review.md")).unwrap(),
        "session version, longer\n"
    );
    assert_eq!(
        fs::read_to_string(f.runtime("work").join("commands/review.md")).unwrap(),
        "session version, longer\n"
    );
    f.release(&session_of(&a));
    assert_eq!(fs::read_to_string(&aside).unwrap(), "home version\n");
}

/// A dangling link in the home is nothing there, to the walk and to the copy alike: a file
/// the session writes under its name reaches the home (in the link's place) and the tick goes
/// on, rather than waiting forever for a version nobody can read.
#[test]
fn fake_mode_carries_a_session_file_over_a_dangling_link_in_the_home() {
    let f = Fixture::new();
    f.add_profile("work", Some("work"));
    std::os::unix::fs::symlink(
        f.dir.path().join("nowhere.md"),
        f.claude().join("commands/notes.md"),
    )
    .unwrap();
    let a = f.acquire("work", "fake");
    fs::write(
        f.runtime("work").join("commands/notes.md"),
        "session notes\n",
    )
    .unwrap();
    let t = f.tick(&session_of(&a));
    assert_eq!(t["copied_to_home"], json!(1), "{t}");
    assert_eq!(t["conflicts"], json!([]), "{t}");
    assert_eq!(
        fs::read_to_string(f.claude().join("commands/notes.md")).unwrap(),
        "session notes\n"
    );
    f.release(&session_of(&a));
    assert_eq!(
        fs::read_to_string(f.claude().join("commands/notes.md")).unwrap(),
        "session notes\n"
    );
}

#[test]
fn real_mode_folds_a_file_claude_code_replaced_by_rename_back_into_the_home() {
    let f = Fixture::new();
    fs::write(f.claude().join("history.jsonl"), "{\"display\":\"one\"}\n").unwrap();
    f.add_profile("work", Some("work"));
    let a = f.acquire("work", "real");
    let link = f.runtime("work").join("history.jsonl");
    assert!(is_symlink(&link));
    write_by_rename(&link, b"{\"display\":\"one\"}\n{\"display\":\"two\"}\n");
    let t = f.tick(&session_of(&a));
    assert_eq!(t["adopted"], json!(["history.jsonl"]));
    assert!(is_symlink(&link), "relinked");
    assert_eq!(
        fs::read_to_string(f.claude().join("history.jsonl")).unwrap(),
        "{\"display\":\"one\"}\n{\"display\":\"two\"}\n"
    );
    f.release(&session_of(&a));
}

#[test]
fn real_mode_unlinks_an_entry_the_home_lost() {
    let f = Fixture::new();
    f.add_profile("work", Some("work"));
    let a = f.acquire("work", "real");
    fs::remove_dir_all(f.claude().join("commands")).unwrap();
    let t = f.tick(&session_of(&a));
    assert_eq!(t["unlinked"], json!(["commands"]));
    assert!(
        fs::symlink_metadata(f.runtime("work").join("commands")).is_err(),
        "no dangling link"
    );
    f.release(&session_of(&a));
}

both_modes!(
    claude_json_is_present_and_account_keys_stay_with_the_profile,
    |mode: &str| {
        let f = Fixture::new();
        f.add_profile("work", Some("work"));
        let a = f.acquire("work", mode);
        let rt_json = f.runtime("work").join(".claude.json");
        let doc: Value = serde_json::from_slice(&fs::read(&rt_json).unwrap()).unwrap();
        assert_eq!(
            doc["theme"],
            json!("dark"),
            "shared keys come from ~/.claude.json"
        );
        assert!(
            doc.get("oauthAccount").is_none(),
            "the home's account does not leak into a profile"
        );
        // The session logs in as its account and changes a shared preference.
        let mut doc = doc;
        doc["oauthAccount"] = json!({"emailAddress": "work@example.com"});
        doc["theme"] = json!("light");
        write_by_rename(
            &rt_json,
            serde_json::to_string_pretty(&doc).unwrap().as_bytes(),
        );
        let t = f.tick(&session_of(&a));
        assert_eq!(t["claude_json_saved"], json!(true));
        let home: Value = serde_json::from_slice(&fs::read(f.claude_json()).unwrap()).unwrap();
        assert_eq!(
            home["theme"],
            json!("light"),
            "shared keys reach ~/.claude.json"
        );
        assert_eq!(
            home["oauthAccount"]["emailAddress"],
            json!("home@example.com"),
            "account keys do not"
        );
        f.release(&session_of(&a));
        // The next acquire restores the profile's account.
        let b = f.acquire("work", mode);
        let doc: Value = serde_json::from_slice(&fs::read(&rt_json).unwrap()).unwrap();
        assert_eq!(
            doc["oauthAccount"]["emailAddress"],
            json!("work@example.com")
        );
        assert_eq!(doc["theme"], json!("light"));
        f.release(&session_of(&b));
    }
);

both_modes!(
    lock_files_and_document_temp_files_stay_in_their_runtime,
    |mode: &str| {
        let f = Fixture::new();
        f.add_profile("work", Some("work"));
        let a = f.acquire("work", mode);
        let rt = f.runtime("work");
        // What Claude Code leaves at the top of its config dir while it saves.
        fs::create_dir(rt.join(".claude.json.lock")).unwrap();
        fs::write(rt.join(".oauth_refresh.lock"), "").unwrap();
        fs::write(rt.join(".claude.json.tmp.4242.0123456789ab"), "{\"half\":").unwrap();
        fs::write(rt.join(".credentials.json.tmp.4242.0123456789ab"), "{").unwrap();
        let t = f.tick(&session_of(&a));
        assert_eq!(t["adopted"], json!([]), "{t}");
        assert_eq!(t["copied_to_home"], json!(0), "{t}");
        for name in [
            ".claude.json.lock",
            ".oauth_refresh.lock",
            ".claude.json.tmp.4242.0123456789ab",
            ".credentials.json.tmp.4242.0123456789ab",
        ] {
            assert!(
                !f.claude().join(name).exists(),
                "{name} reached the claude home"
            );
            assert!(
                fs::symlink_metadata(rt.join(name)).is_ok(),
                "{name} was taken from the runtime"
            );
        }
        // A lock in the claude home (a plain `claude` run) is not linked into runtimes either.
        fs::write(f.claude().join(".storage-write.lock"), "").unwrap();
        f.tick(&session_of(&a));
        assert!(fs::symlink_metadata(rt.join(".storage-write.lock")).is_err());
        f.release(&session_of(&a));
    }
);

both_modes!(
    backups_of_claude_json_belong_to_the_profile,
    |mode: &str| {
        let f = Fixture::new();
        f.add_profile("work", Some("work"));
        f.add_profile("personal", Some("personal"));
        let a = f.acquire("work", mode);
        let rt = f.runtime("work");
        fs::create_dir_all(rt.join("backups")).unwrap();
        fs::write(
            rt.join("backups/.claude.json.backup.1795520000000"),
            "{\"oauthAccount\":{\"emailAddress\":\"work@example.com\"}}",
        )
        .unwrap();
        f.tick(&session_of(&a));
        f.release(&session_of(&a));
        assert!(
            !f.claude()
                .join("backups/.claude.json.backup.1795520000000")
                .exists(),
            "not shared through the claude home"
        );
        let kept = f
            .store()
            .join("profiles/work/backups/.claude.json.backup.1795520000000");
        assert!(kept.exists(), "kept with the profile");
        let p = f.acquire("personal", mode);
        assert!(
            !f.runtime("personal")
                .join("backups/.claude.json.backup.1795520000000")
                .exists(),
            "not seen by another profile"
        );
        let b = f.acquire("work", mode);
        assert!(
            f.runtime("work")
                .join("backups/.claude.json.backup.1795520000000")
                .exists(),
            "back in the next session"
        );
        f.release(&session_of(&b));
        f.release(&session_of(&p));
        assert!(kept.exists());
    }
);

both_modes!(
    settings_changed_in_a_session_reach_the_home_without_the_profile_env,
    |mode: &str| {
        let f = Fixture::new();
        f.add_gateway_profile("gw");
        let a = f.acquire("gw", mode);
        let rt = f.runtime("gw").join("settings.json");
        let mut doc: Value = serde_json::from_slice(&fs::read(&rt).unwrap()).unwrap();
        // What /model and a permission prompt do: rewrite the whole file by rename.
        doc["model"] = json!("opus");
        doc["permissions"]["allow"] = json!(["Bash(ls:*)", "Bash(git status:*)"]);
        doc["env"]["SESSION_FLAG"] = json!("on");
        write_by_rename(&rt, serde_json::to_string_pretty(&doc).unwrap().as_bytes());
        let t = f.tick(&session_of(&a));
        assert_eq!(t["settings_saved"], json!(true));
        let home: Value =
            serde_json::from_slice(&fs::read(f.claude().join("settings.json")).unwrap()).unwrap();
        assert_eq!(home["model"], json!("opus"));
        assert_eq!(
            home["permissions"]["allow"],
            json!(["Bash(ls:*)", "Bash(git status:*)"])
        );
        assert_eq!(home["env"]["SESSION_FLAG"], json!("on"));
        assert_eq!(
            home["env"]["ANTHROPIC_BASE_URL"],
            json!("http://127.0.0.1:9"),
            "the profile's value did not leak"
        );
        assert!(
            home["env"].get("EXTRA").is_none(),
            "the profile's key did not leak"
        );
        // A change made in the home meanwhile reaches the session, under the profile's env.
        let mut home_doc = home.clone();
        home_doc["theme"] = json!("light");
        write_by_rename(
            &f.claude().join("settings.json"),
            serde_json::to_string_pretty(&home_doc).unwrap().as_bytes(),
        );
        f.tick(&session_of(&a));
        let doc: Value = serde_json::from_slice(&fs::read(&rt).unwrap()).unwrap();
        assert_eq!(doc["theme"], json!("light"));
        assert_eq!(doc["model"], json!("opus"));
        assert_eq!(
            doc["env"]["ANTHROPIC_BASE_URL"],
            json!("http://127.0.0.1:7777")
        );
        assert_eq!(doc["env"]["EXTRA"], json!("yes"));
        f.release(&session_of(&a));
    }
);

both_modes!(
    shared_claude_json_keys_reach_the_other_live_runtimes,
    |mode: &str| {
        let f = Fixture::new();
        f.add_profile("work", Some("work"));
        f.add_profile("personal", Some("personal"));
        let w = f.acquire("work", mode);
        let p = f.acquire("personal", mode);
        let wj = f.runtime("work").join(".claude.json");
        let mut doc: Value = serde_json::from_slice(&fs::read(&wj).unwrap()).unwrap();
        doc["mcpServers"] = json!({"notes": {"command": "notes-mcp"}});
        doc["userID"] = json!("work-device");
        write_by_rename(&wj, serde_json::to_string_pretty(&doc).unwrap().as_bytes());
        f.tick(&session_of(&w));
        f.tick(&session_of(&p));
        let pj: Value =
            serde_json::from_slice(&fs::read(f.runtime("personal").join(".claude.json")).unwrap())
                .unwrap();
        assert_eq!(
            pj["mcpServers"]["notes"]["command"],
            json!("notes-mcp"),
            "an MCP server added in one session is seen by all"
        );
        assert_ne!(
            pj.get("userID"),
            Some(&json!("work-device")),
            "an account key stays with its profile"
        );
        let home: Value = serde_json::from_slice(&fs::read(f.claude_json()).unwrap()).unwrap();
        assert_eq!(home["mcpServers"]["notes"]["command"], json!("notes-mcp"));
        assert_ne!(home["userID"], json!("work-device"));

        // A .claude.json that does not parse is never propagated, and loses nothing.
        let before_home = fs::read(f.claude_json()).unwrap();
        write_by_rename(&wj, b"{\"half\": ");
        let t = f.tick(&session_of(&w));
        assert_eq!(t["rejected_documents"], json!([".claude.json"]));
        assert_eq!(fs::read(f.claude_json()).unwrap(), before_home);
        assert_eq!(
            fs::read(&wj).unwrap(),
            b"{\"half\": ",
            "the session's file is left for Claude Code to repair"
        );
        f.release(&session_of(&w));
        f.release(&session_of(&p));
        assert_eq!(fs::read(f.claude_json()).unwrap(), before_home);
    }
);

#[test]
fn a_fake_mode_tick_reads_no_contents_when_size_and_time_say_nothing_changed() {
    let f = Fixture::new();
    f.add_profile("work", Some("work"));
    let a = f.acquire("work", "fake");
    // Rewrite a home file in place with other bytes of the same length, and put its
    // modification time back: only a tick that read contents could notice.
    let path = f.claude().join("commands/review.md");
    let before = fs::metadata(&path).unwrap();
    let same_length = "X".repeat(before.len() as usize);
    fs::write(&path, &same_length).unwrap();
    fs::File::options()
        .write(true)
        .open(&path)
        .unwrap()
        .set_modified(before.modified().unwrap())
        .unwrap();
    let t = f.tick(&session_of(&a));
    assert_eq!(t["copied_to_runtime"], json!(0), "{t}");
    assert_ne!(
        fs::read_to_string(f.runtime("work").join("commands/review.md")).unwrap(),
        same_length
    );
    f.release(&session_of(&a));
}

both_modes!(
    home_files_linked_from_a_dotfiles_folder_stay_links,
    |mode: &str| {
        let f = Fixture::new();
        let dotfiles = f.dir.path().join("dotfiles");
        fs::create_dir_all(&dotfiles).unwrap();
        fs::remove_file(f.claude().join("settings.json")).unwrap();
        fs::write(dotfiles.join("CLAUDE.md"), "be brief\n").unwrap();
        fs::copy(
            fixtures().join("home/.claude/settings.json"),
            dotfiles.join("settings.json"),
        )
        .unwrap();
        std::os::unix::fs::symlink(
            dotfiles.join("settings.json"),
            f.claude().join("settings.json"),
        )
        .unwrap();
        std::os::unix::fs::symlink(dotfiles.join("CLAUDE.md"), f.claude().join("CLAUDE.md"))
            .unwrap();
        let mode_before = file_mode(&dotfiles.join("settings.json"));
        f.add_profile("work", Some("work"));
        let a = f.acquire("work", mode);
        let rt = f.runtime("work");
        let mut doc: Value =
            serde_json::from_slice(&fs::read(rt.join("settings.json")).unwrap()).unwrap();
        doc["model"] = json!("opus");
        write_by_rename(
            &rt.join("settings.json"),
            serde_json::to_string_pretty(&doc).unwrap().as_bytes(),
        );
        write_by_rename(&rt.join("CLAUDE.md"), b"be very brief\n");
        f.tick(&session_of(&a));
        f.release(&session_of(&a));
        for name in ["settings.json", "CLAUDE.md"] {
            assert!(is_symlink(&f.claude().join(name)), "{name} is still a link");
        }
        assert_eq!(
            fs::read_to_string(dotfiles.join("CLAUDE.md")).unwrap(),
            "be very brief\n"
        );
        let home: Value =
            serde_json::from_slice(&fs::read(dotfiles.join("settings.json")).unwrap()).unwrap();
        assert_eq!(home["model"], json!("opus"));
        assert_eq!(
            file_mode(&dotfiles.join("settings.json")),
            mode_before,
            "the mode is the target's"
        );
    }
);

both_modes!(
    account_keys_a_session_writes_are_saved_while_the_home_document_does_not_parse,
    |mode: &str| {
        let f = Fixture::new();
        f.add_profile("work", Some("work"));
        let a = f.acquire("work", mode);
        fs::write(f.claude_json(), "{ \"theme\": \"dark\", oops").unwrap();
        edit_runtime_claude_json(&f, "work", |doc| {
            doc.insert(
                "oauthAccount".into(),
                json!({"accountUuid": "acct-after-login", "emailAddress": "new@example.com"}),
            );
        });
        let t = f.tick(&session_of(&a));
        assert!(
            t["rejected_documents"]
                .as_array()
                .is_some_and(|r| !r.is_empty()),
            "{t}"
        );
        let account: Value = serde_json::from_slice(
            &fs::read(f.store().join("profiles/work/account.json")).unwrap(),
        )
        .unwrap();
        assert_eq!(
            account["oauthAccount"]["emailAddress"], "new@example.com",
            "the profile's account keys do not wait for the home"
        );
        assert_eq!(
            fs::read_to_string(f.claude_json()).unwrap(),
            "{ \"theme\": \"dark\", oops",
            "the home document is left as it is"
        );
        f.release(&session_of(&a));
    }
);

both_modes!(
    shared_keys_a_session_writes_are_kept_in_the_profile_when_the_home_document_still_does_not_parse_at_release,
    |mode: &str| {
        let f = Fixture::new();
        f.add_profile("work", Some("work"));
        let a = f.acquire("work", mode);
        fs::write(f.claude_json(), "{ \"theme\": \"dark\", oops").unwrap();
        edit_runtime_claude_json(&f, "work", |doc| {
            doc.insert("theme".into(), json!("light"));
            doc.insert("mcpServers".into(), json!({"notes": {"command": "notes-mcp"}}));
        });
        f.tick(&session_of(&a));
        let r = f.release(&session_of(&a));
        assert_eq!(r["runtime_removed"], json!(true), "{r}");
        let kept = r["kept_documents"]
            .as_array()
            .unwrap_or_else(|| panic!("the release says what it kept: {r}"));
        assert_eq!(kept.len(), 1, "{r}");
        let path = std::path::PathBuf::from(kept[0].as_str().unwrap());
        assert_eq!(
            path.parent().unwrap(),
            f.store().join("profiles/work"),
            "kept in the profile: {r}"
        );
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        assert!(name.starts_with("claude.json.unmerged-"), "{name}");
        let saved: Value = serde_json::from_slice(&fs::read(&path).unwrap()).unwrap();
        assert_eq!(saved["theme"], "light");
        assert_eq!(saved["mcpServers"]["notes"]["command"], "notes-mcp");
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            assert_eq!(fs::metadata(&path).unwrap().permissions().mode() & 0o777, 0o600);
        }
        assert_eq!(
            fs::read_to_string(f.claude_json()).unwrap(),
            "{ \"theme\": \"dark\", oops",
            "the home document is left as it is"
        );
        assert!(!f.runtime("work").exists());

        // A session whose changes reach the home keeps nothing aside.
        fs::write(f.claude_json(), "{\n  \"theme\": \"dark\"\n}\n").unwrap();
        let b = f.acquire("work", mode);
        edit_runtime_claude_json(&f, "work", |doc| {
            doc.insert("theme".into(), json!("light"));
        });
        let r = f.release(&session_of(&b));
        assert!(r.get("kept_documents").is_none(), "{r}");
        let home: Value = serde_json::from_slice(&fs::read(f.claude_json()).unwrap()).unwrap();
        assert_eq!(home["theme"], "light");
        let aside = fs::read_dir(f.store().join("profiles/work"))
            .unwrap()
            .flatten()
            .filter(|e| e.file_name().to_string_lossy().contains(".unmerged-"))
            .count();
        assert_eq!(aside, 1, "only the first release kept a copy");
    }
);

/// Rewrites the runtime's `.claude.json` as Claude Code does, with `edit` applied.
fn edit_runtime_claude_json(
    f: &Fixture,
    profile: &str,
    edit: impl FnOnce(&mut serde_json::Map<String, Value>),
) {
    let path = f.runtime(profile).join(".claude.json");
    let mut doc: serde_json::Map<String, Value> =
        serde_json::from_slice(&fs::read(&path).unwrap()).unwrap();
    edit(&mut doc);
    fs::write(&path, serde_json::to_vec_pretty(&doc).unwrap()).unwrap();
}

both_modes!(
    a_runtime_copy_that_does_not_parse_at_release_is_kept_in_the_profile,
    |mode: &str| {
        let f = Fixture::new();
        f.add_profile("work", Some("work"));
        let a = f.acquire("work", mode);
        let home_before = fs::read(f.claude_json()).unwrap();
        // Claude Code cut short while writing its copy: what it held is not thrown away.
        let broken = "{ \"theme\": \"light\", \"mcpServers\": { \"notes\"";
        fs::write(f.runtime("work").join(".claude.json"), broken).unwrap();
        let t = f.tick(&session_of(&a));
        assert!(
            t["rejected_documents"]
                .as_array()
                .unwrap()
                .contains(&json!(".claude.json")),
            "{mode}: {t}"
        );
        f.tick(&session_of(&a));
        let r = f.release(&session_of(&a));
        let kept = r["kept_documents"]
            .as_array()
            .unwrap_or_else(|| panic!("{mode}: the release says what it kept: {r}"));
        assert_eq!(kept.len(), 1, "{r}");
        let path = std::path::PathBuf::from(kept[0].as_str().unwrap());
        assert_eq!(fs::read_to_string(&path).unwrap(), broken);
        assert_eq!(
            fs::read(f.claude_json()).unwrap(),
            home_before,
            "the home's document is left as it was"
        );
        assert!(!f.runtime("work").exists());
    }
);

both_modes!(
    a_release_whose_last_sync_meets_claude_code_s_lock_on_the_home_keeps_the_runtime,
    |mode: &str| {
        let f = Fixture::new();
        f.add_profile("work", Some("work"));
        let a = f.acquire("work", mode);
        edit_runtime_claude_json(&f, "work", |doc| {
            doc.insert("sessionKey".into(), json!("kept"));
        });
        // A plain claude holds its lock on ~/.claude.json for longer than the release tries.
        let lock = f.home().join(".claude.json.lock");
        fs::create_dir(&lock).unwrap();
        let r = f.request("release", json!({"session": session_of(&a)}));
        let error = r.err("lock_timeout")["error"].clone();
        assert_eq!(error["retryable"], json!(true), "{mode}: {error}");
        assert!(f.runtime("work").exists(), "{mode}: the runtime stays");
        let home: Value = serde_json::from_slice(&fs::read(f.claude_json()).unwrap()).unwrap();
        assert!(
            home.get("sessionKey").is_none(),
            "{mode}: nothing written under the lock"
        );
        // Once the lock is let go, the release goes through and the key reaches the home.
        fs::remove_dir(&lock).unwrap();
        let r = f.release(&session_of(&a));
        assert_eq!(r["runtime_removed"], json!(true), "{mode}: {r}");
        let home: Value = serde_json::from_slice(&fs::read(f.claude_json()).unwrap()).unwrap();
        assert_eq!(home["sessionKey"], json!("kept"), "{mode}");
    }
);
