//! The web UI's pages (placeholder).

use axum::Router;

use crate::web::api::Shared;

/// The pages' routes.
pub(crate) fn routes() -> Router<Shared> {
    Router::new()
}
