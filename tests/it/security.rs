//! Modes of store files, and no secret in any output.

use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use serde_json::json;

use crate::both_modes;
use crate::support::*;

fn walk(dir: &Path, out: &mut Vec<std::path::PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let p = entry.unwrap().path();
        out.push(p.clone());
        if std::fs::symlink_metadata(&p).unwrap().is_dir() {
            walk(&p, out);
        }
    }
}

both_modes!(
    store_files_are_private_even_under_a_permissive_umask,
    |link_mode: &str| {
        let f = Fixture::new();
        let creds = f.dir.path().join("in.json");
        std::fs::write(&creds, fixture_credentials("work")).unwrap();
        let bin = bin_path();
        let script = format!(
            "umask 000; {bin} profile add work --credentials {creds} && echo '{{\"profile\":\"work\",\"link_mode\":\"{link_mode}\"}}' | {bin} acquire",
            bin = bin.display(),
            creds = creds.display()
        );
        let mut sh = std::process::Command::new("sh");
        sh.arg("-c").arg(&script);
        let out = Bin::of(&f).apply_env(&mut sh).output().unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert_no_secret("stdout", &out.stdout);
        let mut paths = vec![f.store()];
        walk(&f.store(), &mut paths);
        for p in paths {
            let meta = std::fs::symlink_metadata(&p).unwrap();
            if meta.file_type().is_symlink()
                || p.starts_with(f.runtime("work"))
                    && !p.ends_with(".credentials.json")
                    && p != f.runtime("work")
            {
                continue;
            }
            let bits = meta.permissions().mode() & 0o777;
            if meta.is_dir() {
                assert_eq!(bits, 0o700, "{}", p.display());
            } else {
                assert_eq!(bits, 0o600, "{}", p.display());
            }
        }
    }
);

both_modes!(no_command_prints_a_token, |link_mode: &str| {
    // Every call in this suite scans stdout and stderr; this test drives every verb once more
    // with the most secret-laden state: refreshed, rejected and older credentials.
    let f = Fixture::new();
    f.add_profile("work", Some("work"));
    let a = f.acquire("work", link_mode);
    write_by_rename(
        &f.runtime("work").join(".credentials.json"),
        &fixture_credentials("no-access-token"),
    );
    f.tick(&session_of(&a));
    write_by_rename(
        &f.runtime("work").join(".credentials.json"),
        &fixture_credentials("work-refreshed"),
    );
    f.tick(&session_of(&a));
    f.status();
    f.run(&["profile", "show", "work"], b"");
    f.run(&["profile", "show", "work", "--json"], b"");
    f.run(&["profile", "list", "--json"], b"");
    let bad = f.request(
        "acquire",
        json!({"profile": fixture_credentials_str("work")}),
    );
    assert_eq!(bad.json["ok"], json!(false));
    f.release(&session_of(&a));
});

fn fixture_credentials_str(name: &str) -> String {
    String::from_utf8(fixture_credentials(name)).unwrap()
}
