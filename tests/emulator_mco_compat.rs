//! What Choria's own Ruby `mco` client (MCollective 2.12 with the choria plugin) sends and
//! expects, against emulated daemons behind a real nats-server: a `seen-by` hop of two
//! strings, every `rpcutil` action of go-choria's DDL, classic compound filters (and
//! go-choria's `expr` form) selecting exactly the right daemons with `choir ping -S`
//! agreeing, and a fleet that sends its facts as strings.
#![allow(clippy::unwrap_used, clippy::expect_used)]

#[path = "client/cli.rs"]
mod cli;
#[path = "emulator/client.rs"]
mod client;
mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use choir::actors::emulator::{DropReason, EmulatorMetrics, Fleet, FleetSpec};
use choir::actors::protocol::{
    encode_request, parse_select, subject, unix_now, Filter, NewRequest, RpcReply, SeenByHop,
    TransportHeaders, STATUS_ABORTED, STATUS_OK,
};
use client::TestClient;
use common::NatsServer;
use serde_json::{json, Value};

const WAIT: Duration = Duration::from_secs(30);
const LINGER: Duration = Duration::from_millis(300);

async fn fleet(server: &NatsServer, n: usize, edit: impl FnOnce(&mut FleetSpec)) -> Fleet {
    let mut spec = FleetSpec::new("emu", n, vec![server.url()]);
    spec.arbiters = std::num::NonZeroUsize::new(1);
    edit(&mut spec);
    let fleet = Fleet::start(spec, EmulatorMetrics::unregistered()).unwrap();
    assert!(
        fleet.wait_started(WAIT, |_| {}).await,
        "daemons did not start: {:?}",
        fleet.progress()
    );
    fleet
}

fn dropped(fleet: &Fleet, reason: DropReason) -> u64 {
    fleet.metrics().dropped_for(reason)
}

#[actix_rt::test]
async fn a_request_whose_seen_by_has_a_two_string_hop_is_answered() {
    let server = NatsServer::start();
    let fleet = fleet(&server, 2, |_| {}).await;
    let client = TestClient::connect(&server.url()).await;
    let ping = TestClient::request("discovery", "ping", Filter::default());
    let reply_to = TestClient::reply_subject(&ping);
    let mut headers = TransportHeaders::for_request(reply_to.clone(), "tester.example.net");
    // What the Ruby connector writes: its identity and its server, no third string.
    let pair = SeenByHop::from_parts(vec!["tester.example.net".into(), server.url()]).unwrap();
    headers.push_seen_by(pair.clone());
    let payload = encode_request(&ping, headers).unwrap();
    let sent = format!(r#"["tester.example.net","{}"]"#, server.url());
    assert!(String::from_utf8_lossy(&payload).contains(&sent));

    let replies = client
        .call_raw(
            &subject::node("mcollective", "emu-1"),
            &reply_to,
            payload,
            1,
            WAIT,
            LINGER,
        )
        .await;
    assert_eq!(replies.len(), 1, "the daemon answers");
    let (raw, reply) = &replies[0];
    assert_eq!(reply.body(), b"pong");
    let hops = &reply.transport.headers.seen_by;
    assert_eq!(hops.len(), 2, "{hops:?}");
    assert_eq!(hops[0], pair, "the client's hop comes back as it was sent");
    assert_eq!(hops[1].processor(), "emu-1");
    let raw = String::from_utf8_lossy(raw);
    assert!(raw.contains(&format!(r#""seen-by":[{sent},"#)), "{raw}");
    assert_eq!(dropped(&fleet, DropReason::Json), 0);
}

/// go-choria's rpcutil DDL (`internal/fs/ddl/cache/agent/rpcutil.json`): every action's
/// output names and types (`any` where the DDL gives no type).
fn ddl_outputs(action: &str) -> BTreeMap<&'static str, &'static str> {
    let outputs: &[(&str, &str)] = match action {
        "agent_inventory" => &[("agents", "array")],
        "collective_info" => &[("main_collective", "string"), ("collectives", "array")],
        "daemon_stats" => &[
            ("threads", "array"),
            ("agents", "array"),
            ("pid", "integer"),
            ("times", "hash"),
            ("validated", "integer"),
            ("unvalidated", "integer"),
            ("passed", "integer"),
            ("filtered", "integer"),
            ("starttime", "integer"),
            ("total", "integer"),
            ("replies", "integer"),
            ("configfile", "string"),
            ("version", "string"),
            ("ttlexpired", "integer"),
            ("events", "integer"),
        ],
        "get_config_item" => &[("item", "string"), ("value", "any")],
        "get_fact" => &[("fact", "string"), ("value", "any")],
        "get_facts" => &[("values", "hash")],
        "inventory" => &[
            ("agents", "array"),
            ("facts", "hash"),
            ("classes", "array"),
            ("version", "string"),
            ("main_collective", "string"),
            ("collectives", "array"),
            ("data_plugins", "array"),
            ("machines", "hash"),
            ("upgradable", "boolean"),
        ],
        "ping" => &[("pong", "number")],
        _ => &[],
    };
    outputs.iter().copied().collect()
}

fn has_type(value: &Value, ty: &str) -> bool {
    match ty {
        "array" => value.is_array(),
        "hash" => value.is_object(),
        "integer" => value.is_i64() || value.is_u64(),
        "number" => value.is_number(),
        "string" => value.is_string(),
        "boolean" => value.is_boolean(),
        _ => true,
    }
}

async fn rpcutil(client: &TestClient, identity: &str, action: &str, data: Value) -> RpcReply {
    let message = json!({"agent": "rpcutil", "action": action, "data": data}).to_string();
    let request = TestClient::request("rpcutil", &message, Filter::with_agent("rpcutil"));
    let replies = client
        .call(
            &subject::node("mcollective", identity),
            &request,
            1,
            WAIT,
            Duration::ZERO,
        )
        .await;
    assert_eq!(replies.len(), 1, "{action}: one reply");
    RpcReply::from_slice(replies[0].1.body()).unwrap()
}

#[actix_rt::test]
async fn every_rpcutil_action_answers_with_the_fields_of_the_ddl() {
    let server = NatsServer::start();
    let _fleet = fleet(&server, 3, |spec| {
        spec.agents = 2;
        spec.classes = vec!["web".into()];
        spec.facts.insert("country".into(), json!("mt"));
    })
    .await;
    let client = TestClient::connect(&server.url()).await;

    // What emu-0 sees before it is asked for its stats: one request filtered out, one
    // outside its TTL, one that is not JSON, one answered.
    let filtered = Filter {
        identity: vec!["emu-1".into()],
        ..Filter::default()
    };
    let not_me = TestClient::request("discovery", "ping", filtered);
    let replies = client
        .call(
            &subject::broadcast_agent("mcollective", "discovery"),
            &not_me,
            1,
            WAIT,
            Duration::ZERO,
        )
        .await;
    assert_eq!(replies.len(), 1);
    let expired = NewRequest {
        message: "ping".into(),
        senderid: "tester.example.net".into(),
        callerid: client::CALLER.into(),
        collective: "mcollective".into(),
        agent: "discovery".into(),
        time: Some(unix_now() - 3600),
        ..NewRequest::default()
    }
    .build()
    .unwrap();
    let node0 = subject::node("mcollective", "emu-0");
    let reply_to = TestClient::reply_subject(&expired);
    let payload = encode_request(
        &expired,
        TransportHeaders::for_request(reply_to.clone(), "tester.example.net"),
    )
    .unwrap();
    client
        .nats
        .publish(node0.clone(), payload.into())
        .await
        .unwrap();
    client
        .nats
        .publish(node0.clone(), "not json".into())
        .await
        .unwrap();
    let ping = rpcutil(&client, "emu-0", "ping", json!({})).await;
    assert_eq!(ping.statuscode, STATUS_OK);

    let inputs = [
        ("ping", json!({})),
        ("inventory", json!({})),
        ("agent_inventory", json!({})),
        ("collective_info", json!({})),
        ("daemon_stats", json!({})),
        ("get_fact", json!({"fact": "country"})),
        ("get_facts", json!({"facts": "country, instance,missing"})),
        ("get_config_item", json!({"item": "identity"})),
    ];
    let mut data = BTreeMap::new();
    for (action, input) in inputs {
        let reply = rpcutil(&client, "emu-0", action, input).await;
        assert_eq!(reply.statuscode, STATUS_OK, "{action}: {reply:?}");
        let fields = reply.data.as_object().unwrap();
        let expected = ddl_outputs(action);
        assert_eq!(
            fields.keys().map(String::as_str).collect::<BTreeSet<_>>(),
            expected.keys().copied().collect::<BTreeSet<_>>(),
            "{action}: the DDL's outputs"
        );
        for (name, ty) in &expected {
            assert!(
                has_type(&fields[*name], ty),
                "{action}.{name} is not {ty}: {fields:?}"
            );
        }
        data.insert(action, reply.data);
    }

    // daemon_stats counts what emu-0 saw, the stats request not yet included: the four
    // messages above and the ping, inventory, agent_inventory and collective_info calls.
    let stats = &data["daemon_stats"];
    assert_eq!(stats["total"], 8, "{stats}");
    assert_eq!(stats["validated"], 7, "{stats}");
    assert_eq!(stats["unvalidated"], 1, "{stats}");
    assert_eq!(stats["filtered"], 1, "{stats}");
    assert_eq!(stats["ttlexpired"], 1, "{stats}");
    assert_eq!(stats["passed"], 5, "{stats}");
    assert_eq!(stats["replies"], 5, "{stats}");
    assert_eq!(stats["pid"], std::process::id());

    // agent_inventory: every agent with a semantic version (what a playbook `uses` checks).
    let agents = data["agent_inventory"]["agents"].as_array().unwrap();
    let names: Vec<&str> = agents
        .iter()
        .map(|a| a["agent"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["discovery", "rpcutil", "emulated0", "emulated1"]);
    for agent in agents {
        let version = agent["version"].as_str().unwrap();
        assert_eq!(version.split('.').count(), 3, "{agent}");
        assert!(
            version.split('.').all(|p| p.parse::<u64>().is_ok()),
            "{agent}"
        );
        for key in ["name", "author", "license", "url", "description"] {
            assert!(agent[key].is_string(), "{key} of {agent}");
        }
        assert!(agent["timeout"].is_u64(), "{agent}");
    }
    assert_eq!(agents[2]["version"], "0.0.1");

    assert_eq!(data["collective_info"]["main_collective"], "mcollective");
    assert_eq!(data["get_fact"], json!({"fact": "country", "value": "mt"}));
    assert_eq!(
        data["get_facts"]["values"],
        json!({"country": "mt", "instance": 0, "missing": null})
    );
    assert_eq!(
        data["get_config_item"],
        json!({"item": "identity", "value": "emu-0"})
    );
    assert_eq!(data["inventory"]["classes"], json!(["web"]));

    // No data plugins, unknown config keys.
    let get_data = rpcutil(&client, "emu-0", "get_data", json!({"source": "sysctl"})).await;
    assert_eq!(get_data.statuscode, STATUS_ABORTED);
    let unknown = rpcutil(&client, "emu-0", "get_config_item", json!({"item": "x.y"})).await;
    assert_eq!(unknown.statuscode, STATUS_ABORTED);
}

/// The fleet of the filter test: twelve daemons, class `web`, facts `instance` and
/// `rack = r<instance>`.
fn expected(pick: impl Fn(usize) -> bool) -> BTreeSet<String> {
    (0..12)
        .filter(|i| pick(*i))
        .map(|i| format!("emu-{i}"))
        .collect()
}

/// The daemons that answer a discovery `ping` with `filter`: waits for `expected` replies,
/// then `LINGER` more for any extra one.
async fn discovered(client: &TestClient, filter: Filter, expected: usize) -> BTreeSet<String> {
    let ping = TestClient::request("discovery", "ping", filter);
    client
        .call(
            &subject::broadcast_agent("mcollective", "discovery"),
            &ping,
            expected,
            WAIT,
            LINGER,
        )
        .await
        .iter()
        .map(|(_, r)| r.reply.envelope.senderid.clone())
        .collect()
}

/// `choir ping <flag> <filter>`: stops once `expected` nodes answered (waits 2 s when none
/// should).
fn cli_ping(url: &str, flag: &str, filter: &str, expected: usize) -> BTreeSet<String> {
    let expect = expected.to_string();
    let mut args = vec!["ping", "--server", url, "--json", flag, filter];
    if expected == 0 {
        args.extend(["--timeout", "2s"]);
    } else {
        args.extend(["--timeout", "30s", "--expect", &expect]);
    }
    let out = cli::choir(&args, Duration::from_secs(60));
    let json: Value = serde_json::from_str(&out.stdout)
        .unwrap_or_else(|e| panic!("{e}: {} {}", out.stdout, out.stderr));
    json["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| n["identity"].as_str().unwrap().to_owned())
        .collect()
}

#[actix_rt::test]
async fn classic_compound_filters_select_exactly_the_right_daemons_and_choir_ping_agrees() {
    let server = NatsServer::start();
    let fleet = fleet(&server, 12, |spec| {
        spec.classes = vec!["web".into()];
        spec.facts.insert("rack".into(), json!("r{instance}"));
    })
    .await;
    let client = TestClient::connect(&server.url()).await;
    let cases: Vec<(&str, BTreeSet<String>)> = vec![
        ("instance=7 or instance=9", expected(|i| i == 7 || i == 9)),
        (
            "not (instance<3 or instance>=10)",
            expected(|i| (3..10).contains(&i)),
        ),
        (
            "rack=~/^r1/ and not identity=emu-1",
            expected(|i| i == 10 || i == 11),
        ),
        (
            "(instance>=2 and instance<=4) or (web and identity=/^emu-1[01]$/)",
            expected(|i| (2..=4).contains(&i) || i >= 10),
        ),
        (
            "rpcutil and not /^nginx/ and instance!=0",
            expected(|i| i != 0),
        ),
        ("nginx or rack=/^r5$/", expected(|i| i == 5)),
        ("! web", expected(|_| false)),
    ];
    for (select, want) in &cases {
        let filter = Filter {
            compound: vec![parse_select(select).unwrap()],
            ..Filter::default()
        };
        assert_eq!(
            &discovered(&client, filter, want.len()).await,
            want,
            "-S {select:?}"
        );
        assert_eq!(
            &cli_ping(&server.url(), "-S", select, want.len()),
            want,
            "choir ping -S {select:?}"
        );
    }

    // go-choria's expr form, through the same evaluator.
    let expr = "fact('instance') > 9 or identity == 'emu-0' or with('rack=r5')";
    assert_eq!(
        cli_ping(&server.url(), "--expr", expr, 4),
        expected(|i| i == 0 || i == 5 || i >= 10)
    );

    // A data plugin function: no daemon matches, each one counts it.
    let before = dropped(&fleet, DropReason::DataPlugin);
    let plugin = "sysctl('kernel.x').value=1 or instance=1";
    assert_eq!(cli_ping(&server.url(), "-S", plugin, 0), BTreeSet::new());
    assert!(
        common::poll_until(WAIT, || dropped(&fleet, DropReason::DataPlugin)
            == before + 12),
        "data_plugin drops: {}",
        dropped(&fleet, DropReason::DataPlugin)
    );
}

#[actix_rt::test]
async fn a_string_facts_fleet_returns_strings() {
    let server = NatsServer::start();
    let _fleet = fleet(&server, 2, |spec| {
        spec.string_facts = true;
        spec.facts.insert("cores".into(), json!(4));
        spec.facts.insert("virtual".into(), json!(true));
    })
    .await;
    let client = TestClient::connect(&server.url()).await;
    let inventory = rpcutil(&client, "emu-1", "inventory", json!({})).await;
    let facts = inventory.data["facts"].as_object().unwrap();
    assert_eq!(facts["cores"], "4");
    assert_eq!(facts["virtual"], "true");
    assert_eq!(facts["instance"], "1");
    assert!(facts.values().all(Value::is_string), "{facts:?}");
    let fact = rpcutil(&client, "emu-1", "get_fact", json!({"fact": "instance"})).await;
    assert_eq!(fact.data["value"], "1");
    // Filters still compare numerically.
    let filter = Filter {
        compound: vec![parse_select("instance>=1 and cores<5").unwrap()],
        ..Filter::default()
    };
    let ping = TestClient::request("discovery", "ping", filter);
    let replies = client
        .call(
            &subject::broadcast_agent("mcollective", "discovery"),
            &ping,
            1,
            WAIT,
            LINGER,
        )
        .await;
    let senders: Vec<_> = replies
        .iter()
        .map(|(_, r)| r.reply.envelope.senderid.as_str())
        .collect();
    assert_eq!(senders, ["emu-1"]);
}

#[actix_rt::test]
async fn generate_without_size_returns_the_ddl_default_of_twenty_characters() {
    let server = NatsServer::start();
    let _fleet = fleet(&server, 1, |_| {}).await;
    let client = TestClient::connect(&server.url()).await;
    // What the Ruby client sends when `size` is left out: no `size`, `process_results`.
    let request = TestClient::request(
        "emulated0",
        r#"{"agent":"emulated0","action":"generate","caller":"choria=tester.mcollective","data":{"process_results":true}}"#,
        Filter::with_agent("emulated0"),
    );
    let replies = client
        .call(
            &subject::node("mcollective", "emu-0"),
            &request,
            1,
            WAIT,
            Duration::ZERO,
        )
        .await;
    assert_eq!(replies.len(), 1);
    let reply = RpcReply::from_slice(replies[0].1.body()).unwrap();
    assert_eq!(reply.statuscode, STATUS_OK, "{reply:?}");
    assert_eq!(reply.data["message"].as_str().unwrap().len(), 20);
}
