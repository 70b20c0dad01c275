//! `uses` / `with` expansion at load time (SPEC §9): the expanded steps, and every error a user
//! can make, snapshotted as the diagnostics `meeseeks validate` prints.

mod common;

use std::path::Path;

use meeseeks::load::{LoadOptions, Loaded, load};
use meeseeks::mask::Masker;
use meeseeks::model::{Model, Step, fmt_duration};
use meeseeks::template::{describe_check, describe_step};

const GRAPH: &str = r#"
[vars]
dr_site = "dc2"

[services.checkout]
tier = 0
rto = "30m"

[services.orders-db]
tier = 0
rto = "20m"
"#;

/// A DR directory in a temp dir: graph.toml plus `files` (path relative to the directory).
fn dr(files: &[(&str, &str)]) -> tempfile::TempDir {
    common::dr(&[&[("graph.toml", GRAPH)][..], files].concat())
}

fn loaded(d: &Path) -> Loaded {
    load(d, &LoadOptions::default())
}

fn model(d: &Path) -> Model {
    let l = loaded(d);
    assert!(
        !l.diags.has_errors(),
        "unexpected errors:\n{}",
        l.diags.render(false)
    );
    l.model.unwrap()
}

/// Diagnostics as `validate` prints them, with the temp dir replaced by `DIR`.
fn diags(d: &Path) -> String {
    let l = loaded(d);
    let prefix = format!("{}/", d.display());
    l.diags.render(false).replace(&prefix, "DIR/")
}

fn show_step(s: &Step) -> String {
    let mut out = format!("{}  [{}]", s.name, describe_step(&s.kind, &Masker::new()));
    if let Some(t) = s.timeout {
        out.push_str(&format!(" timeout={}", fmt_duration(t)));
    }
    if s.retries > 0 {
        out.push_str(&format!(
            " retries={} retry_delay={}",
            s.retries,
            fmt_duration(s.retry_delay)
        ));
    }
    if let Some(e) = s.estimate {
        out.push_str(&format!(" estimate={}", fmt_duration(e)));
    }
    if let Some(m) = s.only {
        out.push_str(&format!(" only={m}"));
    }
    if s.optional {
        out.push_str(" optional");
    }
    if !s.idempotent {
        out.push_str(" not-idempotent");
    }
    out.push_str(&format!(" line={}", s.line));
    out
}

/// Steps and checks of one service's playbook, one per line.
fn show(m: &Model, svc: &str) -> String {
    let pb = m.services[m.id(svc).unwrap()].playbook.as_ref().unwrap();
    let mut out = String::new();
    for s in &pb.steps {
        out.push_str(&format!("step  {}\n", show_step(s)));
    }
    for c in &pb.checks {
        out.push_str(&format!(
            "check {}  [{}] interval={} timeout={} healthy_after={}\n",
            c.name,
            describe_check(&c.kind, &Masker::new()),
            fmt_duration(c.interval),
            fmt_duration(c.timeout),
            c.healthy_after
        ));
    }
    for s in &pb.rollback {
        out.push_str(&format!("rollback {}\n", show_step(s)));
    }
    out
}

const ORDERS_DB: &str = r#"
[[steps]]
name = "promote"
cmd = ["true"]
"#;

#[test]
fn expands_steps_and_checks_in_place() {
    let d = dr(&[
        (
            "playbooks/checkout.toml",
            r#"
[vars]
replicas = 6

[[steps]]
name = "announce"
run = "echo failing over {{ service }}"

[[steps]]
uses = "k8s/scale"
with = { deployment = "checkout", replicas = 6, context = "{{ dr_site }}" }

[[steps]]
name = "web"
uses = "http/wait-healthy"
with = { url = "http://checkout.{{ dr_site }}/healthz", retries = 3, retry_delay = "200ms" }

[[steps]]
name = "grpc"
uses = "probe"
with = { port = 9090, n = 3, every = "1s" }

[[checks]]
name = "port"
tcp = "127.0.0.1:8443"

[[rollback]]
uses = "k8s/scale"
with = { deployment = "checkout", replicas = 0, context = "{{ dr_site }}" }
"#,
        ),
        (
            "playbooks/_templates/probe.toml",
            r#"
description = "A check-only template: its check joins the service's checks"

[params.port]
required = true
type = "integer"
doc = "port"

[params.n]
default = 1
type = "integer"
doc = "consecutive successes"

[params.every]
default = "2s"
type = "duration"
doc = "interval"

[[checks]]
name = "port open"
tcp = "127.0.0.1:{{ with.port }}"
healthy_after = "{{ with.n }}"
interval = "{{ with.every }}"
"#,
        ),
        ("playbooks/orders-db.toml", ORDERS_DB),
    ]);
    let m = model(d.path());
    insta::assert_snapshot!("expanded_checkout", show(&m, "checkout"));
}

#[test]
fn uses_step_settings_apply_unless_the_template_sets_its_own() {
    let d = dr(&[
        (
            "playbooks/checkout.toml",
            r#"
[[steps]]
name = "scale up"
uses = "k8s/scale"
with = { deployment = "checkout", replicas = 3, context = "dc2", namespace = "shop", timeout = "90s" }
timeout = "3m"
retries = 4
retry_delay = "1s"
only = "failover"
optional = true
idempotent = false
estimate = "2m"
"#,
        ),
        ("playbooks/orders-db.toml", ORDERS_DB),
    ]);
    let m = model(d.path());
    // "scale" sets timeout and retries itself; "wait for rollout" sets its timeout from the
    // template's `timeout` parameter. `estimate` covers the whole group.
    insta::assert_snapshot!("overrides", show(&m, "checkout"));
}

#[test]
fn secrets_in_defaults_are_tracked_for_masking() {
    let d = dr(&[
        (
            "playbooks/checkout.toml",
            r#"
[[steps]]
uses = "dns/switch-record"
with = { url = "https://dns.example/zones/z/records/r", record = "shop.example.com", content = "203.0.113.10" }

[[steps]]
uses = "lb/enable-pool"
with = { url = "https://lb.example/pools/dr", token = "{{ secret.MY_LB_TOKEN }}" }
"#,
        ),
        ("playbooks/orders-db.toml", ORDERS_DB),
    ]);
    let m = model(d.path());
    let pb = m.services[m.id("checkout").unwrap()]
        .playbook
        .as_ref()
        .unwrap();
    let secrets: Vec<&str> = pb.secrets.iter().map(String::as_str).collect();
    assert_eq!(secrets, ["DNS_API_TOKEN", "MY_LB_TOKEN"]);
    insta::assert_snapshot!("http_templates", show(&m, "checkout"));
}

#[test]
fn local_templates_shadow_the_library() {
    let d = dr(&[
        (
            "playbooks/_templates/k8s/scale.toml",
            r#"
description = "Our own scaling, through a wrapper"

[params.app]
required = true
doc = "app name"

[[steps]]
name = "scale"
cmd = ["./bin/scale", "{{ with.app }}", "{{ dr_site }}"]
"#,
        ),
        (
            "playbooks/checkout.toml",
            r#"
[[steps]]
uses = "k8s/scale"
with = { app = "checkout" }
"#,
        ),
        ("playbooks/orders-db.toml", ORDERS_DB),
    ]);
    let m = model(d.path());
    assert_eq!(
        show(&m, "checkout"),
        "step  k8s/scale/scale  [cmd: ./bin/scale checkout '{{ dr_site }}'] line=2\n"
    );
    let pb = m.services[m.id("checkout").unwrap()]
        .playbook
        .as_ref()
        .unwrap();
    let used: Vec<_> = pb.templates.iter().collect();
    assert_eq!(
        used,
        [&d.path().join("playbooks/_templates/k8s/scale.toml")]
    );
    // `_templates/` is not mistaken for a service's playbook.
    assert!(!diags(d.path()).contains("unknown-playbook"));
}

#[test]
fn parameter_errors_point_at_the_with_entries() {
    let d = dr(&[
        (
            "playbooks/checkout.toml",
            r#"
[[steps]]
uses = "k8s/scal"
with = { deployment = "checkout", replicas = 6, context = "{{ dr_sit }}" }

[[steps]]
name = "scale"
uses = "k8s/scale"
with = { deployment = "checkout", replica = 6 }

[[steps]]
name = "typed"
uses = "k8s/scale"
with = { deployment = 5, replicas = "six", context = "dc2", timeout = "5 parsecs" }

[[steps]]
name = "health"
uses = "http/wait-healthy"
with = { url = "http://x/healthz", status = [200], retries = true }

[[steps]]
name = "mixed"
uses = "systemd/start"
with = { unit = "nginx.service" }
run = "echo hi"
retires = 2
"#,
        ),
        ("playbooks/orders-db.toml", ORDERS_DB),
    ]);
    insta::assert_snapshot!("param_errors", diags(d.path()));
}

#[test]
fn errors_inside_a_template_point_into_the_template_once() {
    let bad = r#"
description = "broken on purpose"

[params.app]
required = true
doc = "app name"

[params.count]
default = 1
type = "integer"
doc = "how many"

[[steps]]
name = "filtered"
run = "echo {{ with.app | upper }}"

[[steps]]
name = "typo"
run = "echo {{ with.ap }} {{ with.count }}"
"#;
    let d = dr(&[
        ("playbooks/_templates/bad.toml", bad),
        (
            "playbooks/_templates/nodoc.toml",
            "description = \"x\"\n[params.a]\nrequired = true\n[params.b]\ndoc = \"b\"\n[[steps]]\nname = \"s\"\nrun = \"true\"\n",
        ),
        (
            "playbooks/checkout.toml",
            r#"
[[steps]]
uses = "bad"
with = { app = "checkout" }

[[steps]]
name = "again"
uses = "bad"
with = { app = "checkout" }

[[steps]]
uses = "nodoc"
"#,
        ),
        (
            "playbooks/orders-db.toml",
            r#"
[[steps]]
name = "with outside a template"
run = "echo {{ with.app }}"
"#,
        ),
    ]);
    insta::assert_snapshot!("template_errors", diags(d.path()));
}

#[test]
fn two_unnamed_uses_of_one_template_collide() {
    let d = dr(&[
        (
            "playbooks/checkout.toml",
            r#"
[[steps]]
uses = "systemd/start"
with = { unit = "a.service" }

[[steps]]
uses = "systemd/start"
with = { unit = "b.service" }
"#,
        ),
        ("playbooks/orders-db.toml", ORDERS_DB),
    ]);
    let out = diags(d.path());
    assert!(out.contains("duplicate step name `systemd/start`"), "{out}");
    assert_eq!(out.matches("error[").count(), 1, "{out}");

    let d = dr(&[
        (
            "playbooks/checkout.toml",
            r#"
[[steps]]
uses = "systemd/start"
with = { unit = "a.service" }

[[steps]]
name = "systemd/start/start"
run = "true"
"#,
        ),
        ("playbooks/orders-db.toml", ORDERS_DB),
    ]);
    let out = diags(d.path());
    assert!(
        out.contains("duplicate step name `systemd/start/start`"),
        "{out}"
    );
}

/// Every shipped template loads and expands with placeholder values for its required
/// parameters: the library cannot ship a template that fails validation.
#[test]
fn every_shipped_template_expands() {
    let mut diags = meeseeks::load::Diagnostics::default();
    for (name, _) in meeseeks::load::library::builtin() {
        let def = meeseeks::load::library::load(None, name, &mut diags)
            .unwrap()
            .unwrap_or_else(|| panic!("{name}: {}", diags.render(false)));
        assert!(!def.description.trim().is_empty(), "{name}");
        let values: Vec<(String, String)> = def
            .params
            .iter()
            .filter(|p| p.required)
            .map(|p| {
                let v = match p.ty {
                    Some(meeseeks::load::library::ParamType::Integer) => "3".to_string(),
                    Some(meeseeks::load::library::ParamType::Bool) => "true".to_string(),
                    Some(meeseeks::load::library::ParamType::Duration) => "\"1m\"".to_string(),
                    _ if p.name == "url" => "\"http://127.0.0.1:1/x\"".to_string(),
                    _ => "\"x\"".to_string(),
                };
                (p.name.clone(), v)
            })
            .collect();
        let snippet = meeseeks::load::library::usage_snippet(&def, &values);
        let d = dr(&[
            ("playbooks/checkout.toml", &snippet),
            ("playbooks/orders-db.toml", ORDERS_DB),
        ]);
        let m = model(d.path());
        let pb = m.services[m.id("checkout").unwrap()]
            .playbook
            .as_ref()
            .unwrap();
        assert!(
            !pb.steps.is_empty() || !pb.checks.is_empty(),
            "{name} expands to nothing"
        );
    }
    assert!(diags.is_empty(), "{}", diags.render(false));
    assert!(meeseeks::load::library::builtin().len() >= 10);
}
