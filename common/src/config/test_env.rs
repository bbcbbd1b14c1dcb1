//! What the configuration tests share: an environment from a list of pairs, and a fake
//! Secrets extension.

use std::collections::HashMap;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

use super::Env;

pub const SECRET: &str = "0123456789abcdef0123456789abcdef";

pub fn env(pairs: &[(&str, &str)]) -> impl Env + use<> {
    let map: HashMap<String, String> = pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
    move |name: &str| map.get(name).cloned()
}

/// A fake extension: answers each connection with the response `respond` picks for
/// the request head it read, and records every head.
pub async fn fake_extension(
    respond: impl Fn(&str) -> (u16, String) + Send + Sync + 'static,
) -> (u16, tokio::sync::mpsc::UnboundedReceiver<String>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.map_err(|e| e.to_string());
    let listener = match listener {
        Ok(listener) => listener,
        Err(err) => panic!("bind: {err}"),
    };
    let port = listener.local_addr().map(|a| a.port()).unwrap_or_default();
    let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
    tokio::spawn(async move {
        while let Ok((mut socket, _)) = listener.accept().await {
            let mut head = Vec::new();
            let mut buf = [0u8; 1024];
            while !head.windows(4).any(|w| w == b"\r\n\r\n") {
                match socket.read(&mut buf).await {
                    Ok(0) | Err(_) => break,
                    Ok(n) => head.extend_from_slice(&buf[..n]),
                }
            }
            let head = String::from_utf8_lossy(&head).into_owned();
            let (status, body) = respond(&head);
            let _ = tx.send(head);
            let response = format!(
                "HTTP/1.1 {status} X\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                body.len()
            );
            let _ = socket.write_all(response.as_bytes()).await;
            let _ = socket.shutdown().await;
        }
    });
    (port, rx)
}
