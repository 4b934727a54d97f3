//! The HTTP API and the web UI of SPEC §5, served by `coreflow daemon --listen` and by
//! `coreflow ui`: the API's handlers, server-sent events, Prometheus metrics, the OpenAPI
//! document, and the pages with their DAG drawing.

pub mod api;
pub mod coalesce;
pub mod dag;
pub mod events;
pub mod feed;
pub mod guard;
pub mod http;
pub mod login;
pub mod metrics;
pub mod openapi;
pub mod pages;
pub mod views;
