//! One `seen-by` hop of the transport trace.

use serde::de::{Error as _, SeqAccess, Visitor};
use serde::ser::SerializeSeq as _;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// Most strings in one hop.
const MAX_PARTS: usize = 3;

/// A `seen-by` hop: (incoming NATS server, processing identity, outgoing NATS server).
///
/// choir and go-choria write a JSON array of three strings, e.g.
/// `["nats://nats1:4222","client.example.net","nats://nats1:4222"]`; either server may be an
/// empty string where a message starts or ends. The Ruby `mco` connector writes a pair
/// (`["<client identity>","nats://host:port"]`). A hop of one to three strings is accepted and
/// written back with as many strings as it came with; missing parts read as `""` (go-choria
/// pads a short hop the same way).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SeenByHop {
    parts: [String; MAX_PARTS],
    len: usize,
}

impl SeenByHop {
    /// Builds a hop from its three parts.
    pub fn new(
        incoming: impl Into<String>,
        processor: impl Into<String>,
        outgoing: impl Into<String>,
    ) -> Self {
        Self {
            parts: [incoming.into(), processor.into(), outgoing.into()],
            len: MAX_PARTS,
        }
    }

    /// A hop of one to three strings as received; `None` for any other count.
    pub fn from_parts(parts: Vec<String>) -> Option<Self> {
        let len = parts.len();
        if !(1..=MAX_PARTS).contains(&len) {
            return None;
        }
        let mut out: [String; MAX_PARTS] = Default::default();
        for (slot, part) in out.iter_mut().zip(parts) {
            *slot = part;
        }
        Some(Self { parts: out, len })
    }

    /// The strings as received (one to three).
    pub fn parts(&self) -> &[String] {
        self.parts.get(..self.len).unwrap_or(&self.parts)
    }

    /// The first string: the incoming end point (`""` if absent).
    pub fn incoming(&self) -> &str {
        &self.parts[0]
    }

    /// The second string: the processing identity (`""` if absent).
    pub fn processor(&self) -> &str {
        &self.parts[1]
    }

    /// The third string: the outgoing end point (`""` if absent).
    pub fn outgoing(&self) -> &str {
        &self.parts[2]
    }

    /// Replaces the incoming and outgoing end points (a complete triple afterwards).
    pub fn set_servers(&mut self, incoming: &str, outgoing: &str) {
        incoming.clone_into(&mut self.parts[0]);
        outgoing.clone_into(&mut self.parts[2]);
        self.len = MAX_PARTS;
    }
}

impl std::fmt::Display for SeenByHop {
    /// `in -> [processor] -> out` for a triple; a shorter hop's strings joined by ` -> `.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.len == MAX_PARTS {
            write!(
                f,
                "{} -> [{}] -> {}",
                self.incoming(),
                self.processor(),
                self.outgoing()
            )
        } else {
            f.write_str(&self.parts().join(" -> "))
        }
    }
}

impl Serialize for SeenByHop {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut seq = serializer.serialize_seq(Some(self.len))?;
        for part in self.parts() {
            seq.serialize_element(part)?;
        }
        seq.end()
    }
}

impl<'de> Deserialize<'de> for SeenByHop {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct HopVisitor;

        impl<'de> Visitor<'de> for HopVisitor {
            type Value = SeenByHop;

            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a seen-by hop of one to three strings")
            }

            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<SeenByHop, A::Error> {
                let mut parts: [String; MAX_PARTS] = Default::default();
                let mut len = 0;
                while let Some(part) = seq.next_element::<String>()? {
                    let Some(slot) = parts.get_mut(len) else {
                        return Err(A::Error::invalid_length(MAX_PARTS + 1, &self));
                    };
                    *slot = part;
                    len += 1;
                }
                if len == 0 {
                    return Err(A::Error::invalid_length(0, &self));
                }
                Ok(SeenByHop { parts, len })
            }
        }

        deserializer.deserialize_seq(HopVisitor)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn serialises_as_triple() {
        let hop = SeenByHop::new("nats://a:4222", "me", "nats://b:4222");
        let json = serde_json::to_string(&hop).unwrap();
        assert_eq!(json, r#"["nats://a:4222","me","nats://b:4222"]"#);
        assert_eq!(serde_json::from_str::<SeenByHop>(&json).unwrap(), hop);
        assert!(serde_json::from_str::<SeenByHop>(r#"["a","b","c","d"]"#).is_err());
        assert!(serde_json::from_str::<SeenByHop>("[]").is_err());
        assert!(serde_json::from_str::<SeenByHop>(r#"["a",1]"#).is_err());
    }

    #[test]
    fn short_hops_keep_their_length() {
        // What the Ruby mco connector writes: identity and server.
        let pair = r#"["client.example.net","nats://n1:4222"]"#;
        let hop: SeenByHop = serde_json::from_str(pair).unwrap();
        assert_eq!(hop.parts(), ["client.example.net", "nats://n1:4222"]);
        assert_eq!(hop.incoming(), "client.example.net");
        assert_eq!(hop.processor(), "nats://n1:4222");
        assert_eq!(hop.outgoing(), "");
        assert_eq!(serde_json::to_string(&hop).unwrap(), pair);
        let one: SeenByHop = serde_json::from_str(r#"["x"]"#).unwrap();
        assert_eq!(one.parts(), ["x"]);
        assert_eq!(serde_json::to_string(&one).unwrap(), r#"["x"]"#);
        assert_ne!(one, SeenByHop::new("x", "", ""));
        assert_eq!(SeenByHop::from_parts(vec![]), None);
    }
}
