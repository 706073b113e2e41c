//! Replays every transcript in protocol/conformance/ against the binary (format in its README).

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};

use serde_json::Value;

use crate::support::*;
use crate::usage::{Api, Reply};

fn conformance_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("protocol/conformance")
}

/// Replaces `$NAME` in every string of `v`.
fn substitute(v: &Value, vars: &BTreeMap<String, String>) -> Value {
    match v {
        Value::String(s) => Value::String(substitute_str(s, vars)),
        Value::Array(a) => Value::Array(a.iter().map(|x| substitute(x, vars)).collect()),
        Value::Object(o) => Value::Object(
            o.iter()
                .map(|(k, x)| (substitute_str(k, vars), substitute(x, vars)))
                .collect(),
        ),
        other => other.clone(),
    }
}

fn substitute_str(s: &str, vars: &BTreeMap<String, String>) -> String {
    // Longest names first, so $CFG2 is not read as $CFG followed by "2".
    let mut names: Vec<&String> = vars.keys().collect();
    names.sort_by_key(|n| std::cmp::Reverse(n.len()));
    let mut out = s.to_owned();
    for name in names {
        out = out.replace(&format!("${name}"), &vars[name]);
    }
    assert!(!out.contains('$'), "unbound variable in {s:?}");
    out
}

/// The value at a dotted path (`profiles.0.name`).
fn at<'a>(v: &'a Value, path: &str) -> Option<&'a Value> {
    path.split('.')
        .try_fold(v, |v, part| match part.parse::<usize>() {
            Ok(i) if v.is_array() => v.get(i),
            _ => v.get(part),
        })
}

fn run_case(name: &str, case: &Value, mode: Option<&str>) {
    let mut f = Fixture::new();
    // A case with `usage_api` runs against the stand-in for the usage endpoint; any other case
    // has the harness's proxy, which refuses every connection.
    let api = case
        .get("usage_api")
        .and_then(Value::as_object)
        .map(|replies| {
            let api = Api::start();
            api.serve(&mut f);
            for (fixture, reply) in replies {
                api.answer(fixture, Reply::from_case(reply));
            }
            api
        });
    let mut vars = BTreeMap::new();
    vars.insert("HOME".to_owned(), f.home().to_string_lossy().into_owned());
    vars.insert("STORE".to_owned(), f.store().to_string_lossy().into_owned());
    vars.insert(
        "CLAUDE".to_owned(),
        f.claude().to_string_lossy().into_owned(),
    );
    if let Some(mode) = mode {
        vars.insert("MODE".to_owned(), mode.to_owned());
    }
    for (profile, creds) in case["profiles"].as_object().expect("profiles") {
        f.add_profile(profile, creds.as_str());
    }
    let ctx = |i: usize| format!("{name} ({}) step {i}", mode.unwrap_or("once"));
    for (i, step) in case["steps"].as_array().expect("steps").iter().enumerate() {
        // Disk checks are read after the step's `save`, so they may use what it saved.
        let disk = step["disk"].clone();
        let mut step = substitute(
            &Value::Object(
                step.as_object()
                    .unwrap()
                    .iter()
                    .filter(|(k, _)| *k != "disk")
                    .map(|(k, v)| (k.clone(), v.clone()))
                    .collect(),
            ),
            &vars,
        );
        if let Some(action) = step.get("do").and_then(Value::as_str) {
            let path = PathBuf::from(step["path"].as_str().expect("path"));
            match action {
                "write_by_rename" => write_by_rename(
                    &path,
                    &fs::read(fixtures().join(step["fixture"].as_str().unwrap())).unwrap(),
                ),
                "write" => {
                    fs::create_dir_all(path.parent().unwrap()).unwrap();
                    fs::write(&path, step["text"].as_str().unwrap()).unwrap();
                }
                other => panic!("{}: unknown action {other}", ctx(i)),
            }
            continue;
        }
        let verb = step["verb"]
            .as_str()
            .unwrap_or_else(|| panic!("{}: a step needs verb or do", ctx(i)));
        let before = f.snapshot();
        let body = match &step["request"] {
            Value::String(raw) => raw.clone().into_bytes(),
            other => other.to_string().into_bytes(),
        };
        let resp = f.raw(verb, &body);
        let expect = &step["expect"];
        let json = if expect["ok"] == Value::Bool(true) {
            resp.ok()
        } else {
            resp.err(
                expect["code"]
                    .as_str()
                    .unwrap_or_else(|| panic!("{}: an error step names its code", ctx(i))),
            )
        };
        if let Some(fields) = expect.get("fields").and_then(Value::as_object) {
            for (path, want) in fields {
                assert_eq!(at(&json, path), Some(want), "{}: {path} in {json}", ctx(i));
            }
        }
        for path in expect
            .get("present")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            let path = path.as_str().unwrap();
            assert!(
                at(&json, path).is_some(),
                "{}: {path} missing in {json}",
                ctx(i)
            );
        }
        for (var, path) in step
            .get("save")
            .and_then(Value::as_object)
            .into_iter()
            .flatten()
        {
            let value = at(&json, path.as_str().unwrap())
                .unwrap_or_else(|| panic!("{}: nothing at {path}", ctx(i)));
            vars.insert(
                var.clone(),
                value
                    .as_str()
                    .map(str::to_owned)
                    .unwrap_or_else(|| value.to_string()),
            );
        }
        step["disk"] = disk;
        let disk = &step["disk"];
        for path in disk
            .get("exists")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            let path = substitute_str(path.as_str().unwrap(), &vars);
            assert!(Path::new(&path).exists(), "{}: {path} should exist", ctx(i));
        }
        for path in disk
            .get("absent")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            let path = substitute_str(path.as_str().unwrap(), &vars);
            assert!(
                fs::symlink_metadata(&path).is_err(),
                "{}: {path} should not exist",
                ctx(i)
            );
        }
        for (path, fixture) in disk
            .get("same_as_fixture")
            .and_then(Value::as_object)
            .into_iter()
            .flatten()
        {
            let path = substitute_str(path, &vars);
            let want = fs::read(fixtures().join(fixture.as_str().unwrap())).unwrap();
            assert_eq!(
                fs::read(&path).ok(),
                Some(want),
                "{}: {path} should hold {fixture}",
                ctx(i)
            );
        }
        if disk.get("unchanged") == Some(&Value::Bool(true)) {
            assert_eq!(before, f.snapshot(), "{}: files changed", ctx(i));
        }
        if let Some(n) = step.get("usage_requests").and_then(Value::as_u64) {
            assert_eq!(
                api.as_ref().map_or(0, Api::total) as u64,
                n,
                "{}: requests the usage endpoint answered",
                ctx(i)
            );
        }
    }
    if let Some(api) = api {
        api.check();
    }
}

#[test]
fn every_conformance_transcript_passes() {
    let mut ran = 0;
    let mut files: Vec<PathBuf> = fs::read_dir(conformance_dir())
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "json"))
        .collect();
    files.sort();
    for file in &files {
        let case: Value = serde_json::from_slice(&fs::read(file).unwrap()).unwrap();
        let name = file.file_name().unwrap().to_string_lossy().into_owned();
        match case.get("modes").and_then(Value::as_array) {
            Some(modes) => {
                for mode in modes {
                    run_case(&name, &case, mode.as_str());
                    ran += 1;
                }
            }
            None => {
                run_case(&name, &case, None);
                ran += 1;
            }
        }
    }
    assert!(files.len() >= 9, "conformance cases are missing");
    eprintln!("conformance: {ran} runs of {} cases", files.len());
}
