//! The sandbox's wire: axum routes for both APIs, the edge middleware that
//! applies faults and hostile modes and counts requests, and an accept loop
//! able to close a connection without answering (dropped connections, lost
//! responses).

use std::collections::HashMap;
use std::convert::Infallible;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use axum::Router;
use axum::body::{Body, Bytes, HttpBody};
use axum::extract::{Path, Query, Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Json, Response};
use axum::routing::{get, post};
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::{Service, service_fn};
use hyper_util::rt::TokioIo;
use hyper_util::service::TowerToHyperService;
use serde_json::{Value, json};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Notify, watch};
use tokio::task::JoinSet;
use tokio::time::Instant;

use super::faults::{Decision, Fault, Misdirect, RetryAfterForm};
use super::store::{
    BulkOutcome, ContactInput, MobivateInput, MvError, SortField, SpError, parse_phone,
};
use super::{App, HoldFate, Received, lock};

/// Default and largest `limit` of a Mobivate listing.
const MV_DEFAULT_LIMIT: usize = 25;
const MV_MAX_LIMIT: usize = 1000;
/// How long shutdown waits for in-flight requests.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(5);

/// The current time as Mobivate shows it (RFC 3339, milliseconds, UTC).
pub(super) fn now() -> String {
    chrono::Utc::now()
        .format("%Y-%m-%dT%H:%M:%S%.3fZ")
        .to_string()
}

/// Put in each request's extensions: closes its connection without a response.
#[derive(Debug, Clone)]
struct ConnAbort(Arc<Notify>);

/// Accepts connections until `shutdown` fires, then drains them.
pub(super) async fn serve(
    listener: TcpListener,
    app: Arc<App>,
    mut shutdown: watch::Receiver<bool>,
) {
    let router = router(app);
    let mut conns = JoinSet::new();
    loop {
        tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => {
                    conns.spawn(serve_conn(stream, router.clone(), shutdown.clone()));
                }
                Err(e) => {
                    // Out of descriptors and the like: back off instead of spinning.
                    tracing::warn!(error = %e, "sandbox: accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            },
            Some(_) = conns.join_next(), if !conns.is_empty() => {}
            _ = shutdown.changed() => break,
        }
    }
    drop(listener);
    let drained = tokio::time::timeout(DRAIN_TIMEOUT, async {
        while conns.join_next().await.is_some() {}
    })
    .await;
    if drained.is_err() {
        conns.abort_all();
    }
}

/// Serves one HTTP/1 connection; drops it (closing the socket, nothing sent)
/// when a handler triggers its [`ConnAbort`].
async fn serve_conn(stream: TcpStream, router: Router, mut shutdown: watch::Receiver<bool>) {
    let abort = Arc::new(Notify::new());
    let tower = TowerToHyperService::new(router);
    let hook = ConnAbort(abort.clone());
    let svc = service_fn(move |mut req: hyper::Request<Incoming>| {
        req.extensions_mut().insert(hook.clone());
        tower.call(req)
    });
    let conn = http1::Builder::new()
        .header_read_timeout(None)
        .serve_connection(TokioIo::new(stream), svc);
    tokio::pin!(conn);
    let mut draining = *shutdown.borrow();
    if draining {
        conn.as_mut().graceful_shutdown();
    }
    loop {
        tokio::select! {
            _ = conn.as_mut() => break,
            () = abort.notified() => break,
            _ = shutdown.changed(), if !draining => {
                draining = true;
                conn.as_mut().graceful_shutdown();
            }
        }
    }
}

fn router(app: Arc<App>) -> Router {
    Router::new()
        .route("/v1/contact/add", post(sp_add))
        .route("/v1/contact/update", post(sp_update))
        .route("/v1/contact/delete", post(sp_delete))
        .route("/v1/contact/detail", get(sp_detail))
        .route("/v1/contact/list", get(sp_list))
        .route("/v1/group/list", get(sp_groups))
        .route("/addressbook/contacts", post(mv_create).get(mv_list))
        .route(
            "/addressbook/contacts/{id}",
            post(mv_update).delete(mv_delete),
        )
        .route("/_sandbox/state", get(inspect))
        .fallback(not_found)
        .layer(middleware::from_fn_with_state(app.clone(), edge))
        .with_state(app)
}

// ----------------------------------------------------------------- the edge

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Api {
    SmsPartner,
    Mobivate,
    Other,
}

fn api_of(path: &str) -> Api {
    if path.starts_with("/v1/") {
        Api::SmsPartner
    } else if path.starts_with("/addressbook/") {
        Api::Mobivate
    } else {
        Api::Other
    }
}

/// The route template of a path, so counters do not grow with ids.
fn route_of(path: &str) -> &'static str {
    const EXACT: [&str; 7] = [
        "/v1/contact/add",
        "/v1/contact/update",
        "/v1/contact/delete",
        "/v1/contact/detail",
        "/v1/contact/list",
        "/v1/group/list",
        "/addressbook/contacts",
    ];
    if let Some(known) = EXACT.iter().find(|p| **p == path) {
        return known;
    }
    match path.strip_prefix("/addressbook/contacts/") {
        Some(id) if !id.is_empty() && !id.contains('/') => "/addressbook/contacts/{id}",
        _ => "other",
    }
}

/// A request the hold stops: applied first when the hold says so, counted
/// `held`, and answered only once released.
async fn held(
    app: &App,
    req: Request,
    next: Next,
    endpoint: String,
    hold: HoldFate,
    mut released: watch::Receiver<u64>,
) -> Response {
    let applied = if hold == HoldFate::ApplyAndHold {
        next.run(req).await.extensions_mut().remove::<Received>()
    } else {
        None
    };
    {
        let mut counters = lock(&app.counters);
        *counters
            .requests
            .entry(endpoint)
            .or_default()
            .entry("held".into())
            .or_default() += 1;
        if let Some(received) = &applied {
            counters.received.merge(received);
            counters.unanswered.merge(received);
        }
        counters.held += 1;
    }
    app.held_grew.notify_all();
    // Unanswered until released (a killed client's connection is gone by then).
    let _ = released.changed().await;
    (StatusCode::SERVICE_UNAVAILABLE, "released after a hold").into_response()
}

/// Counts a served request: its status (or fault) by endpoint, the fault
/// drawn, and what it put in the store — as unanswered too when the client
/// got no readable answer.
fn count(
    app: &App,
    endpoint: String,
    status: &str,
    decision: &Decision,
    received: Option<&Received>,
    readable: bool,
) {
    let mut counters = lock(&app.counters);
    *counters
        .requests
        .entry(endpoint)
        .or_default()
        .entry(status.to_string())
        .or_default() += 1;
    counters.faults.record(decision);
    if let Some(received) = received {
        counters.received.merge(received);
        if !readable {
            counters.unanswered.merge(received);
        }
    }
}

/// Applies the fault plan and the hostile modes, counts and logs every API request.
async fn edge(State(app): State<Arc<App>>, req: Request, next: Next) -> Response {
    let path = req.uri().path().to_owned();
    if path.starts_with("/_sandbox/") {
        return next.run(req).await;
    }
    let started = Instant::now();
    let method = req.method().clone();
    let endpoint = format!("{method} {}", route_of(&path));
    let api = api_of(&path);
    let stress = &app.config.stress;
    let (req, carried) = if stress.echo_key {
        carried_key(req).await
    } else {
        (req, None)
    };
    let write = method != axum::http::Method::GET && method != axum::http::Method::HEAD;
    let decision = lock(&app.faults).decide_for(started, write);
    // Subscribed before admission, so a release in between is not missed.
    let released = app.released.subscribe();
    let hold = lock(&app.hold).admit();
    if hold != HoldFate::Serve {
        return held(&app, req, next, endpoint, hold, released).await;
    }
    if !decision.delay.is_zero() {
        tokio::time::sleep(decision.delay).await;
    }
    let abort = req.extensions().get::<ConnAbort>().cloned();
    // What the handler put in the store, as it tagged its response.
    let mut received = None;
    // Whether the client gets a readable answer to what was applied.
    let mut readable = true;
    let (status, response) = match (stress.misdirect, decision.fault) {
        (Some(mode), _) => {
            let r = misdirected(mode);
            (r.status().as_u16().to_string(), Some(r))
        }
        (None, Fault::None) => {
            let mut r = next.run(req).await;
            received = r.extensions_mut().remove::<Received>();
            (r.status().as_u16().to_string(), Some(r))
        }
        (None, Fault::RateLimited { retry_after }) => {
            let secs = stress.retry_after_secs.unwrap_or(retry_after);
            let r = rate_limited(api, secs, stress.retry_after);
            ("429".into(), Some(r))
        }
        (None, Fault::ServerError) => ("500".into(), Some(server_error(api))),
        (None, Fault::Coded) => {
            let r = coded_error(api, stress.coded_status);
            (r.status().as_u16().to_string(), Some(r))
        }
        (None, Fault::Drop) => ("dropped".into(), None),
        (None, Fault::Lose) => {
            let mut applied = next.run(req).await;
            received = applied.extensions_mut().remove::<Received>();
            readable = false;
            ("lost".into(), None)
        }
        (None, Fault::Oversize) => {
            let mut applied = next.run(req).await;
            received = applied.extensions_mut().remove::<Received>();
            readable = false;
            ("oversized".into(), Some(endless()))
        }
        (None, Fault::Hollow) => {
            let mut applied = next.run(req).await;
            received = applied.extensions_mut().remove::<Received>();
            readable = false;
            ("hollow".into(), Some(hollow(api)))
        }
    };
    count(
        &app,
        endpoint,
        &status,
        &decision,
        received.as_ref(),
        readable,
    );
    if app.config.log_requests {
        // The path only: the query string carries the API key.
        tracing::info!(
            method = %method,
            path = %path,
            status = %status,
            fault = decision.fault.name().unwrap_or("-"),
            latency_ms = started.elapsed().as_millis() as u64,
            "request"
        );
    }
    match (response, abort) {
        (Some(r), _) => match carried {
            Some(key) if status != "oversized" => echo_key(r, &key).await,
            _ => r,
        },
        (None, Some(ConnAbort(notify))) => {
            notify.notify_one();
            // The connection task drops this future together with the connection.
            std::future::pending::<Response>().await
        }
        (None, None) => StatusCode::SERVICE_UNAVAILABLE.into_response(),
    }
}

/// Largest request body read again by `--echo-key`.
const ECHO_BODY_MAX: usize = 16 << 20;

/// The API key `req` carries (Bearer header, `apiKey` in the query or the
/// JSON body), and the request rebuilt for the handler.
async fn carried_key(req: Request) -> (Request, Option<String>) {
    let bearer = req
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().split_once(' ').map(|(_, t)| t.trim().to_string()));
    let query = req.uri().query().and_then(|q| {
        url_pairs(q)
            .into_iter()
            .find(|(k, _)| k == "apiKey")
            .map(|(_, v)| v)
    });
    let (parts, body) = req.into_parts();
    let bytes = axum::body::to_bytes(body, ECHO_BODY_MAX)
        .await
        .unwrap_or_default();
    let in_body = serde_json::from_slice::<Value>(&bytes)
        .ok()
        .and_then(|v| text(v.get("apiKey")));
    let req = Request::from_parts(parts, Body::from(bytes));
    (req, bearer.or(query).or(in_body))
}

/// `application/x-www-form-urlencoded` pairs, decoded.
fn url_pairs(query: &str) -> Vec<(String, String)> {
    reqwest::Url::parse(&format!("http://h/?{query}"))
        .map(|u| u.query_pairs().into_owned().collect())
        .unwrap_or_default()
}

/// `response` with `key` added to its error message (`message`, or
/// Mobivate's `error.message`, or the plain text), as a careless server would.
async fn echo_key(response: Response, key: &str) -> Response {
    let (parts, body) = response.into_parts();
    let Ok(bytes) = axum::body::to_bytes(body, ECHO_BODY_MAX).await else {
        return StatusCode::INTERNAL_SERVER_ERROR.into_response();
    };
    let echo = |m: &str| format!("{m} (request key: {key})");
    let body = match serde_json::from_slice::<Value>(&bytes) {
        Ok(mut v) if v.get("success") == Some(&Value::Bool(false)) => {
            if let Some(m) = v.pointer_mut("/error/message") {
                *m = Value::String(echo(m.as_str().unwrap_or_default()));
            } else {
                let m = v.get("message").and_then(Value::as_str).unwrap_or_default();
                v["message"] = Value::String(echo(m));
            }
            serde_json::to_vec(&v).unwrap_or_default()
        }
        Ok(_) => bytes.to_vec(),
        Err(_) if parts.status.is_client_error() || parts.status.is_server_error() => {
            echo(&String::from_utf8_lossy(&bytes)).into_bytes()
        }
        Err(_) => bytes.to_vec(),
    };
    let mut out = Response::from_parts(parts, Body::from(body));
    out.headers_mut().remove(header::CONTENT_LENGTH);
    out
}

/// A 200 whose body never ends: JSON-looking, then spaces forever.
fn endless() -> Response {
    let mut r = Response::new(Body::new(Endless::default()));
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    r
}

/// The body of [`endless`]: a first frame, then 64 KiB frames, never the end.
#[derive(Default)]
struct Endless {
    started: bool,
}

impl HttpBody for Endless {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        _cx: &mut Context<'_>,
    ) -> Poll<Option<Result<hyper::body::Frame<Bytes>, Infallible>>> {
        static PADDING: [u8; 64 * 1024] = [b' '; 64 * 1024];
        let data = if self.started {
            Bytes::from_static(&PADDING)
        } else {
            self.started = true;
            Bytes::from_static(br#"{"success": true, "code": 200, "padding": ""#)
        };
        Poll::Ready(Some(Ok(hyper::body::Frame::data(data))))
    }
}

/// A success without the documented body: Mobivate's flag without its
/// `record`, SMS Partner's `{}` (no flag, no `contact`, no `results`).
fn hollow(api: Api) -> Response {
    match api {
        Api::Mobivate => Json(json!({"success": true})).into_response(),
        _ => Json(json!({})).into_response(),
    }
}

/// What a host without this API answers (`--misdirect`); nothing is applied.
fn misdirected(mode: Misdirect) -> Response {
    match mode {
        Misdirect::NotFound => (StatusCode::NOT_FOUND, "Not Found").into_response(),
        Misdirect::Html => (
            StatusCode::OK,
            [(header::CONTENT_TYPE, "text/html; charset=utf-8")],
            "<!DOCTYPE html>\n<html><head><title>Welcome</title></head><body><h1>It works!</h1></body></html>\n",
        )
            .into_response(),
    }
}

/// The `Retry-After` value for a wait of `secs`, written as `form` says.
fn retry_after_value(secs: u64, form: RetryAfterForm) -> Option<HeaderValue> {
    match form {
        RetryAfterForm::Seconds => Some(HeaderValue::from(secs)),
        RetryAfterForm::Date => {
            let at = i64::try_from(secs)
                .ok()
                .and_then(chrono::TimeDelta::try_seconds)
                .and_then(|d| chrono::Utc::now().checked_add_signed(d));
            let text = match at {
                Some(at) => at.format("%a, %d %b %Y %H:%M:%S GMT").to_string(),
                None => "Fri, 31 Dec 9999 23:59:59 GMT".to_string(),
            };
            HeaderValue::from_str(&text).ok()
        }
        RetryAfterForm::Garbage => Some(HeaderValue::from_static("in a moment")),
        RetryAfterForm::None => None,
    }
}

fn rate_limited(api: Api, secs: u64, form: RetryAfterForm) -> Response {
    let mut response = match api {
        Api::Mobivate => mv_error(
            StatusCode::TOO_MANY_REQUESTS,
            "TooManyRequestsError",
            "Rate limit exceeded",
        ),
        _ => (StatusCode::TOO_MANY_REQUESTS, "Too Many Requests").into_response(),
    };
    if let Some(value) = retry_after_value(secs, form) {
        response.headers_mut().insert(header::RETRY_AFTER, value);
    }
    response
}

fn server_error(api: Api) -> Response {
    match api {
        Api::Mobivate => mv_error(
            StatusCode::INTERNAL_SERVER_ERROR,
            "InternalServerError",
            "Internal server error (injected by the sandbox)",
        ),
        _ => (
            StatusCode::INTERNAL_SERVER_ERROR,
            "Internal Server Error (injected by the sandbox)",
        )
            .into_response(),
    }
}

/// An injected provider error, nothing applied: SMS Partner code 90 under
/// `status` (a coded error inside a 5xx by default), Mobivate a 400.
fn coded_error(api: Api, status: u16) -> Response {
    match api {
        Api::Mobivate => mv_error(
            StatusCode::BAD_REQUEST,
            "ValidationError",
            "Invalid request (injected by the sandbox)",
        ),
        _ => {
            let status = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
            let body = json!({
                "success": false,
                "code": SpError::MALFORMED_JSON.code,
                "message": "Malformed JSON (injected by the sandbox)",
            });
            (status, Json(body)).into_response()
        }
    }
}

async fn not_found(req: Request) -> Response {
    match api_of(req.uri().path()) {
        Api::Mobivate => mv_error(StatusCode::NOT_FOUND, "NotFoundError", "Route not found"),
        _ => (StatusCode::NOT_FOUND, "Not Found").into_response(),
    }
}

/// `response`, tagged with what its handler counted, for the edge to tally
/// (the tag never reaches the wire).
fn tagged(mut response: Response, received: Received) -> Response {
    if !received.is_empty() {
        response.extensions_mut().insert(received);
    }
    response
}

async fn inspect(State(app): State<Arc<App>>) -> Json<super::SandboxState> {
    Json(app.snapshot())
}

// -------------------------------------------------------------- SMS Partner

/// A JSON scalar as text (ids and numbers are accepted as numbers too).
fn text(value: Option<&Value>) -> Option<String> {
    match value? {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

fn check_key(app: &App, key: Option<&str>) -> Result<(), SpError> {
    match key {
        None | Some("") => Err(SpError::API_KEY_REQUIRED),
        Some(k) if k == app.config.api_key => Ok(()),
        Some(_) => Err(SpError::API_KEY_INCORRECT),
    }
}

/// A POST body as a JSON object whose `apiKey` is right.
fn sp_body(app: &App, body: &[u8]) -> Result<serde_json::Map<String, Value>, SpError> {
    let Ok(Value::Object(obj)) = serde_json::from_slice::<Value>(body) else {
        return Err(SpError::MALFORMED_JSON);
    };
    check_key(app, text(obj.get("apiKey")).as_deref())?;
    Ok(obj)
}

fn sp_respond(app: &App, result: Result<Value, SpError>) -> Response {
    match result {
        Ok(body) => Json(body).into_response(),
        Err(e) => {
            let status = StatusCode::from_u16(app.config.error_status).unwrap_or(StatusCode::OK);
            let body = json!({"success": false, "code": e.code, "message": e.message});
            (status, Json(body)).into_response()
        }
    }
}

/// A contact as add and update echo it (`phoneNumber`, not `phone`).
fn sp_echo(c: &super::SmsPartnerContact) -> Value {
    json!({
        "phoneNumber": c.phone,
        "firstname": c.firstname,
        "lastname": c.lastname,
        "date": c.date,
        "shortUrlPartnr": c.short_url,
        "url": c.url,
        "custom1": c.custom1,
        "custom2": c.custom2,
        "custom3": c.custom3,
        "custom4": c.custom4,
        "contactId": c.contact_id,
    })
}

fn bulk_json(out: BulkOutcome) -> Value {
    let imported = out.results.iter().filter(|r| r.success).count();
    let mut errors = serde_json::Map::new();
    for row in out.results.iter().filter(|r| !r.success) {
        let slot = errors.entry(row.code.to_string()).or_insert(json!(0));
        *slot = json!(slot.as_u64().unwrap_or(0) + 1);
    }
    json!({
        "success": true,
        "code": 200,
        "groupe": {"name": out.group_name, "token": out.group_token},
        "results": out.results,
        "rapport": {
            "nbline": out.results.len(),
            "nbline_imported": imported,
            "nbline_updated": 0,
            "errors": errors,
        },
    })
}

async fn sp_add(State(app): State<Arc<App>>, body: Bytes) -> Response {
    let mut received = Received::default();
    let result = (|| {
        let obj = sp_body(&app, &body)?;
        let group = text(obj.get("groupId")).unwrap_or_default();
        if group.is_empty() {
            return Err(SpError::GROUP_REQUIRED);
        }
        if let Some(list) = obj.get("contactsList") {
            let Value::Array(items) = list else {
                return Err(SpError::CONTACT_REQUIRED);
            };
            let inputs: Vec<Option<ContactInput>> =
                items.iter().map(ContactInput::from_json).collect();
            let mut out = lock(&app.smspartner).add_bulk(&group, &inputs)?;
            if app.config.stress.reorder_bulk {
                // Fisher–Yates: each result keeps its phoneNumber, not its place.
                let mut rng = lock(&app.shuffle);
                for i in (1..out.results.len()).rev() {
                    let bound = u64::try_from(i + 1).unwrap_or(u64::MAX);
                    let j = usize::try_from(rng.next_u64() % bound).unwrap_or(0);
                    out.results.swap(i, j);
                }
            }
            for row in &out.results {
                // Applied (200) or already in the group (15): the number as stored.
                if row.success || row.code == SpError::ALREADY_IN_GROUP.code {
                    received.smspartner_add(&group, &row.phone_number);
                }
            }
            return Ok(bulk_json(out));
        }
        let input = obj
            .get("contact")
            .and_then(ContactInput::from_json)
            .unwrap_or_default();
        let added = lock(&app.smspartner).add(&group, &input);
        match &added {
            Ok(contact) => received.smspartner_add(&group, &contact.phone),
            Err(e) if *e == SpError::ALREADY_IN_GROUP => {
                if let Some(phone) = input.phone_number.as_deref().and_then(parse_phone) {
                    received.smspartner_add(&group, &phone);
                }
            }
            Err(_) => {}
        }
        let contact = added?;
        Ok(json!({"success": true, "code": 200, "contact": sp_echo(&contact)}))
    })();
    tagged(sp_respond(&app, result), received)
}

async fn sp_update(State(app): State<Arc<App>>, body: Bytes) -> Response {
    let mut received = Received::default();
    let result = (|| {
        let obj = sp_body(&app, &body)?;
        let id = text(obj.get("contactId")).unwrap_or_default();
        if id.is_empty() {
            return Err(SpError::CONTACT_ID_REQUIRED);
        }
        let input = obj
            .get("contact")
            .and_then(ContactInput::from_json)
            .ok_or(SpError::CONTACT_REQUIRED)?;
        let contact = lock(&app.smspartner).update(&id, &input)?;
        received.smspartner_update(&contact.contact_id);
        Ok(json!({"success": true, "code": 200, "contact": sp_echo(&contact)}))
    })();
    tagged(sp_respond(&app, result), received)
}

async fn sp_delete(State(app): State<Arc<App>>, body: Bytes) -> Response {
    let mut received = Received::default();
    let result = (|| {
        let obj = sp_body(&app, &body)?;
        let id = text(obj.get("contactId")).unwrap_or_default();
        lock(&app.smspartner).delete(&id)?;
        received.smspartner_delete(&id);
        Ok(json!({"success": true, "code": 200}))
    })();
    tagged(sp_respond(&app, result), received)
}

type QueryMap = Query<HashMap<String, String>>;

async fn sp_detail(State(app): State<Arc<App>>, Query(q): QueryMap) -> Response {
    let result = (|| {
        check_key(&app, q.get("apiKey").map(String::as_str))?;
        let id = q.get("contactId").cloned().unwrap_or_default();
        let store = lock(&app.smspartner);
        let contact = store.detail(&id)?;
        Ok(json!({"success": true, "code": 200, "contact": contact}))
    })();
    sp_respond(&app, result)
}

async fn sp_list(State(app): State<Arc<App>>, Query(q): QueryMap) -> Response {
    let result = (|| {
        check_key(&app, q.get("apiKey").map(String::as_str))?;
        let group = q.get("groupId").cloned().unwrap_or_default();
        let page = q
            .get("page")
            .and_then(|p| p.trim().parse::<usize>().ok())
            .unwrap_or(1)
            .max(1);
        let store = lock(&app.smspartner);
        let (rows, total) = store.list(&group, page, app.config.stress.unstable_listing)?;
        Ok(json!({
            "success": true,
            "code": 200,
            "currentPage": page,
            "total": total.to_string(),
            "datas": rows,
        }))
    })();
    sp_respond(&app, result)
}

async fn sp_groups(State(app): State<Arc<App>>, Query(q): QueryMap) -> Response {
    let result = (|| {
        check_key(&app, q.get("apiKey").map(String::as_str))?;
        let store = lock(&app.smspartner);
        let groups: Vec<Value> = store
            .groups()
            .map(|(id, name, token, count)| {
                json!({"id": id, "name": name, "token": token, "nbContacts": count})
            })
            .collect();
        Ok(json!({"success": true, "code": 200, "groups": groups}))
    })();
    sp_respond(&app, result)
}

// ----------------------------------------------------------------- Mobivate

fn mv_error(status: StatusCode, name: &str, message: &str) -> Response {
    let body = json!({
        "success": false,
        "error": {"name": name, "statusCode": status.as_u16(), "message": message},
    });
    (status, Json(body)).into_response()
}

fn mv_fail(e: &MvError) -> Response {
    let status = StatusCode::from_u16(e.status()).unwrap_or(StatusCode::BAD_REQUEST);
    mv_error(status, e.name(), e.message())
}

/// The 401 answer when the Bearer key is missing or wrong, `None` when it is right.
fn mv_unauthorized(app: &App, headers: &HeaderMap) -> Option<Response> {
    let Some(value) = headers.get(header::AUTHORIZATION) else {
        return Some(mv_error(
            StatusCode::UNAUTHORIZED,
            "UnauthorizedError",
            "Missing API key: send Authorization: Bearer <key>",
        ));
    };
    let token = value.to_str().ok().and_then(|v| {
        let (scheme, token) = v.trim().split_once(' ')?;
        scheme.eq_ignore_ascii_case("bearer").then(|| token.trim())
    });
    (token != Some(app.config.api_key.as_str())).then(|| {
        mv_error(
            StatusCode::UNAUTHORIZED,
            "UnauthorizedError",
            "Invalid or expired API key",
        )
    })
}

async fn mv_create(State(app): State<Arc<App>>, headers: HeaderMap, body: Bytes) -> Response {
    if let Some(r) = mv_unauthorized(&app, &headers) {
        return r;
    }
    let mut received = Received::default();
    let result = MobivateInput::from_json(&body).and_then(|input| {
        let msisdn = input.msisdn.clone().unwrap_or_default();
        let created = lock(&app.mobivate).create(input, &now());
        // Applied, or refused as already there (the msisdn was valid then).
        if matches!(created, Ok(_) | Err(MvError::AliasTaken(_))) {
            received.mobivate_add(&msisdn);
        }
        created
    });
    let response = match result {
        Ok(record) => Json(json!({"success": true, "record": record})).into_response(),
        Err(e) => mv_fail(&e),
    };
    tagged(response, received)
}

async fn mv_update(
    State(app): State<Arc<App>>,
    Path(id): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    if let Some(r) = mv_unauthorized(&app, &headers) {
        return r;
    }
    let result = MobivateInput::from_json(&body)
        .and_then(|input| lock(&app.mobivate).update(&id, input, &now()));
    let mut received = Received::default();
    let response = match result {
        Ok(record) => {
            received.mobivate_update(&record.id);
            Json(json!({"success": true, "record": record})).into_response()
        }
        Err(e) => mv_fail(&e),
    };
    tagged(response, received)
}

async fn mv_delete(
    State(app): State<Arc<App>>,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Response {
    if let Some(r) = mv_unauthorized(&app, &headers) {
        return r;
    }
    let mut received = Received::default();
    let response = match lock(&app.mobivate).delete(&id) {
        Ok(()) => {
            received.mobivate_delete(&id);
            Json(json!({"success": true})).into_response()
        }
        Err(e) => mv_fail(&e),
    };
    tagged(response, received)
}

fn number_param(q: &HashMap<String, String>, name: &str, default: usize) -> Result<usize, MvError> {
    match q.get(name) {
        None => Ok(default),
        Some(v) => v.trim().parse().map_err(|_| {
            MvError::Validation(format!("{name} must be a non-negative integer, got {v:?}"))
        }),
    }
}

async fn mv_list(State(app): State<Arc<App>>, headers: HeaderMap, Query(q): QueryMap) -> Response {
    if let Some(r) = mv_unauthorized(&app, &headers) {
        return r;
    }
    let params = (|| {
        let offset = number_param(&q, "offset", 0)?;
        let limit = number_param(&q, "limit", MV_DEFAULT_LIMIT)?.min(MV_MAX_LIMIT);
        let sort = match q.get("sortField") {
            Some(f) => SortField::parse(f)?,
            None if app.config.stress.unstable_listing => SortField::Unspecified,
            None => SortField::default(),
        };
        let descending = match q.get("sortDir").map(|d| d.to_ascii_lowercase()) {
            None => false,
            Some(d) if d == "asc" => false,
            Some(d) if d == "desc" => true,
            Some(d) => {
                return Err(MvError::Validation(format!(
                    "sortDir must be asc or desc, got {d:?}"
                )));
            }
        };
        Ok((offset, limit, sort, descending))
    })();
    let (offset, limit, sort, descending) = match params {
        Ok(p) => p,
        Err(e) => return mv_fail(&e),
    };
    let store = lock(&app.mobivate);
    let (records, total) = store.list(offset, limit, sort, descending);
    Json(json!({
        "success": true,
        "records": records,
        "offset": offset,
        "limit": limit,
        "total": total,
    }))
    .into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn routes_are_templated() {
        assert_eq!(route_of("/v1/contact/add"), "/v1/contact/add");
        assert_eq!(
            route_of("/addressbook/contacts/abc-123"),
            "/addressbook/contacts/{id}"
        );
        assert_eq!(route_of("/addressbook/contacts/"), "other");
        assert_eq!(route_of("/addressbook/contacts/a/b"), "other");
        assert_eq!(route_of("/nope"), "other");
        assert_eq!(api_of("/v1/group/list"), Api::SmsPartner);
        assert_eq!(api_of("/addressbook/contacts"), Api::Mobivate);
        assert_eq!(api_of("/"), Api::Other);
    }
}
