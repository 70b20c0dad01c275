//! `meeseeks serve [DIR]`: the war-room web server (see `crate::serve`).

use std::net::{SocketAddr, ToSocketAddrs};
use std::path::PathBuf;
use std::sync::Arc;

use clap::Args;

use super::{DirArg, Global};
use crate::error::{Error, Result, exit};
use crate::serve::{self, auth};

#[derive(Args, Debug)]
pub struct ServeArgs {
    #[command(flatten)]
    pub dir: DirArg,
    /// Address to listen on. Anything but loopback needs a token.
    #[arg(long, value_name = "ADDR", default_value = "127.0.0.1:8080")]
    pub listen: String,
    /// File holding the token approvals must carry (`Authorization: Bearer TOKEN`); else
    /// the MEESEEKS_TOKEN environment variable.
    #[arg(long, value_name = "FILE")]
    pub token_file: Option<PathBuf>,
    /// Show runs, refuse approvals (403): for a page shared widely.
    #[arg(long)]
    pub read_only: bool,
    #[command(flatten)]
    pub store: super::run::StoreArgs,
}

fn resolve_listen(listen: &str) -> Result<Vec<SocketAddr>> {
    let addrs: Vec<SocketAddr> = listen
        .to_socket_addrs()
        .map_err(|e| {
            Error::Usage(format!(
                "--listen {listen}: {e} (expected HOST:PORT, e.g. 127.0.0.1:8080)"
            ))
        })?
        .collect();
    if addrs.is_empty() {
        return Err(Error::Usage(format!(
            "--listen {listen} resolves to no address"
        )));
    }
    Ok(addrs)
}

pub fn run(g: &Global, a: &ServeArgs) -> Result<i32> {
    let addrs = resolve_listen(&a.listen)?;
    let token = auth::load_token(
        a.token_file.as_deref(),
        std::env::var("MEESEEKS_TOKEN").ok(),
    )?;
    if token.is_none() && !auth::all_loopback(&addrs) {
        return Err(Error::Usage(format!(
            "refusing to listen on {} without a token: anyone who reaches it could approve \
             manual steps. Give --token-file FILE or set MEESEEKS_TOKEN (clients send \
             `Authorization: Bearer TOKEN`), or listen on 127.0.0.1",
            a.listen
        )));
    }
    let dir = a.dir.path();
    let dir = std::fs::canonicalize(&dir).unwrap_or(dir);
    let spec = a.store.spec(&dir)?;
    let state_dir = spec.local().to_path_buf();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .map_err(|e| Error::io("cannot start the async runtime", e))?;
    rt.block_on(async {
        let listener = tokio::net::TcpListener::bind(addrs[0])
            .await
            .map_err(|e| Error::io(format!("cannot listen on {}", a.listen), e))?;
        let local = listener
            .local_addr()
            .map_err(|e| Error::io("cannot read the listening address", e))?;
        let approvals = if a.read_only {
            "refused (read-only)"
        } else if token.is_some() {
            "need the token"
        } else {
            "open to this machine"
        };
        if !g.quiet {
            eprintln!(
                "meeseeks serve: runs in {spec}, DR directory {}; approvals {approvals}",
                dir.display()
            );
        }
        // One line on stdout that scripts (and the tests) read for the port.
        println!("listening on http://{local}/");
        let stop = tokio_util::sync::CancellationToken::new();
        let source: Arc<dyn serve::source::RunSource> = match &spec {
            crate::store::StoreSpec::File(p) => Arc::new(serve::source::FileSource::new(p.clone())),
            crate::store::StoreSpec::Etcd(e) => Arc::new(serve::source::EtcdSource::new(
                crate::store::etcd::EtcdStore::connect(e).await?,
            )),
        };
        let router = serve::router(
            serve::Config {
                dir,
                state_dir,
                store: spec.clone(),
                token,
                read_only: a.read_only,
            },
            source,
            stop.clone(),
        );
        serve::serve(listener, router, stop)
            .await
            .map_err(|e| Error::io("the server stopped", e))
    })?;
    Ok(exit::OK)
}
