//! Discovery node sets: the set's filters as a wire [`Filter`], and a broadcast discovery
//! through the playbook's client.

use std::time::Duration;

use crate::client::Discovery;
use crate::error_chain::Chain;
use crate::playbook::client::PlaybookClient;
use crate::playbook::spec::NodeSetSpec;
use crate::protocol::{FactFilter, Filter};

/// Parses `fact<op>value` (`=` means `==`), e.g. `country=mt`, `cores>=4`, `os=~/linux/`.
pub fn parse_fact(text: &str) -> Result<FactFilter, String> {
    FactFilter::parse_expression(text).map_err(str::to_owned)
}

/// The wire filter of a discovery set: agents, identities, classes, facts and compound.
pub fn filter(spec: &NodeSetSpec) -> Result<Filter, String> {
    let mut filter = Filter {
        agent: spec.agents.clone(),
        identity: spec.identities.clone(),
        cf_class: spec.classes.clone(),
        ..Filter::default()
    };
    for fact in &spec.facts {
        filter
            .fact
            .push(parse_fact(fact).map_err(|e| format!("fact {fact:?}: {e}"))?);
    }
    if let Some(compound) = &spec.compound {
        filter
            .compound
            .push(vec![serde_json::json!({ "expr": compound })]);
    }
    Ok(filter)
}

/// Discovers the nodes matching `spec`, sorted; waits the set's timeout (or the client's).
pub async fn discover(
    spec: &NodeSetSpec,
    client: &PlaybookClient,
) -> Result<(Vec<String>, Duration), String> {
    let filter = filter(spec)?;
    let timeout = spec.timeout.unwrap_or(client.settings().discovery_timeout);
    let connected = client.get().await?;
    let found = connected
        .discover(&Discovery {
            filter,
            timeout,
            expect: None,
            keep_bodies: false,
        })
        .await
        .map_err(|e| Chain(&e).to_string())?;
    Ok((found.senders(), timeout))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn facts() {
        assert_eq!(
            parse_fact("country=mt").unwrap(),
            FactFilter::new("country", "==", "mt")
        );
        assert_eq!(
            parse_fact("cores>=4").unwrap(),
            FactFilter::new("cores", ">=", "4")
        );
        assert_eq!(
            parse_fact("os=~/lin/").unwrap(),
            FactFilter::new("os", "=~", "/lin/")
        );
        assert!(parse_fact("nothing").is_err());
        assert!(parse_fact("=x").is_err());
    }

    #[test]
    fn set_to_filter() {
        let spec = NodeSetSpec {
            kind: "discovery".into(),
            agents: vec!["emulated0".into()],
            facts: vec!["instance<5".into()],
            classes: vec!["web".into()],
            identities: vec!["/^emu-/".into()],
            compound: Some("country=mt".into()),
            ..NodeSetSpec::default()
        };
        let f = filter(&spec).unwrap();
        assert_eq!(f.agent, ["emulated0"]);
        assert_eq!(f.fact, [FactFilter::new("instance", "<", "5")]);
        assert_eq!(f.cf_class, ["web"]);
        assert_eq!(f.identity, ["/^emu-/"]);
        assert_eq!(f.compound.len(), 1);
    }
}
