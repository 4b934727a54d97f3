//! `GET /login`: the sign-in page for a server with a token. The person pastes the token
//! once; the page posts it to `POST /api/v1/session` ([`super::guard`]), which answers with
//! the session cookie, and goes back to the page asked for (`?next=`, a path of this server
//! only). The token never appears in a URL.

use axum::Router;
use axum::response::Html;
use axum::routing::get;

use crate::web::api::Shared;

/// The page; self-contained, so that it works before any asset is allowed.
const PAGE: &str = r#"<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>Sign in · CoreFlow</title>
<style>
  :root { color-scheme: light dark; font-family: system-ui, sans-serif; }
  body { margin: 0; display: grid; min-height: 100vh; place-items: center; }
  form { width: min(22rem, 90vw); display: grid; gap: .75rem; padding: 1.5rem;
         border: 1px solid #8884; border-radius: .5rem; }
  input, button { font: inherit; padding: .5rem; }
  button { cursor: pointer; }
  :focus-visible { outline: 3px solid #2f6fde; outline-offset: 2px; }
  #error { color: #c62828; min-height: 1.2em; margin: 0; }
  @media (prefers-color-scheme: dark) { #error { color: #ff8a80; } }
</style>
</head>
<body>
<main>
<form id="login">
  <h1>CoreFlow</h1>
  <label for="token">API token</label>
  <input id="token" name="token" type="password" autocomplete="current-password" required autofocus>
  <button type="submit">Sign in</button>
  <p id="error" role="alert"></p>
</form>
</main>
<script>
document.getElementById("login").addEventListener("submit", async (event) => {
  event.preventDefault();
  const error = document.getElementById("error");
  error.textContent = "";
  const answer = await fetch("/api/v1/session", {
    method: "POST",
    headers: { "Content-Type": "application/json" },
    body: JSON.stringify({ token: document.getElementById("token").value }),
  });
  if (answer.ok) {
    const next = new URLSearchParams(location.search).get("next") || "/";
    // Only a path of this server: never another site.
    location.assign(next.startsWith("/") && !next.startsWith("//") ? next : "/");
  } else {
    error.textContent = answer.status === 401 ? "Wrong token." : "Sign-in failed (" + answer.status + ").";
  }
});
</script>
</body>
</html>
"#;

/// The sign-in page's route.
pub(crate) fn routes() -> Router<Shared> {
    Router::new().route("/login", get(|| async { Html(PAGE) }))
}
