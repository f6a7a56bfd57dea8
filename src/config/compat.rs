//! `compat`: whose conventions a replicator follows besides choir's own, on a replicator or
//! node-wide in `[node]` (a replicator's own setting wins).

use serde::Deserialize;

/// `compat = "choir" | "choria"`.
#[derive(Clone, Copy, Debug, Default, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum Compat {
    /// choir's headers, advisories and metrics only.
    #[default]
    Choir,
    /// Also the Choria Stream Replicator's: `Choria-SR-Source` on copies,
    /// `io.choria.sr.v2.age_advisory` advisories on the source network, heartbeats with a
    /// unix-timestamp body and `Choria-SR-Originator`, `choria_stream_replicator_*` metrics.
    Choria,
}
