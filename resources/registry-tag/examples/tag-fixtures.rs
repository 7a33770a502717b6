//! Serves the Docker Hub and distribution-API fixtures with many tags, for
//! `benches/registry-tag.sh`: prints the Hub `uri`, the registry `uri` and the registry host
//! (one per line), then serves until stdin closes.
//!
//! `cargo run --example tag-fixtures -p registry-tag-resource -- 10000`

use std::io::{Read, Write};

use testbed::fixtures::distribution::{DistributionFixture, Faults};
use testbed::fixtures::hub::HubFixture;

fn main() -> anyhow::Result<()> {
    let count: usize = std::env::args()
        .nth(1)
        .map(|n| n.parse())
        .transpose()?
        .unwrap_or(10_000);
    let tags: Vec<String> = (0..count)
        .map(|i| format!("{}.{}.{}", i / 1000, i / 10 % 100, i % 10))
        .collect();
    let hub = HubFixture::start();
    hub.push_tags("library/app", &tags);
    let registry = DistributionFixture::start();
    // One manifest shared by all tags keeps start-up fast; listing is what is measured.
    let manifest = br#"{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","layers":[]}"#;
    for tag in &tags {
        registry.add_manifest(
            "team/app",
            Some(tag),
            testbed::fixtures::distribution::OCI_MANIFEST,
            manifest.to_vec(),
        );
    }
    // Clients that send no `n` (skopeo) get 100 per page too, like a capped registry.
    registry.set_faults(Faults {
        default_page_size: Some(100),
        ..Faults::default()
    });
    let mut out = std::io::stdout().lock();
    writeln!(out, "{}", hub.repository_uri("library/app"))?;
    writeln!(out, "{}/v2/team/app", registry.base_url())?;
    writeln!(out, "{}", registry.host())?;
    out.flush()?;
    drop(out);
    let mut sink = Vec::new();
    std::io::stdin().read_to_end(&mut sink)?;
    Ok(())
}
