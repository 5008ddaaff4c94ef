//! Authentication and authorisation of the HTTP API: HTTP basic auth (a user's password,
//! checked against its SCRAM credential) or a bearer token names the principal; ACLs of
//! Kafka's model decide what it may do, as on the Kafka door.
//!
//! One middleware authenticates every request but the health check and applies the
//! route's ACL check; handlers that act on names found in the body or filter lists (topic
//! creation, listing, committing offsets) check those themselves with [`Caller`].

use std::net::SocketAddr;
use std::sync::Arc;

use axum::extract::{ConnectInfo, MatchedPath, Request, State};
use axum::http::header::{AUTHORIZATION, WWW_AUTHENTICATE};
use axum::http::{HeaderValue, Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use base64::Engine;
use silt_auth::{Authenticator, Authorizer, Principal};
use silt_metadata::{AclOperation, CLUSTER_RESOURCE, ResourceType};

use crate::AppState;
use crate::error::HttpError;

/// Who may call the HTTP API and what they may do.
#[derive(Clone)]
pub struct HttpSecurity {
    /// Refuse requests without valid credentials (401).
    pub require_auth: bool,
    pub authenticator: Arc<Authenticator>,
    pub authorizer: Arc<Authorizer>,
}

/// The authenticated caller of a request (anonymous when authentication is off).
#[derive(Clone)]
pub struct Caller {
    pub principal: Principal,
    pub peer: Option<SocketAddr>,
    /// The credentials it authenticated with (the Authorization header), so a long-lived
    /// answer can check them again: a deleted user or a changed password ends it.
    credentials: Option<Arc<str>>,
}

impl std::fmt::Debug for Caller {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Caller")
            .field("principal", &self.principal)
            .field("peer", &self.peer)
            .finish_non_exhaustive()
    }
}

impl Caller {
    fn anonymous() -> Self {
        Self {
            principal: Principal::anonymous(),
            peer: None,
            credentials: None,
        }
    }
}

impl AppState {
    /// Whether the caller may `op` the resource.
    pub(crate) fn allowed(
        &self,
        caller: &Caller,
        op: AclOperation,
        resource_type: ResourceType,
        name: &str,
    ) -> bool {
        let Some(security) = &self.security else {
            return true;
        };
        let allowed = security.authorizer.authorize(
            &caller.principal,
            caller.peer.map(|p| p.ip()),
            op,
            resource_type,
            name,
        );
        if !allowed {
            metrics::counter!("silt_authorization_denied_total", "door" => "http").increment(1);
        }
        allowed
    }

    /// For long-lived answers (streams, long polls): `Ok` if the caller's credentials still
    /// name the same principal (401 when the user was deleted or its password changed;
    /// 503 when they cannot be checked now) and it may still `op` the resource (403).
    pub(crate) async fn recheck(
        &self,
        caller: &Caller,
        op: AclOperation,
        resource_type: ResourceType,
        name: &str,
    ) -> Result<(), HttpError> {
        let Some(security) = &self.security else {
            return Ok(());
        };
        if let Some(header) = &caller.credentials {
            match authenticate(security, header, caller.peer).await {
                Ok(principal) if principal == caller.principal => {}
                Ok(_) => {
                    return Err(HttpError::new(
                        StatusCode::UNAUTHORIZED,
                        "unauthenticated",
                        "the credentials now name another principal",
                    ));
                }
                Err(reason) if reason == UNAVAILABLE => {
                    return Err(HttpError::new(
                        StatusCode::SERVICE_UNAVAILABLE,
                        "unavailable",
                        reason,
                    ));
                }
                Err(reason) => {
                    return Err(HttpError::new(
                        StatusCode::UNAUTHORIZED,
                        "unauthenticated",
                        format!("the credentials are no longer valid: {reason}"),
                    ));
                }
            }
        }
        self.authorize(caller, op, resource_type, name)
    }

    /// Something that changes when ACLs may have changed (each reload of them): long-lived
    /// answers wait on it to check their caller again at once.
    pub(crate) fn acl_changes(&self) -> Option<tokio::sync::watch::Receiver<u64>> {
        self.security.as_ref().map(|s| s.authorizer.changes())
    }

    /// `Ok` if the caller may `op` the resource, else 403.
    pub(crate) fn authorize(
        &self,
        caller: &Caller,
        op: AclOperation,
        resource_type: ResourceType,
        name: &str,
    ) -> Result<(), HttpError> {
        if self.allowed(caller, op, resource_type, name) {
            Ok(())
        } else {
            Err(forbidden(caller, op, resource_type, name))
        }
    }
}

pub(crate) fn forbidden(
    caller: &Caller,
    op: AclOperation,
    resource_type: ResourceType,
    name: &str,
) -> HttpError {
    HttpError::new(
        StatusCode::FORBIDDEN,
        "forbidden",
        format!(
            "{} may not {op} {} {name}",
            caller.principal,
            resource_type.name().to_lowercase()
        ),
    )
}

/// Why a password could not be checked at all (the metadata service failed): 503, not 401.
const UNAVAILABLE: &str = "credentials cannot be checked now; retry";

fn unauthorized(message: &str) -> Response {
    let mut response =
        HttpError::new(StatusCode::UNAUTHORIZED, "unauthenticated", message).into_response();
    response.headers_mut().insert(
        WWW_AUTHENTICATE,
        HeaderValue::from_static("Basic realm=\"silt\", Bearer realm=\"silt\""),
    );
    response
}

/// Reads the caller's credentials: `Ok(None)` when there are none, `Err` (the reason)
/// when they are wrong.
async fn authenticate(
    security: &HttpSecurity,
    header: &str,
    peer: Option<SocketAddr>,
) -> Result<Principal, String> {
    let (scheme, value) = header.split_once(' ').unwrap_or((header, ""));
    let value = value.trim();
    if scheme.eq_ignore_ascii_case("bearer") {
        return security.authenticator.check_token(value).ok_or_else(|| {
            security
                .authenticator
                .failed("http", "", peer, "unknown bearer token");
            "unknown bearer token".to_string()
        });
    }
    if scheme.eq_ignore_ascii_case("basic") {
        let decoded = base64::engine::general_purpose::STANDARD
            .decode(value)
            .ok()
            .and_then(|b| String::from_utf8(b).ok())
            .ok_or_else(|| "malformed basic credentials".to_string())?;
        let (user, password) = decoded
            .split_once(':')
            .ok_or_else(|| "malformed basic credentials".to_string())?;
        return match security.authenticator.check_password(user, password).await {
            Ok(true) => Ok(Principal::user(user)),
            Ok(false) => {
                security
                    .authenticator
                    .failed("http", user, peer, "invalid credentials");
                Err("invalid credentials".into())
            }
            Err(e) => {
                // The detail stays in the log; the caller learns only that it may retry.
                tracing::warn!(error = %e, "credentials cannot be checked: the metadata service failed");
                Err(UNAVAILABLE.into())
            }
        };
    }
    Err(format!("unsupported authorization scheme {scheme:?}"))
}

/// What a route needs.
#[derive(Debug, PartialEq, Eq)]
enum RouteAcl {
    /// This operation on the resource its path names.
    Check(AclOperation, ResourceType, String),
    /// Only an authenticated caller here: the handler checks what the body or its listing
    /// reveals.
    InHandler,
    /// A route this table does not know: refused while ACLs are on (a new route must say
    /// what it needs before anyone may call it).
    Unknown,
}

/// The resource and operation a route acts on, from its path and method (HEAD as GET).
fn route_acl(method: &Method, route: &str, path: &str) -> RouteAcl {
    use AclOperation::*;
    // Percent-decoded path segments: /v1/topics/{topic}/..., /v1/groups/{group}/...
    let segment = |i: usize| {
        path.split('/')
            .nth(i)
            .map(|s| {
                percent_encoding::percent_decode_str(s)
                    .decode_utf8_lossy()
                    .into_owned()
            })
            .unwrap_or_default()
    };
    let cluster = |op| RouteAcl::Check(op, ResourceType::Cluster, CLUSTER_RESOURCE.to_string());
    let topic = |op| RouteAcl::Check(op, ResourceType::Topic, segment(3));
    let group = |op| RouteAcl::Check(op, ResourceType::Group, segment(3));
    let method = if *method == Method::HEAD {
        "GET"
    } else {
        method.as_str()
    };
    match (method, route) {
        ("GET", "/v1/topics/{topic}") => topic(Describe),
        ("DELETE", "/v1/topics/{topic}") => topic(Delete),
        ("POST", "/v1/topics/{topic}/records") => topic(Write),
        ("GET", "/v1/topics/{topic}/partitions/{partition}/records")
        | ("GET", "/v1/topics/{topic}/partitions/{partition}/stream") => topic(Read),
        ("POST", "/v1/topics/{topic}/partitions/{partition}/delete-records") => topic(Delete),
        ("POST", "/v1/admin/compact") | ("POST", "/v1/admin/faults") => cluster(Alter),
        ("GET", "/metrics") => cluster(Describe),
        ("GET", "/v1/groups/{group}") | ("GET", "/v1/groups/{group}/offsets") => group(Describe),
        ("DELETE", "/v1/groups/{group}") => group(Delete),
        ("PUT", "/v1/groups/{group}/offsets") => group(Read),
        // Checked by the handlers: creating, listing and altering topics (Alter for
        // partitions, AlterConfigs for configs), listing groups; the
        // OpenAPI document needs only an authenticated caller.
        ("POST", "/v1/topics")
        | ("GET", "/v1/topics")
        | ("PATCH", "/v1/topics/{topic}")
        | ("GET", "/v1/groups") => RouteAcl::InHandler,
        ("GET", "/v1/openapi.json") => RouteAcl::InHandler,
        _ => RouteAcl::Unknown,
    }
}

/// Authenticates the request (when required) and applies its route's ACL check.
pub(crate) async fn guard(
    State(state): State<AppState>,
    mut request: Request,
    next: Next,
) -> Response {
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map(|m| m.as_str().to_string());
    let Some(security) = state.security.clone() else {
        request.extensions_mut().insert(Caller::anonymous());
        return next.run(request).await;
    };
    if matches!(route.as_deref(), Some("/healthz" | "/readyz")) {
        return next.run(request).await;
    }
    let peer = request
        .extensions()
        .get::<ConnectInfo<silt_tls::PeerAddr>>()
        .map(|c| c.0.0);
    let header = request
        .headers()
        .get(AUTHORIZATION)
        .and_then(|h| h.to_str().ok())
        .map(str::to_string);
    let principal = match &header {
        Some(header) => match authenticate(&security, header, peer).await {
            Ok(p) => p,
            Err(reason) if reason == UNAVAILABLE => {
                return HttpError::new(StatusCode::SERVICE_UNAVAILABLE, "unavailable", reason)
                    .into_response();
            }
            Err(reason) => return unauthorized(&format!("authentication failed: {reason}")),
        },
        None if security.require_auth => {
            return unauthorized("authentication required: HTTP basic auth or a bearer token");
        }
        None => Principal::anonymous(),
    };
    let caller = Caller {
        principal,
        peer,
        credentials: header.map(Arc::from),
    };
    let acls_on = security.authorizer.enabled();
    match route
        .as_deref()
        .map(|r| route_acl(request.method(), r, request.uri().path()))
    {
        Some(RouteAcl::Check(op, resource_type, name))
            if !state.allowed(&caller, op, resource_type, &name) =>
        {
            return forbidden(&caller, op, resource_type, &name).into_response();
        }
        Some(RouteAcl::Unknown) | None if acls_on => {
            return HttpError::new(
                StatusCode::FORBIDDEN,
                "forbidden",
                format!(
                    "{} {} has no ACL rule",
                    request.method(),
                    request.uri().path()
                ),
            )
            .into_response();
        }
        _ => {}
    }
    request.extensions_mut().insert(caller);
    next.run(request).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn routes_name_their_resource() {
        let acl = route_acl(
            &Method::POST,
            "/v1/topics/{topic}/records",
            "/v1/topics/or%20ders/records",
        );
        let write = RouteAcl::Check(AclOperation::Write, ResourceType::Topic, "or ders".into());
        assert_eq!(acl, write);
        let acl = route_acl(
            &Method::PUT,
            "/v1/groups/{group}/offsets",
            "/v1/groups/g1/offsets",
        );
        let read = RouteAcl::Check(AclOperation::Read, ResourceType::Group, "g1".into());
        assert_eq!(acl, read);
        assert_eq!(
            route_acl(&Method::POST, "/v1/topics", "/v1/topics"),
            RouteAcl::InHandler
        );
        // HEAD is GET (axum answers HEAD with the GET handler).
        let head = route_acl(
            &Method::HEAD,
            "/v1/topics/{topic}/partitions/{partition}/records",
            "/v1/topics/t/partitions/0/records",
        );
        let read = RouteAcl::Check(AclOperation::Read, ResourceType::Topic, "t".into());
        assert_eq!(head, read);
        assert_eq!(
            route_acl(&Method::PATCH, "/v1/topics", "/v1/topics"),
            RouteAcl::Unknown
        );
    }

    /// Every route of the router has a rule (a route added without one would be refused
    /// to everyone while ACLs are on).
    #[test]
    fn every_route_has_a_rule() {
        let source = include_str!("lib.rs");
        let start = source.find("Router::new()").expect("router");
        let end = source[start..].find(".route_layer").expect("layer") + start;
        let routes = &source[start..end];
        let mut seen = 0;
        for (i, _) in routes.match_indices(".route(") {
            let rest = &routes[i + 1..];
            let path = rest.split('"').nth(1).expect("path");
            let handlers = &rest[..rest.find(".route(").unwrap_or(rest.len())];
            for (verb, method) in [
                ("get(", Method::GET),
                ("post(", Method::POST),
                ("put(", Method::PUT),
                ("delete(", Method::DELETE),
                ("patch(", Method::PATCH),
            ] {
                if handlers.contains(verb) && path != "/healthz" && path != "/readyz" {
                    seen += 1;
                    let sample = path
                        .replace("{topic}", "t")
                        .replace("{group}", "g")
                        .replace("{partition}", "0");
                    let rule = route_acl(&method, path, &sample);
                    assert_ne!(rule, RouteAcl::Unknown, "{method} {path}");
                }
            }
        }
        assert!(seen >= 15, "{seen} routes seen");
    }
}
