//! Library-level errors and their exit codes (SPEC §3).

use thiserror::Error;

/// Exit codes, the same for every command.
pub mod exit {
    pub const OK: i32 = 0;
    /// The operation ran and the outcome is negative.
    pub const NEGATIVE: i32 = 1;
    /// Bad usage or invalid input files.
    pub const USAGE: i32 = 2;
    /// Another process holds the run's lock, or an unfinished run exists.
    pub const LOCKED: i32 = 3;
    pub const INTERRUPTED: i32 = 130;
}

#[derive(Debug, Error)]
pub enum Error {
    #[error("unknown service `{name}`{}", suggestion.as_ref().map(|s| format!(" (did you mean `{s}`?)")).unwrap_or_default())]
    UnknownService {
        name: String,
        suggestion: Option<String>,
    },
    /// Input files are invalid; the diagnostics have already been rendered into the message.
    #[error("{0}")]
    Invalid(String),
    #[error("{0}")]
    Usage(String),
    #[error("{0}")]
    Locked(String),
    #[error("{context}: {source}")]
    Io {
        context: String,
        #[source]
        source: std::io::Error,
    },
    #[error("{0}")]
    Other(String),
}

impl Error {
    pub fn exit_code(&self) -> i32 {
        match self {
            Error::UnknownService { .. } | Error::Invalid(_) | Error::Usage(_) => exit::USAGE,
            Error::Locked(_) => exit::LOCKED,
            Error::Io { .. } | Error::Other(_) => exit::USAGE,
        }
    }

    pub fn io(context: impl Into<String>, source: std::io::Error) -> Error {
        Error::Io {
            context: context.into(),
            source,
        }
    }
}

pub type Result<T, E = Error> = std::result::Result<T, E>;
