//! The HTTP query source against real servers on 127.0.0.1: RTK Query's `fetchBaseQuery`
//! result and error shapes.

// Included by path so these tests do not depend on the other helpers of `support/`.

use std::time::Duration;

use livecache_chat_server::ChatServer;
use livecache_core::http::HttpQuerySource;
use livecache_core::transport::{FetchRequest, FetchResponse, QuerySource};
use serde_json::{json, Value};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

const WAIT: Duration = Duration::from_secs(10);

async fn fetch(source: &HttpQuerySource, url: String) -> Result<FetchResponse, Value> {
    let request = FetchRequest {
        key: "getMessages(\"general\")".into(),
        endpoint: "getMessages".into(),
        arg: None,
        url,
        headers: Default::default(),
        method: "GET".into(),
        body: None,
        policy: Default::default(),
        graphql: false,
    };
    tokio::time::timeout(WAIT, source.fetch(request))
        .await
        .expect("fetch settles")
}

/// Answers every request with one fixed HTTP/1.1 response, then closes the connection.
async fn fixed_server(
    status_line: &'static str,
    content_type: &'static str,
    body: String,
) -> String {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/data", listener.local_addr().unwrap());
    tokio::spawn(async move {
        while let Ok((mut stream, _)) = listener.accept().await {
            let body = body.clone();
            tokio::spawn(async move {
                let mut request = Vec::new();
                let mut buf = [0u8; 1024];
                while !request.windows(4).any(|w| w == b"\r\n\r\n") {
                    match stream.read(&mut buf).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => request.extend_from_slice(&buf[..n]),
                    }
                }
                let head = format!(
                    "HTTP/1.1 {status_line}\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
                    body.len()
                );
                let _ = stream.write_all(head.as_bytes()).await;
                let _ = stream.write_all(body.as_bytes()).await;
                let _ = stream.shutdown().await;
            });
        }
    });
    url
}

fn nested(levels: usize) -> String {
    "[".repeat(levels) + &"]".repeat(levels)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http_200_json_gives_data_and_meta() {
    let server = ChatServer::start().await;
    server.post("general", "alice", "hello");
    server.post("other", "bob", "elsewhere");
    server.post("general", "carol", "world");
    let source = HttpQuerySource::new().unwrap();
    let url = format!("{}messages/general", server.http_url());
    let response = fetch(&source, url.clone())
        .await
        .expect("a successful fetch");
    assert_eq!(response.data, Value::Array(server.messages("general")));
    assert_eq!(
        response.data[1],
        json!({"id": 3, "channel": "general", "userName": "carol", "text": "world"})
    );
    assert_eq!(
        response.meta["request"],
        json!({"url": url, "method": "GET"})
    );
    assert_eq!(response.meta["response"]["status"], 200);
    assert_eq!(
        response.meta["response"]["headers"]["content-type"],
        "application/json"
    );

    // The pool is shared: a second fetch through the same source works too.
    server.post("general", "dave", "again");
    let again = fetch(&source, url).await.unwrap();
    assert_eq!(again.data.as_array().unwrap().len(), 3);
    assert_eq!(server.fetch_count(), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn l6_http_500_with_json_body_is_status_and_data() {
    let server = ChatServer::start().await;
    server.set_http_status(500);
    let source = HttpQuerySource::new().unwrap();
    let error = fetch(&source, format!("{}messages/general", server.http_url()))
        .await
        .unwrap_err();
    assert_eq!(
        error,
        json!({"status": 500, "data": {"error": "status 500"}})
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn l6_http_404_with_text_body_keeps_the_text() {
    let url = fixed_server("404 Not Found", "text/plain", "no such thing".into()).await;
    let source = HttpQuerySource::new().unwrap();
    let error = fetch(&source, url).await.unwrap_err();
    assert_eq!(error, json!({"status": 404, "data": "no such thing"}));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn l6_http_200_not_json_is_parsing_error() {
    let url = fixed_server("200 OK", "text/html", "<html>hi</html>".into()).await;
    let source = HttpQuerySource::new().unwrap();
    let error = fetch(&source, url).await.unwrap_err();
    assert_eq!(error["status"], "PARSING_ERROR");
    assert_eq!(error["originalStatus"], 200);
    assert_eq!(error["data"], "<html>hi</html>");
    assert!(
        error["error"].as_str().is_some_and(|e| !e.is_empty()),
        "{error}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn l6_connection_refused_is_fetch_error() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}/messages/general", listener.local_addr().unwrap());
    drop(listener);
    let source = HttpQuerySource::new().unwrap();
    let error = fetch(&source, url).await.unwrap_err();
    assert_eq!(error["status"], "FETCH_ERROR");
    let message = error["error"].as_str().unwrap();
    // The cause chain reaches the operating system's reason.
    assert!(message.to_lowercase().contains("refused"), "{message}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn l6_slow_server_past_the_timeout_is_timeout_error() {
    let server = ChatServer::start().await;
    server.set_fetch_delay(3_000);
    let source = HttpQuerySource::with_timeout(Duration::from_millis(100)).unwrap();
    let error = fetch(&source, format!("{}messages/general", server.http_url()))
        .await
        .unwrap_err();
    assert_eq!(error["status"], "TIMEOUT_ERROR", "{error}");
    assert!(error["error"].is_string());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn e3_body_deeper_than_128_levels_is_parsing_error() {
    let source = HttpQuerySource::new().unwrap();
    let deep = fixed_server("200 OK", "application/json", nested(129)).await;
    let error = fetch(&source, deep).await.unwrap_err();
    assert_eq!(error["status"], "PARSING_ERROR");
    assert_eq!(error["originalStatus"], 200);
    assert!(error["error"].as_str().unwrap().contains("128"), "{error}");

    let at_limit = fixed_server("200 OK", "application/json", nested(128)).await;
    let response = fetch(&source, at_limit)
        .await
        .expect("128 levels are allowed");
    assert!(response.data.is_array());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http_empty_body_is_null() {
    let url = fixed_server("200 OK", "application/json", String::new()).await;
    let source = HttpQuerySource::new().unwrap();
    assert_eq!(fetch(&source, url).await.unwrap().data, Value::Null);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http_redirects_are_not_followed() {
    let url = fixed_server("302 Found", "text/plain", "elsewhere".into()).await;
    let source = HttpQuerySource::new().unwrap();
    let error = fetch(&source, url).await.unwrap_err();
    assert_eq!(error, json!({"status": 302, "data": "elsewhere"}));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chat_server_post_over_http_is_broadcast_truth() {
    // The chat server's own HTTP POST, used by other layers' end-to-end tests.
    let server = ChatServer::start().await;
    let client = reqwest::Client::new();
    let response = client
        .post(format!("{}messages/general", server.http_url()))
        .body(r#"{"userName": "erin", "text": "via http"}"#)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 201);
    let posted: Value = serde_json::from_slice(&response.bytes().await.unwrap()).unwrap();
    assert_eq!(posted["text"], "via http");
    assert_eq!(server.messages("general"), vec![posted]);
}

/// T1: the rendered headers go out on the request; a redirect is not followed, so they reach
/// no other origin (§9).
#[tokio::test]
async fn t1_headers_are_sent_with_the_request_and_never_follow_a_redirect() {
    use livecache_core::transport::Headers;
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/data", listener.local_addr().unwrap());
    let (tx, mut heads) = tokio::sync::mpsc::unbounded_channel::<String>();
    let again = format!("{url}/again");
    tokio::spawn(async move {
        let mut n = 0;
        while let Ok((mut stream, _)) = listener.accept().await {
            let mut request = Vec::new();
            let mut buf = [0u8; 1024];
            while !request.windows(4).any(|w| w == b"\r\n\r\n") {
                match stream.read(&mut buf).await {
                    Ok(0) | Err(_) => break,
                    Ok(k) => request.extend_from_slice(&buf[..k]),
                }
            }
            let _ = tx.send(String::from_utf8_lossy(&request).into_owned());
            let response = if n == 0 {
                "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 2\r\nConnection: close\r\n\r\n[]".to_owned()
            } else {
                format!("HTTP/1.1 302 Found\r\nLocation: {again}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
            };
            n += 1;
            let _ = stream.write_all(response.as_bytes()).await;
            let _ = stream.shutdown().await;
        }
    });
    let source = HttpQuerySource::new().unwrap();
    let headers = Headers::from_pairs(vec![("Authorization".into(), "Bearer s3cret".into()), ("X-Trace".into(), "1".into())]).unwrap();
    let request = |url: String| FetchRequest {
        key: "k".into(),
        endpoint: "getMessages".into(),
        arg: None,
        url,
        headers: headers.clone(),
        method: "GET".into(),
        body: None,
        policy: Default::default(),
        graphql: false,
    };
    let ok = tokio::time::timeout(WAIT, source.fetch(request(url.clone()))).await.unwrap().unwrap();
    assert_eq!(ok.data, json!([]));
    let head = heads.recv().await.unwrap().to_ascii_lowercase();
    assert!(head.contains("authorization: bearer s3cret\r\n") && head.contains("x-trace: 1\r\n"), "{head}");
    assert!(!ok.meta.to_string().contains("s3cret"), "request headers are not in meta: {}", ok.meta);

    let redirected = tokio::time::timeout(WAIT, source.fetch(request(url))).await.unwrap().unwrap_err();
    assert_eq!(redirected["status"], json!(302));
    assert!(!redirected.to_string().contains("s3cret"));
    heads.recv().await.unwrap();
    assert!(heads.try_recv().is_err(), "the redirect was not followed");
}

/// Answers the n-th request with `responses[n]` (the last one again once they run out) and
/// reports each request's head and body.
async fn scripted_http(responses: Vec<Vec<u8>>) -> (String, tokio::sync::mpsc::UnboundedReceiver<(String, String)>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/data", listener.local_addr().unwrap());
    let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
    tokio::spawn(async move {
        let mut n = 0;
        while let Ok((mut stream, _)) = listener.accept().await {
            let mut request = Vec::new();
            let mut buf = [0u8; 4096];
            let head_end = loop {
                if let Some(i) = request.windows(4).position(|w| w == b"\r\n\r\n") {
                    break i + 4;
                }
                match stream.read(&mut buf).await {
                    Ok(0) | Err(_) => return,
                    Ok(k) => request.extend_from_slice(&buf[..k]),
                }
            };
            let head = String::from_utf8_lossy(&request[..head_end]).into_owned();
            let length = head
                .lines()
                .find_map(|l| l.to_ascii_lowercase().strip_prefix("content-length:").map(|v| v.trim().parse::<usize>().unwrap()))
                .unwrap_or(0);
            while request.len() < head_end + length {
                match stream.read(&mut buf).await {
                    Ok(0) | Err(_) => return,
                    Ok(k) => request.extend_from_slice(&buf[..k]),
                }
            }
            let body = String::from_utf8_lossy(&request[head_end..]).into_owned();
            let _ = tx.send((head, body));
            let response = responses[n.min(responses.len() - 1)].clone();
            n += 1;
            let _ = stream.write_all(&response).await;
            let _ = stream.shutdown().await;
        }
    });
    (url, rx)
}

fn response(status_line: &str, extra: &str, body: &[u8]) -> Vec<u8> {
    let mut r = format!(
        "HTTP/1.1 {status_line}\r\nContent-Type: application/json\r\n{extra}Content-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    )
    .into_bytes();
    r.extend_from_slice(body);
    r
}

fn request(url: String, method: &str, body: Option<Value>, policy: Value) -> FetchRequest {
    let config = livecache_core::Config::from_value(&json!({"endpoints": {"e": {"query": "x", "timeoutMs": policy["timeoutMs"], "retry": policy["retry"]}}})).unwrap();
    FetchRequest {
        key: "k".into(),
        endpoint: "e".into(),
        arg: None,
        url,
        headers: Default::default(),
        method: method.into(),
        body,
        policy: config.endpoints["e"].policy,
        graphql: false,
    }
}

async fn run(source: &HttpQuerySource, r: FetchRequest) -> Result<FetchResponse, Value> {
    tokio::time::timeout(WAIT, source.fetch(r)).await.expect("fetch settles")
}

fn drain(rx: &mut tokio::sync::mpsc::UnboundedReceiver<(String, String)>) -> Vec<(String, String)> {
    let mut out = Vec::new();
    while let Ok(r) = rx.try_recv() {
        out.push(r);
    }
    out
}

/// T7: a `query` object's method, JSON body and params reach the server as RTK's
/// `fetchBaseQuery` sends them.
#[tokio::test]
async fn t7_method_body_and_params_are_sent() {
    let (url, mut rx) = scripted_http(vec![response("201 Created", "", br#"{"ok":true}"#)]).await;
    let config = livecache_core::Config::from_value(&json!({"endpoints": {"e": {"query": {
        "url": "posts/{arg.id}", "method": "post", "body": {"title": "{arg.title}", "id": "{arg.id}"}, "params": {"q": "{arg.title}"}
    }}}}))
    .unwrap();
    let rendered = config.endpoints["e"].query.as_ref().unwrap().render(Some(&json!({"id": 7, "title": "a b"}))).unwrap();
    let base = url.trim_end_matches("/data");
    let r = request(format!("{base}/{}", rendered.url), &rendered.method, rendered.body, json!({}));
    let ok = run(&HttpQuerySource::new().unwrap(), r).await.unwrap();
    assert_eq!(ok.data, json!({"ok": true}));
    assert_eq!(ok.meta["request"]["method"], "POST");
    let (head, body) = rx.recv().await.unwrap();
    assert!(head.starts_with("POST /posts/7?q=a+b HTTP/1.1\r\n"), "{head}");
    assert!(head.to_ascii_lowercase().contains("content-type: application/json\r\n"), "{head}");
    assert_eq!(serde_json::from_str::<Value>(&body).unwrap(), json!({"title": "a b", "id": 7}));
}

/// T7: 5xx is retried until it succeeds; a 4xx never is; retries run out with the last error.
#[tokio::test]
async fn t7_retry_5xx_and_network_errors_never_4xx() {
    let source = HttpQuerySource::new().unwrap();
    let policy = json!({"retry": {"maxRetries": 3, "initialDelayMs": 1, "maxDelayMs": 4}});
    let (url, mut rx) = scripted_http(vec![
        response("503 Service Unavailable", "", b"{}"),
        response("500 Internal Server Error", "", b"{}"),
        response("200 OK", "", b"[1]"),
    ])
    .await;
    assert_eq!(run(&source, request(url, "GET", None, policy.clone())).await.unwrap().data, json!([1]));
    assert_eq!(drain(&mut rx).len(), 3);

    let (url, mut rx) = scripted_http(vec![response("404 Not Found", "", b"{}"), response("200 OK", "", b"[]")]).await;
    assert_eq!(run(&source, request(url, "GET", None, policy.clone())).await.unwrap_err()["status"], 404);
    assert_eq!(drain(&mut rx).len(), 1, "a 4xx is final");

    let (url, mut rx) = scripted_http(vec![response("502 Bad Gateway", "", b"{}")]).await;
    let policy2 = json!({"retry": {"maxRetries": 2, "initialDelayMs": 1, "maxDelayMs": 1}});
    assert_eq!(run(&source, request(url, "GET", None, policy2.clone())).await.unwrap_err()["status"], 502);
    assert_eq!(drain(&mut rx).len(), 3, "one try and two retries");

    let (url, mut rx) = scripted_http(vec![response("200 OK", "", b"[]")]).await;
    assert!(run(&source, request(url, "GET", None, json!({}))).await.is_ok());
    assert_eq!(drain(&mut rx).len(), 1);

    // Nothing listens: a network error is retried too, and ends as FETCH_ERROR.
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/", listener.local_addr().unwrap());
    drop(listener);
    assert_eq!(run(&source, request(url, "GET", None, policy2)).await.unwrap_err()["status"], "FETCH_ERROR");
}

/// T7: a 429's `Retry-After` sets the wait before the retry.
#[tokio::test]
async fn t7_429_waits_for_retry_after() {
    let (url, mut rx) = scripted_http(vec![response("429 Too Many Requests", "Retry-After: 1\r\n", b"{}"), response("200 OK", "", b"[]")]).await;
    let started = std::time::Instant::now();
    let policy = json!({"retry": {"maxRetries": 1, "initialDelayMs": 1, "maxDelayMs": 1}});
    assert!(run(&HttpQuerySource::new().unwrap(), request(url, "GET", None, policy)).await.is_ok());
    // A lower bound only: the backoff alone would have been 1 ms.
    assert!(started.elapsed() >= Duration::from_secs(1), "{:?}", started.elapsed());
    assert_eq!(drain(&mut rx).len(), 2);
}

/// T7: gzip bodies are asked for and decoded.
#[tokio::test]
async fn t7_gzip_responses_are_decoded() {
    // `{"compressed":true}`, gzip-compressed.
    let gz: [u8; 39] = [
        31, 139, 8, 0, 0, 0, 0, 0, 2, 3, 171, 86, 74, 206, 207, 45, 40, 74, 45, 46, 78, 77, 81, 178, 42, 41, 42, 77, 173, 5, 0, 241,
        234, 57, 149, 19, 0, 0, 0,
    ];
    let (url, mut rx) = scripted_http(vec![response("200 OK", "Content-Encoding: gzip\r\n", &gz)]).await;
    let ok = run(&HttpQuerySource::new().unwrap(), request(url, "GET", None, json!({}))).await.unwrap();
    assert_eq!(ok.data, json!({"compressed": true}));
    let (head, _) = rx.recv().await.unwrap();
    let accept = head.lines().find(|l| l.to_ascii_lowercase().starts_with("accept-encoding:")).unwrap_or("").to_ascii_lowercase();
    assert!(accept.contains("gzip") && accept.contains("br") && accept.contains("deflate"), "{head}");
}

/// T7: `timeoutMs` bounds each attempt.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn t7_timeout_ms_bounds_the_request() {
    let server = ChatServer::start().await;
    server.set_fetch_delay(3_000);
    let r = request(format!("{}messages/general", server.http_url()), "GET", None, json!({"timeoutMs": 100}));
    let error = run(&HttpQuerySource::new().unwrap(), r).await.unwrap_err();
    assert_eq!(error["status"], "TIMEOUT_ERROR", "{error}");
    assert!(error["error"].as_str().unwrap().contains("100 ms"), "{error}");
}
