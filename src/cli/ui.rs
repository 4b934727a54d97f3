//! `coreflow ui`: the web UI and the HTTP API over an environment without a daemon (the
//! workflows are those the environment recorded; runs created here wait for workers). The
//! same router and guard as `coreflow daemon --listen`: loopback unless a token is set.

use std::sync::Arc;

use crate::cli::args::{GlobalArgs, UiArgs};
use crate::cli::env;
use crate::error::Error;
use crate::web::api::{ApiState, Workflows, router};
use crate::web::guard::Guard;

pub(super) fn run(global: &GlobalArgs, args: &UiArgs) -> Result<(), Error> {
    let token = super::daemon::api_token(args.token_file.as_deref())?;
    if !args.listen.ip().is_loopback() && token.is_none() {
        return Err(Error::Usage(format!(
            "refusing to listen on {} without a token: set COREFLOW_API_TOKEN, or listen on loopback",
            args.listen
        )));
    }
    let store = env::open(global)?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .worker_threads(2)
        .build()?;
    runtime.block_on(async {
        let listener = tokio::net::TcpListener::bind(args.listen)
            .await
            .map_err(|err| Error::Usage(format!("cannot listen on {}: {err}", args.listen)))?;
        let addr = listener.local_addr()?;
        let guard = Guard::new(addr, &args.public_hosts, token.as_deref());
        let state = Arc::new(ApiState::new(store, Workflows::Recorded));
        if !global.quiet {
            eprintln!("CoreFlow UI on http://{addr}/ (Ctrl-C stops it)");
        }
        let mut terms =
            tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).ok();
        tokio::select! {
            () = crate::web::http::serve(listener, router(state, guard)) => {}
            _ = tokio::signal::ctrl_c() => {}
            Some(()) = crate::engine::recv_signal(&mut terms) => {}
        }
        Ok(())
    })
}
