//! `check`: follow a pin, or wait for a store path to be fully present and signed.

use resource_protocol::{InvalidRequest, Version};

use crate::client::CacheClient;
use crate::config::Source;
use crate::fetch::{ClosureOutcome, Verifier, fetch_closure};
use crate::pin;
use crate::store_path::StorePath;

/// `check`.
pub async fn check(source: &Source, _previous: Option<&Version>) -> anyhow::Result<Vec<Version>> {
    let client = CacheClient::new(source)?;
    let verifier = Verifier::from_source(source)?;
    if let Some(name) = &source.pin {
        pin::validate_name("source.pin", name)?;
        let url = pin::pin_url(source, &client, name)?;
        let Some(current) = pin::read(&client, &url).await? else {
            return Ok(vec![]);
        };
        StorePath::parse(&current.store_path).map_err(|e| anyhow::anyhow!("pin {name:?}: {e}"))?;
        let mut version = Version::new();
        version.insert("store_path".into(), current.store_path);
        version.insert("revision".into(), current.revision.to_string());
        return Ok(vec![version]);
    }
    if let Some(path) = &source.store_path {
        let path = StorePath::parse(path)
            .map_err(|e| InvalidRequest::new(format!("source.store_path: {e}")))?;
        return match fetch_closure(&client, &verifier, &path, true).await {
            Ok(ClosureOutcome::Complete(_)) => {
                let mut version = Version::new();
                version.insert("store_path".into(), path.as_str().to_owned());
                Ok(vec![version])
            }
            Ok(ClosureOutcome::Missing(missing)) => {
                tracing::info!("{missing} is not in the cache yet");
                Ok(vec![])
            }
            Err(e) => {
                // Not yet valid (e.g. not signed yet): keep waiting, but say why.
                tracing::warn!("{path} is not usable yet: {e:#}");
                Ok(vec![])
            }
        };
    }
    Err(InvalidRequest::new("source.pin or source.store_path: check needs one of them").into())
}
