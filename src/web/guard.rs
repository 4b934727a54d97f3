//! The one door every HTTP request passes (SPEC §5 "Security"), as an axum middleware in
//! front of all routes, so that no handler has checks of its own:
//!
//! 1. **Host** (every request): the `Host` header must name the address the server listens
//!    on, a loopback name or address (`localhost`, `*.localhost`, `127.0.0.0/8`, `::1`), or a
//!    name given with `--public-host`; else 421. A DNS-rebinding page reaches a loopback
//!    daemon under its own domain name, and is refused here.
//! 2. **Same origin** (requests that change state, i.e. not `GET`/`HEAD`/`OPTIONS`): a
//!    `Sec-Fetch-Site` other than `same-origin` or `none`, or an `Origin` other than the
//!    server's own (`http://` + `Host`), is another site: 403. Another port of `localhost`
//!    is another origin too.
//! 3. **Token** (every route but `/api/v1/health`, the sign-in page and the static assets):
//!    with a token configured, `Authorization: Bearer TOKEN` or the session cookie, compared
//!    in constant time; else 401 — or, for a page a browser asks for, a redirect to the
//!    sign-in page. The token is never logged. A browser signs in once: the page `/login`
//!    posts the token to `POST /api/v1/session` (`{"token": "…"}`), which answers with the
//!    session cookie ([`SESSION_COOKIE`]: `HttpOnly`, `SameSite=Strict`, the token's keyed
//!    digest, so it survives a restart and dies with the token); `DELETE /api/v1/session`
//!    signs out.
//! 4. **Body** (requests that change state): only `application/json` (415 otherwise; an empty
//!    body may carry no type), at most [`MAX_BODY`] bytes (413), received within
//!    [`BODY_TIMEOUT`] (408).
//!
//! No CORS header is ever sent, so browsers keep other sites' pages from reading answers.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::extract::{Request, State};
use axum::http::{HeaderMap, Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use http_body_util::BodyExt;
use serde_json::json;
use sha2::{Digest, Sha256};
use tracing::info;

/// The largest request body accepted (SPEC §5: 1 MiB).
pub const MAX_BODY: usize = 1 << 20;
/// How long a client may take to send a request's body.
pub const BODY_TIMEOUT: Duration = Duration::from_secs(10);

/// The paths that need no token.
const OPEN_PATHS: &[&str] = &["/api/v1/health", "/login"];

/// Paths under which everything needs no token (what the sign-in page loads).
const OPEN_PREFIXES: &[&str] = &["/static/"];

/// The session endpoint, handled here: signing in is the guard's business.
const SESSION_PATH: &str = "/api/v1/session";

/// The name of the session cookie.
pub const SESSION_COOKIE: &str = "coreflow_session";

/// What the guard checks requests against.
#[derive(Debug, Clone)]
pub struct Guard {
    listen: SocketAddr,
    /// Host names (lowercase, without port) accepted besides the listening address and
    /// loopback names (`--public-host`).
    public_hosts: Vec<String>,
    /// SHA-256 of the token: comparing digests takes the same time whatever the token's
    /// length and content.
    token: Option<[u8; 32]>,
}

impl Guard {
    #[must_use]
    pub fn new(listen: SocketAddr, public_hosts: &[String], token: Option<&str>) -> Guard {
        Guard {
            listen,
            public_hosts: public_hosts
                .iter()
                .map(|h| host_name(h).to_ascii_lowercase())
                .collect(),
            token: token.map(digest),
        }
    }

    /// Whether a `Host` header value names this server.
    fn host_allowed(&self, host: &str) -> bool {
        let name = host_name(host).to_ascii_lowercase();
        if name == "localhost" || name.ends_with(".localhost") {
            return true;
        }
        if self.public_hosts.contains(&name) {
            return true;
        }
        let Ok(ip) = name
            .trim_start_matches('[')
            .trim_end_matches(']')
            .parse::<IpAddr>()
        else {
            return false;
        };
        // An address literal cannot be rebound by DNS; still, name only what this server is.
        ip.is_loopback() || ip == self.listen.ip() || self.listen.ip().is_unspecified()
    }

    /// Whether the request carries the configured token, or the session cookie made of it
    /// (always, without a token).
    fn authorized(&self, headers: &HeaderMap) -> bool {
        let Some(expected) = &self.token else {
            return true;
        };
        let bearer = headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))
            .is_some_and(|t| same(&digest(t.trim()), expected));
        bearer
            || session_cookie(headers)
                .is_some_and(|value| same(&digest(value), &session_digest(expected)))
    }

    /// The session cookie's value for this server's token (hex), if it has one.
    fn session_value(&self) -> Option<String> {
        self.token
            .as_ref()
            .map(|token| hex::encode(session_of(token)))
    }
}

fn digest(token: &str) -> [u8; 32] {
    Sha256::digest(token.as_bytes()).into()
}

/// The session cookie's value, made from the token's digest: whoever holds it holds the
/// token's rights, as long as the token is the same.
fn session_of(token_digest: &[u8; 32]) -> [u8; 32] {
    let mut hasher = Sha256::new();
    hasher.update(b"coreflow session v1\0");
    hasher.update(token_digest);
    hasher.finalize().into()
}

/// The digest a valid session cookie's value has.
fn session_digest(token_digest: &[u8; 32]) -> [u8; 32] {
    digest(&hex::encode(session_of(token_digest)))
}

/// Compares two digests in constant time.
fn same(a: &[u8; 32], b: &[u8; 32]) -> bool {
    a.iter()
        .zip(b.iter())
        .fold(0u8, |acc, (x, y)| acc | (x ^ y))
        == 0
}

/// The value of the session cookie a request carries.
fn session_cookie(headers: &HeaderMap) -> Option<&str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(';'))
        .find_map(|pair| {
            let (name, value) = pair.trim().split_once('=')?;
            (name == SESSION_COOKIE).then_some(value)
        })
}

/// Whether `path` needs no token.
fn open_path(path: &str) -> bool {
    OPEN_PATHS.contains(&path) || OPEN_PREFIXES.iter().any(|prefix| path.starts_with(prefix))
}

/// Whether a request is a browser asking for a page (not the API, not metrics).
fn wants_page(method: &Method, path: &str, headers: &HeaderMap) -> bool {
    *method == Method::GET
        && !path.starts_with("/api/")
        && path != "/metrics"
        && headers
            .get(header::ACCEPT)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|accept| accept.contains("text/html"))
}

/// The host part of a `Host` value or `--public-host` name: `[::1]:8080` → `[::1]`,
/// `example.org:80` → `example.org`, `example.org.` → `example.org`.
fn host_name(host: &str) -> &str {
    let host = host.trim();
    let name = if host.starts_with('[') {
        host.find(']').map_or(host, |end| &host[..=end])
    } else {
        match host.rsplit_once(':') {
            Some((name, port)) if port.bytes().all(|b| b.is_ascii_digit()) => name,
            _ => host,
        }
    };
    name.strip_suffix('.').unwrap_or(name)
}

/// Whether a method changes state.
fn changes_state(method: &Method) -> bool {
    !matches!(*method, Method::GET | Method::HEAD | Method::OPTIONS)
}

/// Why a request that changes state comes from another site, if it does.
fn cross_site(headers: &HeaderMap, host: &str) -> Option<&'static str> {
    if let Some(site) = headers.get("sec-fetch-site") {
        let site = site.to_str().unwrap_or("");
        if !site.eq_ignore_ascii_case("same-origin") && !site.eq_ignore_ascii_case("none") {
            return Some("refused: the request comes from another site (Sec-Fetch-Site)");
        }
    }
    if let Some(origin) = headers.get(header::ORIGIN) {
        let origin = origin.to_str().unwrap_or("");
        let own = origin
            .strip_prefix("http://")
            .or_else(|| origin.strip_prefix("https://"))
            .is_some_and(|rest| rest.eq_ignore_ascii_case(host));
        if !own {
            return Some("refused: the request comes from another origin (Origin)");
        }
    }
    None
}

/// Whether a `Content-Type` value is JSON (`application/json`, parameters allowed).
fn is_json(value: &str) -> bool {
    value
        .split(';')
        .next()
        .is_some_and(|t| t.trim().eq_ignore_ascii_case("application/json"))
}

/// The middleware: see the module documentation for the order of the checks. A refused
/// request is logged with its method, path and reason (never its headers).
pub async fn check(State(guard): State<Arc<Guard>>, request: Request, next: Next) -> Response {
    let method = request.method().clone();
    let path = request.uri().path().to_owned();
    let page = wants_page(&method, &path, request.headers());
    match admit(&guard, request).await {
        Ok(request) if path == SESSION_PATH => session(&guard, request).await,
        Ok(request) => next.run(request).await,
        Err((StatusCode::UNAUTHORIZED, _)) if page => {
            // A person with a browser: to the sign-in page, and back.
            let target = format!("/login?next={}", percent_encode_path(&path));
            (StatusCode::SEE_OTHER, [(header::LOCATION, target)]).into_response()
        }
        Err((status, reason)) => {
            info!(%method, path, status = status.as_u16(), reason, "api: request refused");
            (status, axum::Json(json!({ "error": reason }))).into_response()
        }
    }
}

/// `POST /api/v1/session` (`{"token": "…"}`) signs in: the session cookie, or 401;
/// `DELETE` signs out. The request passed [`admit`] as any state-changing request (same
/// site, JSON), except for the token, which is what it checks.
async fn session(guard: &Guard, request: Request) -> Response {
    let cookie = |value: &str, max_age: &str| {
        format!("{SESSION_COOKIE}={value}; Path=/; HttpOnly; SameSite=Strict{max_age}")
    };
    match *request.method() {
        Method::DELETE => (
            StatusCode::NO_CONTENT,
            [(header::SET_COOKIE, cookie("", "; Max-Age=0"))],
        )
            .into_response(),
        Method::POST => {
            let body = axum::body::to_bytes(request.into_body(), MAX_BODY)
                .await
                .unwrap_or_default();
            let token = serde_json::from_slice::<serde_json::Value>(&body)
                .ok()
                .and_then(|value| value["token"].as_str().map(str::to_owned));
            let valid = match (&guard.token, &token) {
                (None, _) => true,
                (Some(expected), Some(token)) => same(&digest(token.trim()), expected),
                (Some(_), None) => false,
            };
            if !valid {
                info!(status = 401, "api: sign-in refused");
                return (
                    StatusCode::UNAUTHORIZED,
                    axum::Json(json!({ "error": "wrong token" })),
                )
                    .into_response();
            }
            let value = guard.session_value().unwrap_or_default();
            (
                StatusCode::NO_CONTENT,
                [(header::SET_COOKIE, cookie(&value, ""))],
            )
                .into_response()
        }
        _ => (
            StatusCode::METHOD_NOT_ALLOWED,
            axum::Json(json!({ "error": "POST to sign in, DELETE to sign out" })),
        )
            .into_response(),
    }
}

/// A path made safe to put in a query string.
fn percent_encode_path(path: &str) -> String {
    let mut out = String::with_capacity(path.len());
    for byte in path.bytes() {
        if byte.is_ascii_alphanumeric() || b"/-_.~".contains(&byte) {
            out.push(char::from(byte));
        } else {
            out.push_str(&format!("%{byte:02X}"));
        }
    }
    out
}

/// A refusal: the status and why.
type Refusal = (StatusCode, &'static str);

/// The request, its body read, if it may pass.
async fn admit(guard: &Guard, request: Request) -> Result<Request, Refusal> {
    let headers = request.headers();
    let host = headers
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .map(str::to_owned)
        .or_else(|| request.uri().authority().map(|a| a.as_str().to_owned()));
    let Some(host) = host.filter(|h| guard.host_allowed(h)) else {
        return Err((
            StatusCode::MISDIRECTED_REQUEST,
            "refused: the Host header does not name this server (see --public-host)",
        ));
    };
    let state_changing = changes_state(request.method());
    if state_changing && let Some(reason) = cross_site(headers, &host) {
        return Err((StatusCode::FORBIDDEN, reason));
    }
    let path = request.uri().path();
    if !open_path(path) && path != SESSION_PATH && !guard.authorized(headers) {
        return Err((StatusCode::UNAUTHORIZED, "missing or wrong bearer token"));
    }
    if !state_changing {
        return Ok(request);
    }
    const NOT_JSON: Refusal = (
        StatusCode::UNSUPPORTED_MEDIA_TYPE,
        "the body must be application/json",
    );
    const TOO_LARGE: Refusal = (StatusCode::PAYLOAD_TOO_LARGE, "the body is over 1 MiB");
    let content_type = headers
        .get(header::CONTENT_TYPE)
        .map(|v| v.to_str().unwrap_or("").to_owned());
    if content_type.as_deref().is_some_and(|t| !is_json(t)) {
        return Err(NOT_JSON);
    }
    if headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok())
        .is_some_and(|length| length > MAX_BODY as u64)
    {
        return Err(TOO_LARGE);
    }
    let (parts, body) = request.into_parts();
    let body = match tokio::time::timeout(BODY_TIMEOUT, read_body(body)).await {
        Err(_) => return Err((StatusCode::REQUEST_TIMEOUT, "the body came too slowly")),
        Ok(Err(BodyError::TooLarge)) => return Err(TOO_LARGE),
        Ok(Err(BodyError::Broken)) => {
            return Err((StatusCode::BAD_REQUEST, "the body was cut off"));
        }
        Ok(Ok(body)) => body,
    };
    // An empty body may come without a type (`curl -X POST …/cancel`); any other must say JSON.
    if content_type.is_none() && !body.iter().all(u8::is_ascii_whitespace) {
        return Err(NOT_JSON);
    }
    Ok(Request::from_parts(parts, Body::from(body)))
}

/// Why a body could not be read.
enum BodyError {
    TooLarge,
    Broken,
}

/// Reads a body of at most [`MAX_BODY`] bytes.
async fn read_body(mut body: Body) -> Result<Bytes, BodyError> {
    let mut data = Vec::new();
    while let Some(frame) = body.frame().await {
        let frame = frame.map_err(|_| BodyError::Broken)?;
        if let Ok(chunk) = frame.into_data() {
            if data.len() + chunk.len() > MAX_BODY {
                return Err(BodyError::TooLarge);
            }
            data.extend_from_slice(&chunk);
        }
    }
    Ok(Bytes::from(data))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn guard() -> Guard {
        Guard::new(
            "127.0.0.1:8080".parse().unwrap(),
            &["flows.example.org".to_owned()],
            Some("s3cret"),
        )
    }

    #[test]
    fn hosts_name_the_server_or_loopback() {
        let g = guard();
        for ok in [
            "127.0.0.1:8080",
            "localhost:8080",
            "LOCALHOST",
            "app.localhost:1",
            "[::1]:8080",
            "127.0.0.2",
            "flows.example.org",
            "flows.example.org.:443",
        ] {
            assert!(g.host_allowed(ok), "{ok}");
        }
        for bad in [
            "evil.example",
            "evil.example:8080",
            "10.0.0.1:8080",
            "localhost.evil.example",
            "",
        ] {
            assert!(!g.host_allowed(bad), "{bad}");
        }
        let any = Guard::new("0.0.0.0:80".parse().unwrap(), &[], None);
        assert!(any.host_allowed("192.168.1.4"));
        assert!(!any.host_allowed("rebound.example"));
    }

    #[test]
    fn other_sites_are_told_apart() {
        let mut h = HeaderMap::new();
        assert_eq!(cross_site(&h, "127.0.0.1:8080"), None);
        h.insert(header::ORIGIN, "http://127.0.0.1:8080".parse().unwrap());
        assert_eq!(cross_site(&h, "127.0.0.1:8080"), None);
        h.insert(header::ORIGIN, "http://127.0.0.1:9090".parse().unwrap());
        assert!(cross_site(&h, "127.0.0.1:8080").is_some());
        h.insert(header::ORIGIN, "null".parse().unwrap());
        assert!(cross_site(&h, "127.0.0.1:8080").is_some());
        let mut h = HeaderMap::new();
        for (site, other) in [
            ("same-origin", false),
            ("none", false),
            ("same-site", true),
            ("cross-site", true),
        ] {
            h.insert("sec-fetch-site", site.parse().unwrap());
            assert_eq!(cross_site(&h, "x").is_some(), other, "{site}");
        }
    }

    #[test]
    fn tokens_match_exactly() {
        let g = guard();
        let mut h = HeaderMap::new();
        assert!(!g.authorized(&h));
        h.insert(header::AUTHORIZATION, "Bearer s3cre".parse().unwrap());
        assert!(!g.authorized(&h));
        h.insert(header::AUTHORIZATION, "Bearer s3cret".parse().unwrap());
        assert!(g.authorized(&h));
        h.insert(header::AUTHORIZATION, "Basic s3cret".parse().unwrap());
        assert!(!g.authorized(&h));
    }

    #[test]
    fn the_session_cookie_stands_for_the_token() {
        let g = guard();
        let value = g.session_value().expect("a token is configured");
        assert!(!value.contains("s3cret"));
        let mut h = HeaderMap::new();
        h.insert(
            header::COOKIE,
            format!("theme=dark; {SESSION_COOKIE}={value}")
                .parse()
                .unwrap(),
        );
        assert!(g.authorized(&h));
        h.insert(
            header::COOKIE,
            format!("{SESSION_COOKIE}={value}0").parse().unwrap(),
        );
        assert!(!g.authorized(&h));
        h.insert(
            header::COOKIE,
            format!("{SESSION_COOKIE}=s3cret").parse().unwrap(),
        );
        assert!(!g.authorized(&h), "the token itself is not a session");
        // Another token, another session.
        let other = Guard::new("127.0.0.1:8080".parse().unwrap(), &[], Some("other"));
        assert_ne!(other.session_value(), Some(value));
        assert!(open_path("/static/app.css") && open_path("/login") && !open_path("/runs/1"));
        assert_eq!(percent_encode_path("/runs/1?x"), "/runs/1%3Fx");
    }

    #[test]
    fn json_types() {
        assert!(is_json("application/json"));
        assert!(is_json("Application/JSON; charset=utf-8"));
        assert!(!is_json("text/plain"));
        assert!(!is_json("application/x-www-form-urlencoded"));
        assert!(!is_json("multipart/form-data; boundary=x"));
    }
}
