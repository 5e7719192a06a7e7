//! A raw HTTP/1.1 client, so that tests see exactly the status and headers the server sends
//! (redirects not followed, cookies not kept), as a browser's first request would.

use std::net::SocketAddr;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

pub struct Reply {
    pub status: u16,
    pub head: String,
    pub body: String,
}

/// One HTTP/1.1 request as a browser on this site sends it. With `whole` false only the status
/// line and headers are read (for streams that never end).
pub async fn http(
    addr: SocketAddr,
    method: &str,
    path: &str,
    cookie: Option<&str>,
    form: Option<&str>,
    whole: bool,
) -> Reply {
    let origin = format!("http://{addr}");
    send(
        addr,
        method,
        path,
        cookie,
        form,
        whole,
        &[("Origin", &origin)],
    )
    .await
}

/// A form POST with exactly these extra headers (`Origin` among them or not).
pub async fn post_with(
    addr: SocketAddr,
    path: &str,
    cookie: Option<&str>,
    form: &str,
    headers: &[(&str, &str)],
) -> Reply {
    send(addr, "POST", path, cookie, Some(form), true, headers).await
}

/// Gives up, naming the request, after a minute: a request that never ends fails the test
/// instead of hanging the run.
async fn send(
    addr: SocketAddr,
    method: &str,
    path: &str,
    cookie: Option<&str>,
    form: Option<&str>,
    whole: bool,
    headers: &[(&str, &str)],
) -> Reply {
    let request = exchange(addr, method, path, cookie, form, whole, headers);
    tokio::time::timeout(std::time::Duration::from_secs(60), request)
        .await
        .unwrap_or_else(|_| panic!("{method} {path} got no complete answer in 60 s"))
}

async fn exchange(
    addr: SocketAddr,
    method: &str,
    path: &str,
    cookie: Option<&str>,
    form: Option<&str>,
    whole: bool,
    headers: &[(&str, &str)],
) -> Reply {
    let mut stream = TcpStream::connect(addr).await.unwrap();
    let body = form.unwrap_or("");
    let mut request = format!("{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n");
    if let Some(cookie) = cookie {
        request.push_str(&format!("Cookie: {cookie}\r\n"));
    }
    for (name, value) in headers {
        request.push_str(&format!("{name}: {value}\r\n"));
    }
    if form.is_some() {
        request.push_str(&format!(
            "Content-Type: application/x-www-form-urlencoded\r\nAccept: application/json\r\nContent-Length: {}\r\n",
            body.len()
        ));
    }
    if form.is_none() {
        // As a browser navigates: pages answer redirects with a real 302 only to HTML requests.
        request.push_str("Accept: text/html,*/*\r\n");
    }
    request.push_str("\r\n");
    request.push_str(body);
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut bytes = Vec::new();
    let mut buf = [0u8; 8192];
    loop {
        let n = stream.read(&mut buf).await.unwrap();
        if n == 0 {
            break;
        }
        bytes.extend_from_slice(&buf[..n]);
        if !whole && bytes.windows(4).any(|w| w == b"\r\n\r\n") {
            break;
        }
    }
    let text = String::from_utf8_lossy(&bytes).to_string();
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let status = head
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    Reply {
        status,
        head: head.to_string(),
        body: body.to_string(),
    }
}

pub async fn sign_in(addr: SocketAddr, email: &str, password: &str) -> String {
    let reply = http(
        addr,
        "POST",
        "/api/sign_in",
        None,
        Some(&format!(
            "email={}&password={password}",
            email.replace('@', "%40")
        )),
        true,
    )
    .await;
    reply
        .head
        .lines()
        .find_map(|l| {
            l.to_ascii_lowercase()
                .starts_with("set-cookie:")
                .then(|| l[11..].trim().to_string())
        })
        .and_then(|c| c.split(';').next().map(str::to_string))
        .unwrap_or_else(|| {
            panic!(
                "no session cookie after signing in as {email}: {}",
                reply.head
            )
        })
}

/// The value of a response header (case-insensitive name), if present.
pub fn header<'a>(reply: &'a Reply, name: &str) -> Option<&'a str> {
    reply.head.lines().find_map(|l| {
        let (n, v) = l.split_once(':')?;
        n.trim().eq_ignore_ascii_case(name).then(|| v.trim())
    })
}

/// An open SSE stream, read as raw text: enough to wait for an event by name (the chunked
/// framing around the events does not matter for that).
pub struct EventStream {
    stream: TcpStream,
    seen: String,
}

impl EventStream {
    /// Opens `path` with the session `cookie` and waits for the response head.
    pub async fn open(addr: SocketAddr, path: &str, cookie: &str) -> EventStream {
        let mut stream = TcpStream::connect(addr).await.unwrap();
        let request = format!(
            "GET {path} HTTP/1.1\r\nHost: {addr}\r\nCookie: {cookie}\r\nAccept: text/event-stream\r\n\r\n"
        );
        stream.write_all(request.as_bytes()).await.unwrap();
        let mut events = EventStream {
            stream,
            seen: String::new(),
        };
        events.wait_for("HTTP/1.1 200", 1).await;
        events
    }

    /// Waits until `text` has appeared `count` times in the stream so far; panics after 60 s.
    pub async fn wait_for(&mut self, text: &str, count: usize) {
        let read = async {
            let mut buf = [0u8; 8192];
            while self.seen.matches(text).count() < count {
                let n = self.stream.read(&mut buf).await.unwrap();
                assert!(
                    n > 0,
                    "the stream ended before {text:?} × {count}: {}",
                    self.seen
                );
                self.seen.push_str(&String::from_utf8_lossy(&buf[..n]));
            }
        };
        if tokio::time::timeout(std::time::Duration::from_secs(60), read)
            .await
            .is_err()
        {
            panic!(
                "no {text:?} × {count} in 60 s; the stream so far: {}",
                self.seen
            );
        }
    }

    /// How often `text` has appeared so far.
    pub fn count(&self, text: &str) -> usize {
        self.seen.matches(text).count()
    }
}
