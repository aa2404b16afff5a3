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
