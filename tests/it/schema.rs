//! The JSON Schemas under protocol/schema/ are derived from the Rust types and kept current;
//! every example in PROTOCOL.md validates against them (the suite's responses are validated in
//! `support`).

use std::fs;
use std::path::PathBuf;

use serde_json::Value;

use crate::support::*;

fn schema_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("protocol/schema")
}

#[test]
fn committed_schemas_match_the_rust_types() {
    let update = std::env::var_os("UPDATE_SCHEMAS").is_some();
    let mut stale = Vec::new();
    let generated = clauth_helper::protocol::schema::schemas();
    for (name, schema) in &generated {
        let path = schema_dir().join(format!("{name}.schema.json"));
        let text = format!("{}\n", serde_json::to_string_pretty(schema).unwrap());
        if update {
            fs::write(&path, &text).unwrap();
        } else if fs::read_to_string(&path).ok().as_deref() != Some(text.as_str()) {
            stale.push(name.to_string());
        }
    }
    let committed = fs::read_dir(schema_dir()).unwrap().count();
    assert!(
        stale.is_empty() && committed == generated.len(),
        "protocol/schema/ is out of date for {stale:?} ({committed} files, {} schemas); run `UPDATE_SCHEMAS=1 cargo test --test it schema` and commit the result",
        generated.len()
    );
}

/// Every response, event and error example in PROTOCOL.md validates against the schemas.
#[test]
fn every_example_in_protocol_md_validates() {
    let doc =
        fs::read_to_string(PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("protocol/PROTOCOL.md"))
            .unwrap();
    let mut checked = 0;
    let mut in_block = false;
    let mut pending: Option<(String, String)> = None; // (verb, response text so far)
    let flush = |pending: &mut Option<(String, String)>, checked: &mut usize| {
        if let Some((verb, text)) = pending.take() {
            let v: Value = serde_json::from_str(&text)
                .unwrap_or_else(|e| panic!("example for {verb} is not JSON ({e}): {text}"));
            validate(&format!("{verb}.response"), &v);
            *checked += 1;
        }
    };
    for line in doc.lines() {
        if line.starts_with("```") {
            flush(&mut pending, &mut checked);
            in_block = !in_block;
            continue;
        }
        if !in_block {
            continue;
        }
        let trimmed = line.trim_start();
        if let Some(rest) = trimmed.strip_prefix("$ ") {
            flush(&mut pending, &mut checked);
            if let Some(pos) = rest.find("| clauth-helper ") {
                let verb = rest[pos + 16..]
                    .split_whitespace()
                    .next()
                    .unwrap_or("")
                    .to_owned();
                pending = Some((verb, String::new()));
            }
        } else if let Some(rest) = trimmed.strip_prefix("< ") {
            let v: Value = serde_json::from_str(rest)
                .unwrap_or_else(|e| panic!("serve line is not JSON ({e}): {rest}"));
            if v.get("event").is_some() {
                validate("serve.event", &v);
            } else {
                validate_any_response(&v);
            }
            checked += 1;
        } else if let Some(rest) = trimmed.strip_prefix("> ") {
            if let Ok(v) = serde_json::from_str::<Value>(rest)
                && v.get("verb").and_then(Value::as_str).is_some_and(|verb| {
                    ["acquire", "tick", "release", "status", "capabilities"].contains(&verb)
                })
            {
                validate("serve.request", &v);
                checked += 1;
            }
        } else if trimmed.starts_with('{') && pending.is_none() {
            let v: Value = serde_json::from_str(trimmed)
                .unwrap_or_else(|e| panic!("example is not JSON ({e}): {trimmed}"));
            if v.get("ok") == Some(&Value::Bool(false)) {
                validate("error", &v);
                checked += 1;
            }
        } else if let Some((_, text)) = pending.as_mut()
            && !trimmed.starts_with('(')
        {
            text.push_str(trimmed);
        }
    }
    assert!(
        checked >= 15,
        "only {checked} examples were found in PROTOCOL.md"
    );
}
