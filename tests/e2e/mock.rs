//! A mock of the Messages API on loopback, which also plays an HTTPS proxy that refuses every
//! tunnel, so that nothing Claude Code sends leaves the machine.

use std::io::{BufReader, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use crate::support::tls_proxy::HttpRequest;

/// The text of every reply.
pub const REPLY: &str = "hello from the mock";

#[derive(Debug, Clone)]
pub struct Seen {
    pub method: String,
    pub path: String,
    pub authorization: Option<String>,
    pub body: String,
}

pub struct MockApi {
    port: u16,
    seen: Arc<Mutex<Vec<Seen>>>,
}

impl MockApi {
    pub fn start() -> MockApi {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let seen = Arc::new(Mutex::new(Vec::new()));
        let log = seen.clone();
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(stream) = stream else { continue };
                let log = log.clone();
                std::thread::spawn(move || {
                    let _ = serve(stream, &log);
                });
            }
        });
        MockApi { port, seen }
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    pub fn requests(&self) -> Vec<Seen> {
        self.seen.lock().unwrap().clone()
    }
}

fn serve(stream: TcpStream, log: &Mutex<Vec<Seen>>) -> std::io::Result<()> {
    stream.set_read_timeout(Some(Duration::from_secs(30)))?;
    let mut reader = BufReader::new(stream.try_clone()?);
    let mut out = stream;
    // One request per connection: every response says `Connection: close`.
    let Some(request) = HttpRequest::read_from(&mut reader, "127.0.0.1")? else {
        return Ok(());
    };
    log.lock().unwrap().push(Seen {
        method: request.method.clone(),
        path: request.path.clone(),
        authorization: request.header("authorization").map(str::to_owned),
        body: request.body_text(),
    });
    if request.method == "CONNECT" {
        out.write_all(b"HTTP/1.1 403 Forbidden\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")?;
        return Ok(());
    }
    let (status, content_type, payload) = respond(&request.method, &request.path, &request.body);
    write!(
        out,
        "HTTP/1.1 {status}\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\nrequest-id: req_mock\r\nConnection: close\r\n\r\n",
        payload.len()
    )?;
    if request.method != "HEAD" {
        out.write_all(payload.as_bytes())?;
    }
    out.flush()
}

fn respond(method: &str, path: &str, body: &[u8]) -> (&'static str, &'static str, String) {
    let route = path.split('?').next().unwrap_or("");
    if method == "POST" && route == "/v1/messages" {
        let req: serde_json::Value = serde_json::from_slice(body).unwrap_or_default();
        let model = req["model"].as_str().unwrap_or("claude-mock").to_owned();
        let usage = serde_json::json!({"input_tokens": 10, "output_tokens": 4, "cache_creation_input_tokens": 0, "cache_read_input_tokens": 0});
        let message = serde_json::json!({"id": "msg_mock", "type": "message", "role": "assistant", "model": model,
            "content": [], "stop_reason": null, "stop_sequence": null, "usage": usage});
        if req["stream"].as_bool() != Some(true) {
            let mut whole = message;
            whole["content"] = serde_json::json!([{"type": "text", "text": REPLY}]);
            whole["stop_reason"] = serde_json::json!("end_turn");
            return ("200 OK", "application/json", whole.to_string());
        }
        let events = [
            (
                "message_start",
                serde_json::json!({"type": "message_start", "message": message}),
            ),
            (
                "content_block_start",
                serde_json::json!({"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}}),
            ),
            (
                "content_block_delta",
                serde_json::json!({"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": REPLY}}),
            ),
            (
                "content_block_stop",
                serde_json::json!({"type": "content_block_stop", "index": 0}),
            ),
            (
                "message_delta",
                serde_json::json!({"type": "message_delta", "delta": {"stop_reason": "end_turn", "stop_sequence": null}, "usage": {"output_tokens": 4}}),
            ),
            ("message_stop", serde_json::json!({"type": "message_stop"})),
        ];
        let stream: String = events
            .iter()
            .map(|(e, d)| format!("event: {e}\ndata: {d}\n\n"))
            .collect();
        return ("200 OK", "text/event-stream", stream);
    }
    if route == "/v1/messages/count_tokens" {
        return (
            "200 OK",
            "application/json",
            r#"{"input_tokens": 10}"#.into(),
        );
    }
    if method == "HEAD" || route == "/" {
        return ("200 OK", "application/json", "{}".into());
    }
    (
        "404 Not Found",
        "application/json",
        r#"{"type":"error","error":{"type":"not_found_error","message":"mock: no such route"}}"#
            .into(),
    )
}
