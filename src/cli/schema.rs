//! `meeseeks schema graph|playbook`: JSON Schemas (draft 2020-12) of graph.toml (and its
//! fragments) and of playbooks, for editors with a TOML language server (taplo, Even Better
//! TOML): keys completed, typos and wrong types flagged as you type. The key lists and
//! enumerations come from the loader's own lists where it has them, so the schema follows it.
//!
//! The loader stays the authority (it also checks what a schema cannot: unknown services,
//! cycles, template variables); the schema is there to catch typos before it runs.

use clap::{Args, ValueEnum};
use serde_json::{Value, json};

use super::Global;
use crate::error::Result;

#[derive(ValueEnum, Debug, Clone, Copy, PartialEq, Eq)]
pub enum SchemaKind {
    /// graph.toml and its fragments.
    Graph,
    /// playbooks/<service>.toml.
    Playbook,
}

#[derive(Args, Debug)]
pub struct SchemaArgs {
    pub kind: SchemaKind,
    /// Write the schema to FILE instead of stdout.
    #[arg(long, value_name = "FILE")]
    pub out: Option<std::path::PathBuf>,
}

pub fn run(_g: &Global, a: &SchemaArgs) -> Result<i32> {
    let schema = match a.kind {
        SchemaKind::Graph => graph(),
        SchemaKind::Playbook => playbook(),
    };
    let mut text = serde_json::to_string_pretty(&schema).unwrap_or_default();
    text.push('\n');
    super::emit(a.out.as_deref(), &text)?;
    Ok(crate::error::exit::OK)
}

/// Humantime durations (`"90s"`, `"1h30m"`, `"250ms"`), or a template (`"{{ x }}"`) where the
/// loader renders one.
fn duration() -> Value {
    json!({
        "type": "string",
        "pattern": "^(\\{\\{.*\\}\\}|\\s*([0-9]+(\\.[0-9]+)?\\s*[a-zA-Zµ]+\\s*)+)$",
        "description": "A duration: \"90s\", \"5m\", \"1h30m\", \"250ms\"."
    })
}

/// Exactly one of `keys` (a step's kind, a check's kind).
fn exactly_one(keys: &[&str]) -> Value {
    Value::Array(keys.iter().map(|k| json!({ "required": [k] })).collect())
}

fn status() -> Value {
    let code = json!({ "type": "integer", "minimum": 100, "maximum": 599 });
    json!({
        "description": "Accepted HTTP status(es); any 2xx when absent.",
        "anyOf": [code, { "type": "array", "items": code, "minItems": 1 }]
    })
}

fn http() -> Value {
    let methods: Vec<String> = ["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"]
        .iter()
        .flat_map(|m| [m.to_string(), m.to_ascii_lowercase()])
        .collect();
    json!({
        "type": "object",
        "additionalProperties": false,
        "required": ["url"],
        "properties": {
            "method": { "enum": methods },
            "url": { "type": "string" },
            "headers": { "type": "object", "additionalProperties": { "type": "string" } },
            "body": { "type": "string" },
            "expect_status": status(),
            "expect_body": { "type": "string", "description": "A substring the body must contain." }
        }
    })
}

/// The JSON Schema of graph.toml (and of its fragments).
pub fn graph() -> Value {
    let service = json!({
        "type": "object",
        "additionalProperties": false,
        "required": ["tier"],
        "properties": {
            "tier": { "type": "integer", "minimum": 0, "maximum": 100, "description": "0 = most critical." },
            "rto": duration(),
            "rpo": duration(),
            "stateful": { "type": "boolean" },
            "backup": {
                "type": "object",
                "additionalProperties": false,
                "required": ["schedule"],
                "properties": {
                    "schedule": duration(),
                    "retention": duration(),
                    "check": { "type": "string", "description": "A read-only command proving the newest backup is recent." }
                }
            },
            "owner": { "type": "string" },
            "tags": { "type": "object", "additionalProperties": { "type": "string" } },
            "depends_on": { "type": "array", "items": { "type": "string" }, "uniqueItems": true, "description": "Essential dependencies: recovered before this service." },
            "soft_depends_on": { "type": "array", "items": { "type": "string" }, "uniqueItems": true, "description": "Optional dependencies: it works degraded without them." },
            "watch": { "type": "boolean", "description": "`meeseeks diff` alerts when new services depend on it." }
        }
    });
    json!({
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "$id": "urn:meeseeks:schema:graph:v1",
        "title": "meeseeks graph.toml",
        "description": "The service graph of a meeseeks DR directory (graph.toml or a fragment it includes).",
        "type": "object",
        "additionalProperties": false,
        "properties": {
            "include": { "type": "array", "items": { "type": "string" }, "description": "Globs of graph fragments, relative to the DR directory." },
            "defaults": {
                "type": "object",
                "additionalProperties": false,
                "properties": {
                    "rto": duration(),
                    "parallel": { "type": "integer", "minimum": 1, "maximum": 100000 },
                    "estimate": duration()
                }
            },
            "vars": { "type": "object", "description": "Template variables visible to every playbook." },
            "notify": {
                "type": "array",
                "items": {
                    "type": "object",
                    "additionalProperties": false,
                    "required": ["url"],
                    "properties": {
                        "url": {
                            "type": "string",
                            "description": "webhook URL; may use {{ secret.NAME }}, {{ env.NAME }}, graph [vars], run_id, mode",
                            "pattern": "^(https?://|\\{\\{)"
                        },
                        "headers": {
                            "type": "object",
                            "description": "HTTP headers (templates like the URL), e.g. Authorization = \"Bearer {{ secret.HOOK_TOKEN }}\"",
                            "additionalProperties": { "type": "string" }
                        },
                        "events": { "type": "array", "items": { "enum": crate::load::notify_events().collect::<Vec<_>>() } },
                        "format": { "enum": ["json", "slack"] }
                    }
                }
            },
            "state": {
                "type": "object",
                "additionalProperties": false,
                "properties": {
                    "store": { "type": "string", "description": "Run store URL, e.g. etcd://host:2379/meeseeks (default: files in DIR/.meeseeks)." }
                }
            },
            "services": {
                "type": "object",
                "propertyNames": { "pattern": "^[A-Za-z0-9_-][A-Za-z0-9._-]{0,127}$" },
                "additionalProperties": { "$ref": "#/$defs/service" }
            }
        },
        "$defs": { "service": service }
    })
}

/// The JSON Schema of a playbook.
pub fn playbook() -> Value {
    let common = json!({
        "name": { "type": "string", "description": "Unique in the playbook: identifies the step on resume." },
        "timeout": duration(),
        "retries": { "type": "integer", "minimum": 0 },
        "retry_delay": duration(),
        "estimate": duration(),
        "only": { "enum": ["failover", "drill"] },
        "optional": { "type": "boolean" },
        "idempotent": { "type": "boolean" },
        "preflight": { "type": "boolean", "description": "false: `meeseeks preflight` does not probe it." }
    });
    let mut step_props = common.as_object().cloned().unwrap_or_default();
    for (k, v) in [
        (
            "run",
            json!({ "type": "string", "minLength": 1, "description": "A shell command line (/bin/sh -c)." }),
        ),
        (
            "cmd",
            json!({ "type": "array", "items": { "type": "string" }, "minItems": 1, "description": "argv, no shell." }),
        ),
        ("http", http()),
        (
            "tcp",
            json!({ "type": "string", "description": "host:port; succeeds when a connection is established." }),
        ),
        ("wait", duration()),
        (
            "manual",
            json!({ "type": "string", "description": "What the operator must do and confirm." }),
        ),
        (
            "uses",
            json!({ "type": "string", "description": "A template: playbooks/_templates/<name>.toml or the shipped library (`meeseeks templates`)." }),
        ),
        (
            "with",
            json!({ "type": "object", "description": "The template's parameters." }),
        ),
    ] {
        step_props.insert(k.into(), v);
    }
    let step = json!({
        "type": "object",
        "additionalProperties": false,
        "properties": step_props,
        "oneOf": exactly_one(&["run", "cmd", "http", "tcp", "wait", "manual", "uses"])
    });
    let check = json!({
        "type": "object",
        "additionalProperties": false,
        "properties": {
            "name": { "type": "string" },
            "http": http(),
            "tcp": { "type": "string" },
            "run": { "type": "string", "minLength": 1 },
            "cmd": { "type": "array", "items": { "type": "string" }, "minItems": 1 },
            "interval": duration(),
            "timeout": duration(),
            "healthy_after": { "type": "integer", "minimum": 1 },
            "preflight": { "type": "boolean" }
        },
        "oneOf": exactly_one(&["http", "tcp", "run", "cmd"])
    });
    let probe = json!({
        "type": "object",
        "additionalProperties": false,
        "properties": {
            "name": { "type": "string" },
            "cmd": { "type": "array", "items": { "type": "string" }, "minItems": 1 },
            "run": { "type": "string", "minLength": 1 },
            "http": http(),
            "tcp": { "type": "string" },
            "timeout": duration(),
            "expect_status": status(),
            "expect_body": { "type": "string" },
            "max": { "type": ["string", "number"], "description": "The largest acceptable value the probe reports (a number, or a duration such as a replication lag)." }
        },
        "oneOf": exactly_one(&["cmd", "run", "http", "tcp"])
    });
    let rpo_probe = json!({
        "type": "object",
        "additionalProperties": false,
        "description": "A read-only command printing the newest replicated timestamp (RFC 3339).",
        "properties": {
            "run": { "type": "string", "minLength": 1 },
            "cmd": { "type": "array", "items": { "type": "string" }, "minItems": 1 },
            "timeout": duration()
        },
        "oneOf": exactly_one(&["run", "cmd"])
    });
    let steps = json!({ "type": "array", "items": { "$ref": "#/$defs/step" } });
    json!({
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "$id": "urn:meeseeks:schema:playbook:v1",
        "title": "meeseeks playbook",
        "description": "The recovery procedure of one service: playbooks/<service>.toml.",
        "type": "object",
        "additionalProperties": false,
        "properties": {
            "description": { "type": "string" },
            "vars": { "type": "object" },
            "steps": steps,
            "checks": { "type": "array", "items": { "$ref": "#/$defs/check" } },
            "rollback": steps,
            "cleanup": steps,
            "preflight": { "type": "array", "items": { "$ref": "#/$defs/probe" } },
            "rpo_probe": rpo_probe
        },
        "$defs": { "step": step, "check": check, "probe": probe }
    })
}
