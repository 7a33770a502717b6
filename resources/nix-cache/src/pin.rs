//! Pins: small JSON documents `{"store_path", "revision", "updated_at"}` at
//! `<pins_url><name>` that `put` moves and `check` follows.

use std::time::{SystemTime, UNIX_EPOCH};

use anyhow::Context;
use reqwest::Url;
use resource_protocol::InvalidRequest;
use serde::{Deserialize, Serialize};

use crate::client::CacheClient;
use crate::config::Source;

/// A pin document.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Pin {
    /// The store path the pin points to.
    pub store_path: String,
    /// Incremented on every move.
    #[serde(deserialize_with = "resource_protocol::lenient::u64")]
    pub revision: u64,
    /// When it last moved (RFC 3339, UTC).
    #[serde(default)]
    pub updated_at: String,
}

/// Checks a pin name: it becomes the last segment of a URL.
pub fn validate_name(field: &str, name: &str) -> Result<(), InvalidRequest> {
    let ok = !name.is_empty()
        && name.len() <= 200
        && !name.starts_with('.')
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"._-+".contains(&b));
    if ok {
        Ok(())
    } else {
        Err(InvalidRequest::new(format!(
            "{field}: {name:?} must be 1-200 characters of [A-Za-z0-9._+-], not starting with '.'"
        )))
    }
}

/// Where pin `name` lives.
pub fn pin_url(source: &Source, client: &CacheClient, name: &str) -> anyhow::Result<Url> {
    let base = match &source.pins_url {
        Some(u) => {
            let mut text = u.trim().to_owned();
            if !text.ends_with('/') {
                text.push('/');
            }
            Url::parse(&text).map_err(|e| InvalidRequest::new(format!("source.pins_url: {e}")))?
        }
        None => client.url("pins/")?,
    };
    base.join(name)
        .with_context(|| format!("cannot build the url of pin {name:?}"))
}

/// Reads a pin; `None` when it does not exist yet.
pub async fn read(client: &CacheClient, url: &Url) -> anyhow::Result<Option<Pin>> {
    let response = client
        .send_retrying("GET pin", || {
            client.request(reqwest::Method::GET, url.clone())
        })
        .await?;
    match response.status() {
        reqwest::StatusCode::NOT_FOUND | reqwest::StatusCode::FORBIDDEN => Ok(None),
        s if s.is_success() => {
            let text = response.text().await.context("reading the pin")?;
            let pin = serde_json::from_str(&text)
                .with_context(|| format!("pin at {url} is not a valid pin document"))?;
            Ok(Some(pin))
        }
        s => anyhow::bail!("GET pin {url}: server answered {s}"),
    }
}

/// Writes a pin.
pub async fn write(client: &CacheClient, url: &Url, pin: &Pin) -> anyhow::Result<()> {
    let body = serde_json::to_vec(pin)?;
    let response = client
        .send_retrying("PUT pin", || {
            client
                .request(reqwest::Method::PUT, url.clone())
                .header(reqwest::header::CONTENT_TYPE, "application/json")
                .body(body.clone())
        })
        .await?;
    crate::client::check_success("PUT", "pin", response).await
}

/// Moves pin `name` to `root` and returns its revision. A pin already at `root` is left as it
/// is (same revision), so re-running a put changes nothing.
pub async fn move_to(
    source: &Source,
    client: &CacheClient,
    name: &str,
    root: &crate::store_path::StorePath,
) -> anyhow::Result<u64> {
    let url = pin_url(source, client, name)?;
    let revision = match read(client, &url).await? {
        Some(p) if p.store_path == root.as_str() => return Ok(p.revision),
        Some(p) => p.revision + 1,
        None => 1,
    };
    let next = Pin {
        store_path: root.as_str().to_owned(),
        revision,
        updated_at: now_rfc3339(),
    };
    write(client, &url, &next).await?;
    Ok(revision)
}

/// Now as RFC 3339 UTC (`2026-11-25T16:30:57Z`).
pub fn now_rfc3339() -> String {
    let secs = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    rfc3339(secs)
}

fn rfc3339(secs: u64) -> String {
    resource_protocol::timestamp::rfc3339_utc(secs as i64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_times() {
        assert_eq!(rfc3339(0), "1970-01-01T00:00:00Z");
        assert_eq!(rfc3339(1_795_624_634), "2026-11-25T16:37:14Z");
        assert_eq!(rfc3339(951_782_400), "2000-02-29T00:00:00Z");
    }

    #[test]
    fn validates_names() {
        assert!(validate_name("source.pin", "main-1.2").is_ok());
        for bad in ["", ".hidden", "a/b", "a b", "../x"] {
            assert!(validate_name("source.pin", bad).is_err(), "{bad}");
        }
    }
}
