//! The `Choria-SR-Source` header the Choria Stream Replicator puts on every copy:
//! `<stream> <seq> <site> <name> <ts_ms>` (source stream, source sequence, the SR's top-level
//! `name`, the per-stream `name`, the source's store time in Unix milliseconds). The SR's
//! target-initiated mode resumes from it, and operators read copy delays off it.

use std::time::SystemTime;

use async_nats::{HeaderMap, HeaderName};

use super::super::envelope::push_digits;
use super::super::sampling::unix_millis;
use super::super::settings::ChoriaCompat;

/// The header's name.
pub const SR_SOURCE: &str = "Choria-SR-Source";

/// The header's value for source message `seq` of `stream`, stored at `published`, copied by
/// replicator `name` of node `site`.
pub fn value(stream: &str, seq: u64, site: &str, name: &str, published: SystemTime) -> String {
    let mut out = String::with_capacity(stream.len() + site.len() + name.len() + 40);
    out.push_str(stream);
    out.push(' ');
    push_digits(&mut out, seq, 1);
    out.push(' ');
    out.push_str(site);
    out.push(' ');
    out.push_str(name);
    out.push(' ');
    push_digits(&mut out, unix_millis(published), 1);
    out
}

/// Adds the header to `headers` when `compat` is on.
pub fn add(
    headers: &mut HeaderMap,
    compat: Option<&ChoriaCompat>,
    name: &str,
    stream: &str,
    seq: u64,
    published: SystemTime,
) {
    if let Some(compat) = compat {
        headers.insert(
            HeaderName::from_static(SR_SOURCE),
            value(stream, seq, &compat.site, name, published),
        );
    }
}

/// A parsed `Choria-SR-Source` value.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SrSource {
    /// Source stream.
    pub stream: String,
    /// Source stream sequence.
    pub seq: u64,
    /// The SR's top-level name (choir: the node name).
    pub site: String,
    /// The per-stream config name (choir: the replicator name).
    pub name: String,
    /// Source store time, Unix milliseconds.
    pub millis: u64,
}

impl SrSource {
    /// Parses a header value: exactly five space-separated parts, the SR's rule.
    pub fn parse(value: &str) -> Option<Self> {
        let parts: Vec<&str> = value.split(' ').collect();
        let [stream, seq, site, name, millis] = parts.as_slice() else {
            return None;
        };
        Some(Self {
            stream: (*stream).to_owned(),
            seq: seq.parse().ok()?,
            site: (*site).to_owned(),
            name: (*name).to_owned(),
            millis: millis.parse().ok()?,
        })
    }
}

#[cfg(test)]
mod tests {
    use std::time::{Duration, UNIX_EPOCH};

    use super::*;

    #[test]
    fn the_value_has_the_five_parts_of_the_sr() {
        let at = UNIX_EPOCH + Duration::from_millis(1_673_433_286_805);
        let v = value("CHORIA_REGISTRATION", 10_631, "US-EAST-1", "PARTITION1", at);
        assert_eq!(
            v,
            "CHORIA_REGISTRATION 10631 US-EAST-1 PARTITION1 1673433286805"
        );
        assert_eq!(
            SrSource::parse(&v),
            Some(SrSource {
                stream: "CHORIA_REGISTRATION".into(),
                seq: 10_631,
                site: "US-EAST-1".into(),
                name: "PARTITION1".into(),
                millis: 1_673_433_286_805,
            })
        );
    }

    #[test]
    fn only_with_compat() {
        let mut h = HeaderMap::new();
        add(&mut h, None, "r", "S", 1, UNIX_EPOCH);
        assert!(h.get(SR_SOURCE).is_none());
        let compat = ChoriaCompat {
            site: "site".into(),
        };
        add(&mut h, Some(&compat), "r", "S", 1, UNIX_EPOCH);
        assert_eq!(h.get(SR_SOURCE).unwrap().as_str(), "S 1 site r 0");
    }

    #[test]
    fn garbage_is_none() {
        assert_eq!(SrSource::parse("a 1 b c"), None);
        assert_eq!(SrSource::parse("a x b c 1"), None);
        assert_eq!(SrSource::parse("a 1 b c 1 extra"), None);
    }
}
