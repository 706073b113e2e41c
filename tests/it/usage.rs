//! Usage and limits per profile (`status` with `"usage": true`), the cache that keeps requests
//! rare, `pick` and serve's `usage` event, against a stand-in for `api.anthropic.com`: the
//! loopback proxy of `support::tls_proxy` plays that host with a CA made by the test, which the
//! binary trusts through `SSL_CERT_FILE` and reaches through `HTTPS_PROXY`. The stand-in answers
//! per access token, counts requests and can answer 429. Every other host is refused, and every
//! test checks that no token went anywhere else or into any output.

use std::collections::BTreeMap;
use std::fs;
use std::sync::{Arc, Mutex};

use serde_json::{Value, json};

use crate::both_modes;
use crate::support::tls_proxy::{HttpRequest, HttpResponse, TlsProxy};
use crate::support::*;

const HOST: &str = "api.anthropic.com";
const SOON: &str = "2030-01-01T01:00:00Z";
const LATER: &str = "2030-01-02T00:00:00Z";

/// What the stand-in answers for one access token.
#[derive(Debug, Clone)]
pub enum Reply {
    Usage(Value),
    Status(u16, Vec<(String, String)>),
}

impl Reply {
    /// A reply as a conformance case writes it: `{"status", "headers"?, "body"?}`.
    pub fn from_case(v: &Value) -> Reply {
        let status = v["status"].as_u64().expect("a reply's status") as u16;
        match status {
            200 => Reply::Usage(v["body"].clone()),
            _ => Reply::Status(
                status,
                v["headers"]
                    .as_object()
                    .into_iter()
                    .flatten()
                    .map(|(k, v)| (k.clone(), v.as_str().unwrap_or_default().to_owned()))
                    .collect(),
            ),
        }
    }
}

/// The stand-in for the usage endpoint.
pub struct Api {
    proxy: TlsProxy,
    replies: Arc<Mutex<BTreeMap<String, Reply>>>,
}

/// The access token of `fixtures/credentials/<fixture>.json`, or of the home's login for
/// `"home"`.
fn access_token(fixture: &str) -> String {
    let bytes = match fixture {
        "home" => fs::read(fixtures().join("home/.claude/.credentials.json")).unwrap(),
        other => fixture_credentials(other),
    };
    let doc: Value = serde_json::from_slice(&bytes).unwrap();
    doc["claudeAiOauth"]["accessToken"]
        .as_str()
        .unwrap()
        .to_owned()
}

/// A usage answer with a 5-hour and a 7-day window.
fn usage(five: f64, five_resets: &str, seven: f64, seven_resets: &str) -> Reply {
    Reply::Usage(json!({
        "five_hour": {"utilization": five, "resets_at": five_resets},
        "seven_day": {"utilization": seven, "resets_at": seven_resets},
        "seven_day_oauth_apps": null,
        "seven_day_opus": {"utilization": 0.0, "resets_at": null},
        "extra_usage": {"is_enabled": false, "monthly_limit": null, "used_credits": null, "utilization": null}
    }))
}

impl Api {
    pub fn start() -> Api {
        let replies: Arc<Mutex<BTreeMap<String, Reply>>> = Arc::default();
        let known = replies.clone();
        let proxy = TlsProxy::builder()
            .host(HOST, move |req: &HttpRequest| {
                let well_formed = req.method == "GET"
                    && req.route() == "/api/oauth/usage"
                    && req.header("anthropic-beta") == Some("oauth-2025-04-20");
                if !well_formed {
                    return HttpResponse::json(400, &json!({"error": "not the usage request"}));
                }
                let token = req
                    .header("authorization")
                    .and_then(|v| v.strip_prefix("Bearer "))
                    .unwrap_or("");
                match known.lock().unwrap().get(token).cloned() {
                    Some(Reply::Usage(body)) => HttpResponse::json(200, &body),
                    Some(Reply::Status(status, headers)) => HttpResponse {
                        status,
                        headers,
                        body: b"{\"error\":{\"type\":\"rate_limit_error\"}}".to_vec(),
                    },
                    None => HttpResponse::json(401, &json!({"error": "unknown token"})),
                }
            })
            .start();
        Api { proxy, replies }
    }

    /// From now on, the login of `fixture` is answered `reply`.
    pub fn answer(&self, fixture: &str, reply: Reply) {
        self.replies
            .lock()
            .unwrap()
            .insert(access_token(fixture), reply);
    }

    /// Makes every command of `f` reach the stand-in.
    pub fn serve(&self, f: &mut Fixture) {
        f.set_env("HTTPS_PROXY", &self.proxy.url());
        f.set_env("SSL_CERT_FILE", &self.proxy.ca_file().to_string_lossy());
    }

    /// How many requests the login of `fixture` made.
    fn asked(&self, fixture: &str) -> usize {
        let bearer = format!("Bearer {}", access_token(fixture));
        self.proxy
            .requests_to(HOST)
            .iter()
            .filter(|r| r.header("authorization") == Some(bearer.as_str()))
            .count()
    }

    pub fn total(&self) -> usize {
        self.proxy.requests_to(HOST).len()
    }

    /// Nothing was refused (no other host was tried), every request is the usage request with
    /// a user agent that names the program, and no token other than the fixtures' travelled.
    pub fn check(&self) {
        assert!(
            self.proxy.refused().is_empty(),
            "{:?}",
            self.proxy.refused()
        );
        for record in self.proxy.records() {
            let r = &record.request;
            assert_eq!(r.host, HOST, "{r:?}");
            assert!(
                r.header("user-agent")
                    .is_some_and(|ua| ua.starts_with("clauth-helper/")),
                "{r:?}"
            );
            let token = r
                .header("authorization")
                .and_then(|v| v.strip_prefix("Bearer "))
                .unwrap_or("");
            assert!(
                all_fixture_tokens().iter().any(|t| t == token),
                "an unknown token was sent"
            );
        }
    }
}

/// The fixture's store as text, without the credentials (which hold tokens by design).
fn store_without_credentials(f: &Fixture) -> String {
    f.snapshot()
        .into_iter()
        .filter(|(path, _)| path.starts_with("store/") && !path.contains("credentials"))
        .map(|(path, text)| format!("{path}\n{text}\n"))
        .collect()
}

fn status_usage(f: &Fixture) -> Value {
    let body = f.request("status", json!({"usage": true})).ok();
    validate("status.response", &body);
    body
}

fn profile<'a>(status: &'a Value, name: &str) -> &'a Value {
    status["profiles"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["name"] == json!(name))
        .unwrap_or_else(|| panic!("no profile {name} in {status}"))
}

/// Moves every time in the profile's usage cache `ms` into the past, as if that long had gone
/// by.
fn age_cache(f: &Fixture, name: &str, ms: i64) {
    let path = f.store().join("profiles").join(name).join("usage.json");
    let mut record: Value = serde_json::from_slice(&fs::read(&path).unwrap()).unwrap();
    for key in ["asked_at", "fetched_at", "quiet_until"] {
        if let Some(t) = record[key].as_i64() {
            record[key] = json!(t - ms);
        }
    }
    fs::write(&path, record.to_string()).unwrap();
}

fn add_credentials(f: &Fixture, name: &str, doc: &Value) {
    let out = f.run(
        &["profile", "add", name, "--credentials", "-"],
        doc.to_string().as_bytes(),
    );
    assert!(out.status.success(), "{out:?}");
}

/// The work fixture's login with other tokens and `expiresAt`.
fn variant(tag: &str, expires_at: i64, scopes: &[&str]) -> Value {
    let mut doc: Value = serde_json::from_slice(&fixture_credentials("work")).unwrap();
    let oauth = &mut doc["claudeAiOauth"];
    oauth["accessToken"] = json!(format!("sk-ant-oat01-{tag}ACCESS-AAAAAAAAAAAAAAAAAAAAAAAA"));
    oauth["refreshToken"] = json!(format!("sk-ant-ort01-{tag}REFRESH-AAAAAAAAAAAAAAAAAAAAAAA"));
    oauth["expiresAt"] = json!(expires_at);
    oauth["scopes"] = json!(scopes);
    doc
}

#[test]
fn status_with_usage_gives_each_profile_its_windows_or_why_it_has_none() {
    let api = Api::start();
    let mut f = Fixture::new();
    api.serve(&mut f);
    f.add_profile("work", Some("work"));
    f.add_profile("personal", Some("personal"));
    f.add_profile("fresh", None);
    f.add_gateway_profile("gateway");
    let out = f.run(&["profile", "add", "me", "--from-claude"], b"");
    assert!(out.status.success(), "{out:?}");
    add_credentials(
        &f,
        "expired",
        &variant("EXPIRED", 1000, &["user:inference", "user:profile"]),
    );
    add_credentials(
        &f,
        "inference",
        &variant("INFERONLY", 1893456000000, &["user:inference"]),
    );
    let out = f.run(
        &[
            "profile",
            "add",
            "keyed",
            "--credentials",
            "-",
            "--env",
            "ANTHROPIC_API_KEY=x",
        ],
        &fixture_credentials("work-refreshed"),
    );
    assert!(out.status.success(), "{out:?}");
    api.answer("work", usage(30.0, SOON, 50.0, LATER));
    api.answer("personal", usage(80.5, SOON, 10.0, LATER));
    api.answer("home", usage(5.0, SOON, 5.0, LATER));

    // A plain status never touches the network and says nothing of usage.
    let plain = f.status();
    assert_eq!(api.total(), 0);
    for p in plain["profiles"].as_array().unwrap() {
        assert!(
            p.get("usage").is_none() && p.get("usage_error").is_none(),
            "{p}"
        );
    }

    let status = status_usage(&f);
    let work = profile(&status, "work");
    assert_eq!(work["usage_error"], Value::Null);
    let u = &work["usage"];
    assert_eq!(
        u["five_hour"],
        json!({"utilization": 30.0, "resets_at": SOON})
    );
    assert_eq!(
        u["seven_day"],
        json!({"utilization": 50.0, "resets_at": LATER})
    );
    assert_eq!(
        u["seven_day_opus"],
        json!({"utilization": 0.0, "resets_at": null})
    );
    assert_eq!(u["extra_usage"]["is_enabled"], json!(false));
    assert_eq!(u["stale"], json!(false));
    assert!(u["fetched_at"].as_i64().unwrap() > 1_700_000_000_000);
    assert!(u.get("seven_day_oauth_apps").is_none(), "{u}");
    assert_eq!(
        profile(&status, "personal")["usage"]["five_hour"]["utilization"],
        json!(80.5)
    );
    assert_eq!(
        profile(&status, "me")["usage"]["five_hour"]["utilization"],
        json!(5.0),
        "the home profile's login is read where it lives"
    );
    for (name, code) in [
        ("fresh", "no_login"),
        ("gateway", "gateway"),
        ("keyed", "api_key"),
        ("expired", "token_expired"),
        ("inference", "no_profile_scope"),
    ] {
        let p = profile(&status, name);
        assert_eq!(p["usage"], Value::Null, "{name}");
        assert_eq!(p["usage_error"], json!(code), "{name}");
    }
    // One request per login that has usage, each with its own token, and none for the others.
    assert_eq!(
        (api.asked("work"), api.asked("personal"), api.asked("home")),
        (1, 1, 1)
    );
    assert_eq!(api.total(), 3);

    // One profile: only its request.
    age_cache(&f, "work", 120_000);
    let one = f
        .request("status", json!({"profile": "work", "usage": true}))
        .ok();
    assert_eq!(one["profiles"].as_array().unwrap().len(), 1);
    assert_eq!(api.total(), 4);

    // The cache is private and holds no token.
    let cache = f.store().join("profiles/work/usage.json");
    assert_eq!(file_mode(&cache), 0o600);
    assert_no_secret(
        "the store without credentials",
        store_without_credentials(&f).as_bytes(),
    );
    api.check();
}

#[test]
fn a_second_status_within_a_minute_asks_nothing_and_an_older_answer_is_asked_again() {
    let api = Api::start();
    let mut f = Fixture::new();
    api.serve(&mut f);
    f.add_profile("work", Some("work"));
    api.answer("work", usage(30.0, SOON, 50.0, LATER));
    let first = status_usage(&f);
    let second = status_usage(&f);
    assert_eq!(api.asked("work"), 1);
    assert_eq!(
        profile(&first, "work")["usage"],
        profile(&second, "work")["usage"]
    );

    // Several processes at once still ask once.
    age_cache(&f, "work", 120_000);
    api.answer("work", usage(40.0, SOON, 55.0, LATER));
    let bin = Bin::of(&f);
    let children: Vec<_> = (0..4)
        .map(|_| bin.spawn(&["status"], br#"{"usage": true}"#))
        .collect();
    for child in children {
        let out = child.wait_with_output().unwrap();
        let r = bin.decode("status", b"", &out.stdout, &out.stderr, out.status.code());
        let body = r.ok();
        assert_eq!(
            profile(&body, "work")["usage"]["five_hour"]["utilization"],
            json!(40.0),
            "{body}"
        );
    }
    assert_eq!(api.asked("work"), 2);

    // A refreshed login is a new token: asked at once.
    let out = f.run(
        &["profile", "add", "work", "--replace", "--credentials", "-"],
        &fixture_credentials("work-refreshed"),
    );
    assert!(out.status.success(), "{out:?}");
    api.answer("work-refreshed", usage(41.0, SOON, 55.0, LATER));
    let after = status_usage(&f);
    assert_eq!(
        profile(&after, "work")["usage"]["five_hour"]["utilization"],
        json!(41.0)
    );
    assert_eq!(api.asked("work-refreshed"), 1);
    api.check();
}

#[test]
fn a_failed_request_is_not_repeated_within_five_seconds_and_a_refused_token_has_no_usage() {
    let api = Api::start();
    let mut f = Fixture::new();
    api.serve(&mut f);
    f.add_profile("work", Some("work"));
    f.add_profile("personal", Some("personal"));
    api.answer("work", usage(30.0, SOON, 50.0, LATER));
    api.answer("personal", Reply::Status(503, vec![]));
    let status = status_usage(&f);
    assert_eq!(
        profile(&status, "personal")["usage_error"],
        json!("unreachable")
    );
    let again = status_usage(&f);
    assert_eq!(
        profile(&again, "personal")["usage_error"],
        json!("unreachable")
    );
    assert_eq!(
        api.asked("personal"),
        1,
        "no second request within five seconds"
    );

    // A server that fails after answering: the answer is served again, stale.
    age_cache(&f, "work", 120_000);
    api.answer("work", Reply::Status(500, vec![]));
    let stale = status_usage(&f);
    let u = &profile(&stale, "work")["usage"];
    assert_eq!(u["stale"], json!(true), "{u}");
    assert_eq!(u["five_hour"]["utilization"], json!(30.0));

    // A refused token: no figures, whatever was known before.
    age_cache(&f, "work", 10_000);
    api.answer("work", Reply::Status(401, vec![]));
    let refused = status_usage(&f);
    assert_eq!(profile(&refused, "work")["usage"], Value::Null);
    assert_eq!(
        profile(&refused, "work")["usage_error"],
        json!("unauthorized")
    );
    api.check();
}

#[test]
fn after_a_429_nothing_is_asked_until_retry_after_and_the_last_answer_is_served_stale() {
    let api = Api::start();
    let mut f = Fixture::new();
    api.serve(&mut f);
    f.add_profile("work", Some("work"));
    f.add_profile("personal", Some("personal"));
    let limited = Reply::Status(429, vec![("Retry-After".into(), "3600".into())]);
    api.answer("work", usage(30.0, SOON, 50.0, LATER));
    api.answer("personal", limited.clone());
    let first = status_usage(&f);
    assert_eq!(profile(&first, "personal")["usage"], Value::Null);
    assert_eq!(
        profile(&first, "personal")["usage_error"],
        json!("rate_limited")
    );
    let fetched_at = profile(&first, "work")["usage"]["fetched_at"].clone();

    age_cache(&f, "work", 120_000);
    api.answer("work", limited);
    let second = status_usage(&f);
    let u = &profile(&second, "work")["usage"];
    assert_eq!(u["stale"], json!(true), "{u}");
    assert_eq!(u["five_hour"]["utilization"], json!(30.0));
    assert_eq!(
        u["fetched_at"].as_i64(),
        fetched_at.as_i64().map(|t| t - 120_000)
    );
    assert_eq!((api.asked("work"), api.asked("personal")), (2, 1));

    // Minutes later, within the hour: still nothing asked.
    age_cache(&f, "work", 600_000);
    age_cache(&f, "personal", 600_000);
    api.answer("work", usage(35.0, SOON, 50.0, LATER));
    api.answer("personal", usage(1.0, SOON, 1.0, LATER));
    let third = status_usage(&f);
    assert_eq!(profile(&third, "work")["usage"]["stale"], json!(true));
    assert_eq!(
        profile(&third, "personal")["usage_error"],
        json!("rate_limited")
    );
    assert_eq!((api.asked("work"), api.asked("personal")), (2, 1));

    // Once the hour has passed, asked again.
    age_cache(&f, "work", 3_600_000);
    age_cache(&f, "personal", 3_600_000);
    let fourth = status_usage(&f);
    assert_eq!(profile(&fourth, "work")["usage"]["stale"], json!(false));
    assert_eq!(
        profile(&fourth, "work")["usage"]["five_hour"]["utilization"],
        json!(35.0)
    );
    assert_eq!(
        profile(&fourth, "personal")["usage"]["five_hour"]["utilization"],
        json!(1.0)
    );
    assert_eq!((api.asked("work"), api.asked("personal")), (3, 2));
    api.check();
}

#[test]
fn the_stand_in_is_trusted_only_through_ssl_cert_file_and_no_token_travels_without_it() {
    let api = Api::start();
    let mut f = Fixture::new();
    f.set_env("HTTPS_PROXY", &api.proxy.url());
    f.add_profile("work", Some("work"));
    api.answer("work", usage(30.0, SOON, 50.0, LATER));
    let status = status_usage(&f);
    assert_eq!(
        profile(&status, "work")["usage_error"],
        json!("unreachable")
    );
    assert_eq!(
        api.total(),
        0,
        "the TLS handshake failed before any request"
    );
    api.check();
}

both_modes!(
    pick_acquires_the_profile_with_the_most_headroom,
    |mode: &str| {
        let api = Api::start();
        let mut f = Fixture::new();
        api.serve(&mut f);
        f.add_profile("work", Some("work"));
        f.add_profile("personal", Some("personal"));
        f.add_profile("fresh", None);
        api.answer("work", usage(30.0, SOON, 50.0, LATER));
        api.answer("personal", usage(80.0, SOON, 10.0, LATER));

        let a = f
            .request("acquire", json!({"pick": {}, "link_mode": mode}))
            .ok();
        validate("acquire.response", &a);
        assert_eq!(a["profile"], json!("work"));
        assert_eq!(a["link_mode"], json!(mode));
        assert_eq!(a["config_dir"], json!(f.runtime("work").to_string_lossy()));
        assert_eq!(a["pick"]["headroom"], json!(50.0));
        assert_eq!(a["pick"]["usage"]["seven_day"]["utilization"], json!(50.0));
        assert_eq!(a["pick"]["usage_error"], Value::Null);

        // Among one: that one, though it has less headroom.
        let b = f
            .request(
                "acquire",
                json!({"pick": {"among": ["personal", "fresh"]}, "link_mode": mode}),
            )
            .ok();
        assert_eq!(b["profile"], json!("personal"));
        assert_eq!(b["pick"]["headroom"], json!(20.0));
        assert!(f.runtime("personal").join("settings.json").exists());

        // The acquires are the plain ones: their sessions are where status says, each login in
        // its runtime, and the usage was asked once per login.
        let status = f.status();
        assert_eq!(
            profile(&status, "work")["sessions"][0]["session"],
            a["session"]
        );
        assert_eq!(
            profile(&status, "personal")["sessions"][0]["session"],
            b["session"]
        );
        assert_eq!((api.asked("work"), api.asked("personal")), (1, 1));
        f.release(&a["session"]);
        f.release(&b["session"]);
        assert!(!f.runtime("work").exists() && !f.runtime("personal").exists());
        api.check();
    }
);

#[test]
fn pick_breaks_ties_by_fewer_sessions_then_name_and_prefers_known_usage() {
    let api = Api::start();
    let mut f = Fixture::new();
    api.serve(&mut f);
    f.add_profile("work", Some("work"));
    f.add_profile("personal", Some("personal"));
    add_credentials(
        &f,
        "expired",
        &variant("EXPIRED", 1000, &["user:inference", "user:profile"]),
    );
    api.answer("work", usage(20.0, SOON, 20.0, LATER));
    api.answer("personal", usage(20.0, SOON, 20.0, LATER));
    let first = f.request("acquire", json!({"pick": {}})).ok();
    assert_eq!(
        first["profile"],
        json!("personal"),
        "same headroom: the first name"
    );
    let second = f.request("acquire", json!({"pick": {}})).ok();
    assert_eq!(
        second["profile"],
        json!("work"),
        "same headroom: fewer sessions"
    );

    // Usage unknown (an expired token) is chosen only when no known profile will do, and
    // never to meet a minimum.
    age_cache(&f, "work", 120_000);
    age_cache(&f, "personal", 120_000);
    api.answer("work", usage(100.0, SOON, 20.0, LATER));
    api.answer("personal", usage(20.0, SOON, 100.0, LATER));
    let third = f.request("acquire", json!({"pick": {}})).ok();
    assert_eq!(third["profile"], json!("expired"));
    assert_eq!(third["pick"]["headroom"], Value::Null);
    assert_eq!(third["pick"]["usage_error"], json!("token_expired"));
    let none = f
        .request("acquire", json!({"pick": {"min_headroom": 0}}))
        .err("no_headroom");
    assert_eq!(none["error"]["resets_at"], json!(SOON));
    api.check();
}

#[test]
fn no_headroom_is_retryable_names_the_earliest_reset_and_changes_nothing() {
    let api = Api::start();
    let mut f = Fixture::new();
    api.serve(&mut f);
    f.add_profile("work", Some("work"));
    f.add_profile("personal", Some("personal"));
    f.add_profile("fresh", None);
    api.answer("work", usage(100.0, LATER, 50.0, LATER));
    api.answer("personal", usage(10.0, SOON, 100.0, SOON));
    let _ = status_usage(&f);
    let before = f.snapshot();
    let r = f.request("acquire", json!({"pick": {}}));
    let err = r.err("no_headroom");
    validate("acquire.response", &err);
    assert_eq!(err["error"]["retryable"], json!(true));
    assert_eq!(err["error"]["resets_at"], json!(SOON));
    let message = err["error"]["message"].as_str().unwrap();
    assert!(
        message.contains("work") && message.contains("personal") && message.contains(SOON),
        "{message}"
    );
    assert_eq!(f.snapshot(), before, "nothing on disk changed");

    // Not enough headroom for the minimum asked: the reset of every window over it.
    age_cache(&f, "work", 120_000);
    api.answer("work", usage(30.0, SOON, 60.0, LATER));
    let err = f
        .request(
            "acquire",
            json!({"pick": {"among": ["work"], "min_headroom": 50}}),
        )
        .err("no_headroom");
    assert_eq!(err["error"]["resets_at"], json!(LATER));
    let ok = f
        .request(
            "acquire",
            json!({"pick": {"among": ["work"], "min_headroom": 40}}),
        )
        .ok();
    assert_eq!(ok["profile"], json!("work"));

    // No login among those named: nothing to choose, no reset known.
    let err = f
        .request("acquire", json!({"pick": {"among": ["fresh"]}}))
        .err("no_headroom");
    assert!(err["error"].get("resets_at").is_none(), "{err}");
    api.check();
}

#[test]
fn a_bad_pick_is_refused_before_any_request() {
    let api = Api::start();
    let mut f = Fixture::new();
    api.serve(&mut f);
    f.add_profile("work", Some("work"));
    api.answer("work", usage(30.0, SOON, 50.0, LATER));
    for (body, code) in [
        (json!({"profile": "work", "pick": {}}), "invalid_request"),
        (json!({"pick": []}), "invalid_request"),
        (json!({"pick": {"among": []}}), "invalid_request"),
        (json!({"pick": {"among": [3]}}), "invalid_request"),
        (json!({"pick": {"min_headroom": 101}}), "invalid_request"),
        (json!({"pick": {"min_headroom": "50"}}), "invalid_request"),
        (json!({"pick": {"among": ["../x"]}}), "invalid_profile_name"),
        (json!({"pick": {"among": ["nobody"]}}), "profile_not_found"),
        (
            json!({"pick": {}, "owner_pid": 2147483647}),
            "invalid_request",
        ),
    ] {
        f.request("acquire", body).err(code);
    }
    f.request("status", json!({"usage": "yes"}))
        .err("invalid_request");
    assert_eq!(api.total(), 0);
    api.check();
}

#[test]
fn serve_tells_a_session_whose_account_passes_ninety_percent() {
    let api = Api::start();
    let mut f = Fixture::new();
    api.serve(&mut f);
    f.add_profile("work", Some("work"));
    api.answer("work", usage(95.5, SOON, 40.0, LATER));
    let mut s = f.serve();
    let a = s.call("acquire", json!({"profile": "work"}));
    assert_eq!(a["ok"], json!(true), "{a}");
    let event = s.wait_event("usage", 30);
    assert_eq!(event["session"], a["session"]);
    assert_eq!(event["profile"], json!("work"));
    assert_eq!(event["window"], json!("five_hour"));
    assert_eq!(event["utilization"], json!(95.5));
    assert_eq!(event["resets_at"], json!(SOON));
    assert_eq!(event["usage"]["seven_day"]["utilization"], json!(40.0));
    // Serve still answers while it watches, and tells each crossing once.
    let st = s.call("status", json!({}));
    assert_eq!(st["ok"], json!(true));
    let (status, stderr) = s.finish();
    assert!(status.success(), "{stderr}");
    assert_eq!(api.asked("work"), 1);
    api.check();
}

#[test]
fn serve_does_not_look_at_usage_while_it_holds_no_session() {
    let api = Api::start();
    let mut f = Fixture::new();
    api.serve(&mut f);
    f.add_profile("work", Some("work"));
    api.answer("work", usage(95.0, SOON, 40.0, LATER));
    let mut s = f.serve();
    let st = s.call("status", json!({}));
    assert_eq!(st["ok"], json!(true));
    let caps = s.call("capabilities", json!({}));
    for feature in ["usage", "pick", "usage_events"] {
        assert!(
            caps["features"]
                .as_array()
                .unwrap()
                .contains(&json!(feature)),
            "{caps}"
        );
    }
    assert!(
        s.events.iter().all(|e| e["event"] != json!("usage")),
        "{:?}",
        s.events
    );
    let (status, _) = s.finish();
    assert!(status.success());
    assert_eq!(api.total(), 0);
    api.check();
}

#[test]
fn profile_list_usage_and_profile_show_give_each_window_with_the_time_to_its_reset() {
    let api = Api::start();
    let mut f = Fixture::new();
    api.serve(&mut f);
    f.add_profile("work", Some("work"));
    f.add_profile("fresh", None);
    api.answer("work", usage(30.0, SOON, 50.0, LATER));

    let plain = f.run(&["profile", "list"], b"");
    assert!(plain.status.success(), "{plain:?}");
    assert!(!String::from_utf8_lossy(&plain.stdout).contains("usage:"));
    assert_eq!(api.total(), 0, "a plain list asks nothing");

    let out = f.run(&["profile", "list", "--usage"], b"");
    assert!(out.status.success(), "{out:?}");
    let text = String::from_utf8_lossy(&out.stdout);
    let header = text.lines().next().unwrap_or("");
    assert!(header.ends_with("USAGE"), "{text}");
    let row = |name: &str| {
        text.lines()
            .find(|l| l.split_whitespace().next() == Some(name))
            .unwrap_or_else(|| panic!("no row for {name}: {text}"))
            .to_owned()
    };
    let work = row("work");
    assert!(
        work.contains("5-hour 30% (resets in ")
            && work.contains(", 7-day 50% (resets in ")
            && work.contains("seven_day_opus 0%"),
        "{text}"
    );
    assert!(row("fresh").ends_with("none (no login)"), "{text}");

    let out = f.run(&["profile", "list", "--usage", "--json"], b"");
    let listed: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(listed[1]["usage"]["five_hour"]["utilization"], json!(30.0));

    let out = f.run(&["profile", "show", "work"], b"");
    assert!(out.status.success(), "{out:?}");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("usage:       5-hour 30% (resets in "),
        "{text}"
    );
    assert_eq!(api.asked("work"), 1, "one request for all of it");
    api.check();
}

both_modes!(
    run_pick_runs_the_command_under_the_profile_with_the_most_headroom,
    |mode: &str| {
        let api = Api::start();
        let mut f = Fixture::new();
        api.serve(&mut f);
        f.add_profile("work", Some("work"));
        f.add_profile("personal", Some("personal"));
        api.answer("work", usage(30.0, SOON, 50.0, LATER));
        api.answer("personal", usage(80.0, SOON, 10.0, LATER));
        let config_dir = |out: &std::process::Output| {
            String::from_utf8_lossy(&out.stdout)
                .lines()
                .find_map(|l| l.strip_prefix("CLAUDE_CONFIG_DIR=").map(str::to_owned))
        };

        let out = f.run(&["run", "--pick", "--link-mode", mode, "--", "env"], b"");
        assert!(out.status.success(), "{out:?}");
        assert_eq!(
            config_dir(&out),
            Some(f.runtime("work").to_string_lossy().into_owned())
        );
        assert!(
            String::from_utf8_lossy(&out.stderr).contains("picked profile work (50% headroom)"),
            "{out:?}"
        );

        let out = f.run(
            &[
                "run",
                "--pick",
                "--among",
                "personal",
                "--link-mode",
                mode,
                "--",
                "env",
            ],
            b"",
        );
        assert!(out.status.success(), "{out:?}");
        assert_eq!(
            config_dir(&out),
            Some(f.runtime("personal").to_string_lossy().into_owned())
        );
        assert!(!f.runtime("work").exists() && !f.runtime("personal").exists());

        // None good enough: the wrapper fails before the command, with the code and the reset.
        age_cache(&f, "work", 120_000);
        api.answer("work", usage(100.0, SOON, 50.0, LATER));
        let out = f.run(
            &[
                "run", "--pick", "--among", "work", "--", "sh", "-c", "echo ran",
            ],
            b"",
        );
        assert_eq!(out.status.code(), Some(125), "{out:?}");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(
            stderr.contains("error[no_headroom]") && stderr.contains(SOON),
            "{stderr}"
        );
        assert!(!String::from_utf8_lossy(&out.stdout).contains("ran"));
        assert_eq!(f.status()["profiles"][1]["sessions"], json!([]));

        // Bad uses of the flags are the parser's.
        for args in [
            &["run", "work", "--pick"][..],
            &["run", "--among", "work"][..],
            &["run"][..],
        ] {
            let out = f.run(args, b"");
            assert_eq!(out.status.code(), Some(2), "{args:?}: {out:?}");
        }
        api.check();
    }
);
