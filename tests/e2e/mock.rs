//! A mock of the Messages API on loopback, which also plays an HTTPS proxy that refuses every
//! tunnel, so that nothing Claude Code sends leaves the machine.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::{Arc, Mutex};
use std::time::Duration;

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
    let mut line = String::new();
    if reader.read_line(&mut line)? == 0 {
        return Ok(());
    }
    let mut parts = line.split_whitespace();
    let (method, path) = (
        parts.next().unwrap_or("").to_owned(),
        parts.next().unwrap_or("").to_owned(),
    );
    let mut headers = Vec::new();
    loop {
        let mut h = String::new();
        reader.read_line(&mut h)?;
        let h = h.trim_end().to_owned();
        if h.is_empty() {
            break;
        }
        if let Some((k, v)) = h.split_once(':') {
            headers.push((k.trim().to_ascii_lowercase(), v.trim().to_owned()));
        }
    }
    let header = |name: &str| {
        headers
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.clone())
    };
    let body = if let Some(len) = header("content-length").and_then(|v| v.parse::<usize>().ok()) {
        let mut buf = vec![0; len];
        reader.read_exact(&mut buf)?;
        buf
    } else if header("transfer-encoding").is_some_and(|v| v.contains("chunked")) {
        read_chunked(&mut reader)?
    } else {
        Vec::new()
    };
    log.lock().unwrap().push(Seen {
        method: method.clone(),
        path: path.clone(),
        authorization: header("authorization"),
        body: String::from_utf8_lossy(&body).into_owned(),
    });
    if method == "CONNECT" {
        out.write_all(b"HTTP/1.1 403 Forbidden\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")?;
        return Ok(());
    }
    let (status, content_type, payload) = respond(&method, &path, &body);
    write!(
        out,
        "HTTP/1.1 {status}\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\nrequest-id: req_mock\r\nConnection: close\r\n\r\n",
        payload.len()
    )?;
    if method != "HEAD" {
        out.write_all(payload.as_bytes())?;
    }
    out.flush()
}

fn read_chunked(reader: &mut impl BufRead) -> std::io::Result<Vec<u8>> {
    let mut body = Vec::new();
    loop {
        let mut size = String::new();
        reader.read_line(&mut size)?;
        let n =
            usize::from_str_radix(size.trim().split(';').next().unwrap_or("0"), 16).unwrap_or(0);
        let mut chunk = vec![0; n + 2];
        reader.read_exact(&mut chunk)?;
        if n == 0 {
            return Ok(body);
        }
        body.extend_from_slice(&chunk[..n]);
    }
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
