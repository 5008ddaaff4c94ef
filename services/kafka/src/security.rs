//! Authentication and authorisation on the Kafka door: the SASL exchange of a connection
//! (SaslHandshake, SaslAuthenticate, KIP-368 re-authentication), the user and ACL admin
//! APIs, and the ACL check every handler asks.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use kafka_protocol::ResponseError;
use kafka_protocol::messages::alter_user_scram_credentials_response::AlterUserScramCredentialsResult;
use kafka_protocol::messages::create_acls_response::AclCreationResult;
use kafka_protocol::messages::delete_acls_response::{
    DeleteAclsFilterResult, DeleteAclsMatchingAcl,
};
use kafka_protocol::messages::describe_acls_response::{AclDescription, DescribeAclsResource};
use kafka_protocol::messages::describe_user_scram_credentials_response::{
    CredentialInfo, DescribeUserScramCredentialsResult,
};
use kafka_protocol::messages::{
    AlterUserScramCredentialsRequest, AlterUserScramCredentialsResponse, ApiKey, CreateAclsRequest,
    CreateAclsResponse, DeleteAclsRequest, DeleteAclsResponse, DescribeAclsRequest,
    DescribeAclsResponse, DescribeUserScramCredentialsRequest,
    DescribeUserScramCredentialsResponse, SaslAuthenticateRequest, SaslAuthenticateResponse,
    SaslHandshakeRequest, SaslHandshakeResponse,
};
use kafka_protocol::protocol::StrBytes;
use silt_auth::scram::{self, MAX_ITERATIONS, MIN_ITERATIONS, SaslError, ScramServer};
use silt_auth::{AclSettings, Authenticator, Authorizer, Principal};
use silt_metadata::{
    AclBinding, AclFilter, AclOperation, AclPermission, CLUSTER_RESOURCE, MetadataStore,
    PatternType, ResourceType, ScramMechanism,
};
use tracing::info;

use crate::KafkaState;
use crate::apis::{decode, respond};
use crate::connection::RequestContext;
use crate::error::KafkaError;

/// The SASL mechanisms Silt offers.
pub const SASL_MECHANISMS: [&str; 3] = ["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"];

/// Who may connect and what they may do.
#[derive(Clone)]
pub struct KafkaSecurity {
    /// Mechanisms clients must authenticate with (empty: no SASL on this listener).
    pub sasl_mechanisms: Vec<String>,
    /// How long an authenticated session lasts before the client must re-authenticate
    /// (Kafka's `connections.max.reauth.ms`); `None`: forever.
    pub reauth_after: Option<Duration>,
    pub authenticator: Arc<Authenticator>,
    pub authorizer: Arc<Authorizer>,
    /// What of a client certificate names the principal on a TLS listener.
    pub tls_principal: silt_tls::PrincipalFrom,
}

impl std::fmt::Debug for KafkaSecurity {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KafkaSecurity")
            .field("sasl_mechanisms", &self.sasl_mechanisms)
            .field("reauth_after", &self.reauth_after)
            .finish_non_exhaustive()
    }
}

impl KafkaSecurity {
    /// No authentication, no ACLs (`silt dev`).
    pub fn open(metadata: Arc<dyn MetadataStore>) -> Self {
        Self {
            sasl_mechanisms: Vec::new(),
            reauth_after: None,
            authenticator: Authenticator::new(metadata.clone(), Vec::new()),
            authorizer: Authorizer::new(AclSettings::default(), metadata),
            tls_principal: silt_tls::PrincipalFrom::default(),
        }
    }
}

impl KafkaState {
    /// Whether the request's principal may perform `op` on the resource.
    pub(crate) fn allowed(
        &self,
        ctx: &RequestContext,
        op: AclOperation,
        resource_type: ResourceType,
        name: &str,
    ) -> bool {
        let allowed = self.security.authorizer.authorize(
            &ctx.principal,
            ctx.peer.map(|p| p.ip()),
            op,
            resource_type,
            name,
        );
        if !allowed {
            metrics::counter!("silt_authorization_denied_total", "door" => "kafka").increment(1);
            tracing::debug!(principal = %ctx.principal, ?op, ?resource_type, name, "denied");
        }
        allowed
    }

    pub(crate) fn allowed_on_cluster(&self, ctx: &RequestContext, op: AclOperation) -> bool {
        self.allowed(ctx, op, ResourceType::Cluster, CLUSTER_RESOURCE)
    }

    /// Whether `op` is allowed on some resource of the type.
    pub(crate) fn allowed_on_any(
        &self,
        ctx: &RequestContext,
        op: AclOperation,
        resource_type: ResourceType,
    ) -> bool {
        self.security.authorizer.authorize_any(
            &ctx.principal,
            ctx.peer.map(|p| p.ip()),
            op,
            resource_type,
        )
    }
}

enum Exchange {
    Plain,
    Scram { server: ScramServer, first: bool },
}

/// The authentication state of one connection.
pub(crate) struct Session {
    peer: SocketAddr,
    pub(crate) principal: Arc<Principal>,
    sasl_required: bool,
    authenticated: bool,
    exchange: Option<Exchange>,
    /// The exchange was begun by a v0 handshake (bare tokens follow).
    raw: bool,
    expires: Option<Instant>,
    /// The mechanism the connection authenticated with (re-authentication keeps it).
    mechanism: Option<String>,
    /// When the connection must have authenticated by.
    deadline: Instant,
}

/// How long a client has, from connecting, to complete SASL authentication.
pub(crate) const AUTHENTICATION_TIMEOUT: Duration = Duration::from_secs(30);

/// What the connection does after a SASL request: send the answer, and maybe close.
pub(crate) struct SaslStep {
    pub(crate) answer: Bytes,
    pub(crate) close: Option<String>,
}

fn text(s: impl Into<String>) -> StrBytes {
    StrBytes::from_string(s.into())
}

impl Session {
    pub(crate) fn new(peer: SocketAddr, principal: Principal, sasl_required: bool) -> Self {
        Self {
            peer,
            principal: Arc::new(principal),
            sasl_required,
            authenticated: false,
            exchange: None,
            raw: false,
            expires: None,
            mechanism: None,
            deadline: Instant::now() + AUTHENTICATION_TIMEOUT,
        }
    }

    /// Until when the connection may go on without authenticating (`None`: it has, or
    /// the listener needs no SASL).
    pub(crate) fn authentication_deadline(&self) -> Option<tokio::time::Instant> {
        (self.sasl_required && !self.authenticated)
            .then(|| tokio::time::Instant::from_std(self.deadline))
    }

    /// Why a request other than ApiVersions and the SASL ones may not be served now.
    pub(crate) fn refusal(&self) -> Option<String> {
        if self.sasl_required && !self.authenticated {
            return Some("request before SASL authentication".into());
        }
        if self.expires.is_some_and(|at| Instant::now() >= at) {
            return Some(format!(
                "the SASL session of {} expired without re-authentication",
                self.principal
            ));
        }
        None
    }

    /// Answers SaslHandshake and SaslAuthenticate, moving the session along.
    pub(crate) async fn sasl(
        &mut self,
        state: &KafkaState,
        ctx: &RequestContext,
        mut body: Bytes,
    ) -> Result<SaslStep, KafkaError> {
        if ctx.api_key == ApiKey::SaslHandshake {
            let request: SaslHandshakeRequest = decode(ctx, &mut body)?;
            let offered = &state.security.sasl_mechanisms;
            let mut response = SaslHandshakeResponse::default();
            response.mechanisms = offered.iter().map(|m| text(m.clone())).collect();
            let mechanism = request.mechanism.as_str();
            let close = if offered.is_empty() {
                response.error_code = ResponseError::IllegalSaslState.code();
                Some("SASL handshake on a listener without SASL".to_string())
            } else if self.exchange.is_some() {
                response.error_code = ResponseError::IllegalSaslState.code();
                Some("second SASL handshake before authenticating".to_string())
            } else if self.authenticated
                && (ctx.version == 0 || self.mechanism.as_deref() != Some(mechanism))
            {
                // Re-authentication (KIP-368) keeps the mechanism and uses SaslAuthenticate.
                response.error_code = ResponseError::IllegalSaslState.code();
                Some(format!(
                    "re-authentication with {mechanism:?} (v{}) on a connection authenticated with {:?}",
                    ctx.version,
                    self.mechanism.as_deref().unwrap_or("")
                ))
            } else if !offered.iter().any(|m| m == mechanism) {
                response.error_code = ResponseError::UnsupportedSaslMechanism.code();
                Some(format!("SASL mechanism {mechanism:?} is not offered"))
            } else {
                self.raw = ctx.version == 0;
                self.mechanism = Some(mechanism.to_string());
                self.exchange = Some(match ScramMechanism::from_name(mechanism) {
                    Some(m) => Exchange::Scram {
                        server: ScramServer::new(m),
                        first: true,
                    },
                    None => Exchange::Plain,
                });
                None
            };
            return Ok(SaslStep {
                answer: respond(ctx, &response)?,
                close,
            });
        }
        let request: SaslAuthenticateRequest = decode(ctx, &mut body)?;
        let outcome = self.step(state, &request.auth_bytes).await;
        let mut response = SaslAuthenticateResponse::default();
        response.auth_bytes = Bytes::from(outcome.bytes);
        response.session_lifetime_ms = outcome.lifetime_ms;
        if let Some((code, message)) = outcome.error {
            response.error_code = code.code();
            response.error_message = Some(text(message));
        }
        Ok(SaslStep {
            answer: respond(ctx, &response)?,
            close: outcome.close,
        })
    }

    /// Whether the connection is in a SASL exchange begun by a v0 handshake: its next
    /// frames are bare SASL tokens, not Kafka requests.
    pub(crate) fn in_raw_exchange(&self) -> bool {
        self.raw && self.exchange.is_some()
    }

    /// One bare SASL token of a v0 exchange; the answer is the server's token, framed by
    /// its size. A failure closes the connection (v0 has no way to say why).
    pub(crate) async fn raw_token(&mut self, state: &KafkaState, token: &[u8]) -> SaslStep {
        let outcome = self.step(state, token).await;
        let close = outcome
            .close
            .or_else(|| outcome.error.as_ref().map(|(_, message)| message.clone()));
        if self.exchange.is_none() {
            self.raw = false;
        }
        if outcome.error.is_some() {
            // Nothing to send: v0 clients learn of a failure by the connection closing.
            return SaslStep {
                answer: Bytes::new(),
                close,
            };
        }
        let mut answer = Vec::with_capacity(4 + outcome.bytes.len());
        answer.extend_from_slice(&(outcome.bytes.len() as u32).to_be_bytes());
        answer.extend_from_slice(&outcome.bytes);
        SaslStep {
            answer: Bytes::from(answer),
            close,
        }
    }

    /// Runs one step of the exchange the handshake began.
    async fn step(&mut self, state: &KafkaState, auth_bytes: &[u8]) -> Outcome {
        let outcome = match self.exchange.as_mut() {
            None => Err((
                ResponseError::IllegalSaslState,
                "SaslAuthenticate without a handshake".to_string(),
                String::new(),
            )),
            Some(Exchange::Plain) => plain(state, auth_bytes).await,
            Some(Exchange::Scram { server, first }) => {
                if *first {
                    *first = false;
                    scram_first(state, server, auth_bytes).await
                } else {
                    scram_final(server, auth_bytes)
                }
            }
        };
        let mut out = Outcome {
            bytes: Vec::new(),
            error: None,
            close: None,
            lifetime_ms: 0,
        };
        match outcome {
            Ok(Step::Continue(bytes)) => out.bytes = bytes,
            Ok(Step::Done(user, bytes)) => {
                self.exchange = None;
                let principal = Principal::user(&user);
                if self.authenticated && principal != *self.principal {
                    let reason = "re-authentication must keep the principal of the connection";
                    out.error = Some((ResponseError::SaslAuthenticationFailed, reason.into()));
                    state.security.authenticator.failed(
                        "kafka",
                        principal.as_str(),
                        Some(self.peer),
                        reason,
                    );
                    out.close = Some(reason.to_string());
                } else {
                    let kind = if self.authenticated {
                        "reauthenticated"
                    } else {
                        "authenticated"
                    };
                    metrics::counter!("silt_kafka_authentications_total", "outcome" => kind)
                        .increment(1);
                    tracing::debug!(principal = %principal, peer = %self.peer, kind, "SASL");
                    self.authenticated = true;
                    self.principal = Arc::new(principal);
                    out.bytes = bytes;
                    if let Some(lifetime) = state.security.reauth_after {
                        self.expires = Some(Instant::now() + lifetime);
                        out.lifetime_ms = i64::try_from(lifetime.as_millis()).unwrap_or(i64::MAX);
                    }
                }
            }
            Err((code, message, who)) => {
                self.exchange = None;
                state
                    .security
                    .authenticator
                    .failed("kafka", &who, Some(self.peer), &message);
                out.close = Some(format!("SASL authentication failed: {message}"));
                out.error = Some((code, message));
            }
        }
        out
    }
}

/// The result of one step of an exchange.
struct Outcome {
    bytes: Vec<u8>,
    error: Option<(ResponseError, String)>,
    close: Option<String>,
    lifetime_ms: i64,
}

enum Step {
    Continue(Vec<u8>),
    Done(String, Vec<u8>),
}

/// A failure: the code and message for the client, and who tried (for the log).
type Failure = (ResponseError, String, String);

fn sasl_failure(e: SaslError, who: &str) -> Failure {
    (
        ResponseError::SaslAuthenticationFailed,
        format!("Authentication failed: {e}"),
        who.to_string(),
    )
}

fn unavailable(e: silt_metadata::MetadataError, who: &str) -> Failure {
    // The detail stays in the log; the client learns only that it may retry.
    tracing::warn!(error = %e, "credentials cannot be checked: the metadata service failed");
    (
        ResponseError::SaslAuthenticationFailed,
        "Authentication failed: credentials cannot be checked now; retry".to_string(),
        who.to_string(),
    )
}

async fn plain(state: &KafkaState, message: &[u8]) -> Result<Step, Failure> {
    let (user, password) = scram::parse_plain(message).map_err(|e| sasl_failure(e, ""))?;
    match state
        .security
        .authenticator
        .check_password(&user, &password)
        .await
    {
        Ok(true) => Ok(Step::Done(user, Vec::new())),
        Ok(false) => Err(sasl_failure(SaslError::InvalidCredentials, &user)),
        Err(e) => Err(unavailable(e, &user)),
    }
}

async fn scram_first(
    state: &KafkaState,
    server: &mut ScramServer,
    message: &[u8],
) -> Result<Step, Failure> {
    let user = server
        .client_first(message)
        .map_err(|e| sasl_failure(e, ""))?;
    let key = state
        .security
        .authenticator
        .stand_in_key()
        .await
        .map_err(|e| unavailable(e, &user))?;
    server.set_stand_in_key(key);
    let credential = state
        .security
        .authenticator
        .metadata()
        .scram_credential(&user, server.mechanism())
        .await
        .map_err(|e| unavailable(e, &user))?;
    Ok(Step::Continue(server.server_first(credential)))
}

fn scram_final(server: &mut ScramServer, message: &[u8]) -> Result<Step, Failure> {
    let who = server.user().unwrap_or_default().to_string();
    server
        .client_final(message)
        .map(|(user, last)| Step::Done(user, last))
        .map_err(|e| sasl_failure(e, &who))
}

// --- Users -----------------------------------------------------------------------------

pub(crate) async fn describe_user_scram_credentials(
    state: &KafkaState,
    ctx: &RequestContext,
    request: DescribeUserScramCredentialsRequest,
) -> Result<Bytes, KafkaError> {
    let mut response = DescribeUserScramCredentialsResponse::default();
    if !state.allowed_on_cluster(ctx, AclOperation::Describe) {
        response.error_code = ResponseError::ClusterAuthorizationFailed.code();
        return respond(ctx, &response);
    }
    let all = match state.metadata.scram_credentials().await {
        Ok(all) => all,
        Err(e) => {
            response.error_code = crate::error::metadata_code(&e);
            response.error_message = Some(text(e.to_string()));
            return respond(ctx, &response);
        }
    };
    let mut users: Vec<String> = match request.users {
        Some(named) if !named.is_empty() => named.into_iter().map(|u| u.name.to_string()).collect(),
        _ => all.iter().map(|c| c.user.clone()).collect(),
    };
    users.dedup();
    for user in users {
        let mut result = DescribeUserScramCredentialsResult::default();
        result.user = text(user.clone());
        result.credential_infos = all
            .iter()
            .filter(|c| c.user == user)
            .map(|c| {
                let mut info = CredentialInfo::default();
                info.mechanism = c.mechanism.code();
                info.iterations = i32::try_from(c.iterations).unwrap_or(i32::MAX);
                info
            })
            .collect();
        if result.credential_infos.is_empty() {
            result.error_code = ResponseError::ResourceNotFound.code();
            result.error_message = Some(text(format!("user {user} has no credentials")));
        }
        response.results.push(result);
    }
    respond(ctx, &response)
}

pub(crate) async fn alter_user_scram_credentials(
    state: &KafkaState,
    ctx: &RequestContext,
    request: AlterUserScramCredentialsRequest,
) -> Result<Bytes, KafkaError> {
    let mut response = AlterUserScramCredentialsResponse::default();
    let allowed = state.allowed_on_cluster(ctx, AclOperation::Alter);
    let result = |user: &str, code: i16, message: Option<String>| {
        let mut r = AlterUserScramCredentialsResult::default();
        r.user = text(user);
        r.error_code = code;
        r.error_message = message.map(text);
        r
    };
    for deletion in request.deletions {
        let user = deletion.name.to_string();
        let outcome = if !allowed {
            Err((ResponseError::ClusterAuthorizationFailed, None))
        } else if let Some(m) = ScramMechanism::from_code(deletion.mechanism) {
            match state.metadata.delete_scram_credential(&user, m).await {
                Ok(true) => {
                    info!(user, mechanism = m.name(), by = %ctx.principal, "SCRAM credential deleted");
                    Ok(())
                }
                Ok(false) => Err((
                    ResponseError::ResourceNotFound,
                    Some(format!("user {user} has no {} credential", m.name())),
                )),
                Err(e) => Err((ResponseError::UnknownServerError, Some(e.to_string()))),
            }
        } else {
            Err((
                ResponseError::UnsupportedSaslMechanism,
                Some(format!("unknown SCRAM mechanism {}", deletion.mechanism)),
            ))
        };
        response.results.push(match outcome {
            Ok(()) => result(&user, 0, None),
            Err((code, message)) => result(&user, code.code(), message),
        });
    }
    for upsertion in request.upsertions {
        let user = upsertion.name.to_string();
        let iterations = u32::try_from(upsertion.iterations).unwrap_or(0);
        let outcome = if !allowed {
            Err((ResponseError::ClusterAuthorizationFailed, None))
        } else if user.is_empty() {
            Err((
                ResponseError::UnacceptableCredential,
                Some("empty user name".into()),
            ))
        } else if !(MIN_ITERATIONS..=MAX_ITERATIONS).contains(&iterations) {
            Err((
                ResponseError::UnacceptableCredential,
                Some(format!(
                    "iterations must be between {MIN_ITERATIONS} and {MAX_ITERATIONS}"
                )),
            ))
        } else if upsertion.salt.is_empty() || upsertion.salted_password.is_empty() {
            Err((
                ResponseError::UnacceptableCredential,
                Some("a salt and a salted password are required".into()),
            ))
        } else if let Some(m) = ScramMechanism::from_code(upsertion.mechanism) {
            let credential = scram::credential_from_salted_password(
                &user,
                m,
                iterations,
                upsertion.salt.to_vec(),
                &upsertion.salted_password,
            );
            match state.metadata.set_scram_credential(&credential).await {
                Ok(()) => {
                    info!(user, mechanism = m.name(), by = %ctx.principal, "SCRAM credential set");
                    Ok(())
                }
                Err(e) => Err((ResponseError::UnknownServerError, Some(e.to_string()))),
            }
        } else {
            Err((
                ResponseError::UnsupportedSaslMechanism,
                Some(format!("unknown SCRAM mechanism {}", upsertion.mechanism)),
            ))
        };
        response.results.push(match outcome {
            Ok(()) => result(&user, 0, None),
            Err((code, message)) => result(&user, code.code(), message),
        });
    }
    respond(ctx, &response)
}

// --- ACLs ------------------------------------------------------------------------------

fn enum_or<T>(value: Option<T>, what: &str, code: i8) -> Result<T, String> {
    value.ok_or_else(|| format!("unknown {what} {code}"))
}

fn filter_from(
    resource_type: i8,
    name: Option<StrBytes>,
    pattern_type: i8,
    principal: Option<StrBytes>,
    host: Option<StrBytes>,
    operation: i8,
    permission: i8,
) -> Result<AclFilter, String> {
    Ok(AclFilter {
        principal: principal.map(|p| p.to_string()),
        host: host.map(|h| h.to_string()),
        resource_type: enum_or(
            ResourceType::from_code(resource_type),
            "resource type",
            resource_type,
        )?,
        resource_name: name.map(|n| n.to_string()),
        pattern_type: enum_or(
            PatternType::from_code(pattern_type),
            "pattern type",
            pattern_type,
        )?,
        operation: enum_or(AclOperation::from_code(operation), "operation", operation)?,
        permission: enum_or(
            AclPermission::from_code(permission),
            "permission",
            permission,
        )?,
    })
}

/// The ACL APIs answer SECURITY_DISABLED when ACLs are not enforced, as Kafka does
/// without an authoriser.
fn acl_gate(state: &KafkaState, ctx: &RequestContext, op: AclOperation) -> Option<ResponseError> {
    if !state.security.authorizer.enabled() {
        Some(ResponseError::SecurityDisabled)
    } else if !state.allowed_on_cluster(ctx, op) {
        Some(ResponseError::ClusterAuthorizationFailed)
    } else {
        None
    }
}

pub(crate) async fn create_acls(
    state: &KafkaState,
    ctx: &RequestContext,
    request: CreateAclsRequest,
) -> Result<Bytes, KafkaError> {
    let mut response = CreateAclsResponse::default();
    let gate = acl_gate(state, ctx, AclOperation::Alter);
    for creation in request.creations {
        let mut result = AclCreationResult::default();
        let binding = (|| -> Result<AclBinding, String> {
            let b = AclBinding {
                principal: creation.principal.to_string(),
                host: creation.host.to_string(),
                resource_type: enum_or(
                    ResourceType::from_code(creation.resource_type),
                    "resource type",
                    creation.resource_type,
                )?,
                resource_name: creation.resource_name.to_string(),
                pattern_type: enum_or(
                    PatternType::from_code(creation.resource_pattern_type),
                    "pattern type",
                    creation.resource_pattern_type,
                )?,
                operation: enum_or(
                    AclOperation::from_code(creation.operation),
                    "operation",
                    creation.operation,
                )?,
                permission: enum_or(
                    AclPermission::from_code(creation.permission_type),
                    "permission",
                    creation.permission_type,
                )?,
            };
            b.validate().map_err(|e| e.to_string())?;
            Ok(b)
        })();
        match (gate, binding) {
            (Some(code), _) => result.error_code = code.code(),
            (None, Err(message)) => {
                result.error_code = ResponseError::InvalidRequest.code();
                result.error_message = Some(text(message));
            }
            (None, Ok(binding)) => {
                if let Err(e) = state
                    .security
                    .authorizer
                    .create(std::slice::from_ref(&binding))
                    .await
                {
                    result.error_code = crate::error::metadata_code(&e);
                    result.error_message = Some(text(e.to_string()));
                } else {
                    info!(acl = ?binding, by = %ctx.principal, "ACL created");
                }
            }
        }
        response.results.push(result);
    }
    respond(ctx, &response)
}

pub(crate) async fn describe_acls(
    state: &KafkaState,
    ctx: &RequestContext,
    request: DescribeAclsRequest,
) -> Result<Bytes, KafkaError> {
    let mut response = DescribeAclsResponse::default();
    if let Some(code) = acl_gate(state, ctx, AclOperation::Describe) {
        response.error_code = code.code();
        return respond(ctx, &response);
    }
    let filter = match filter_from(
        request.resource_type_filter,
        request.resource_name_filter,
        request.pattern_type_filter,
        request.principal_filter,
        request.host_filter,
        request.operation,
        request.permission_type,
    ) {
        Ok(f) => f,
        Err(message) => {
            response.error_code = ResponseError::InvalidRequest.code();
            response.error_message = Some(text(message));
            return respond(ctx, &response);
        }
    };
    match state.security.authorizer.describe(&filter).await {
        Ok(bindings) => {
            for b in bindings {
                let mut acl = AclDescription::default();
                acl.principal = text(b.principal);
                acl.host = text(b.host);
                acl.operation = b.operation.code();
                acl.permission_type = b.permission.code();
                match response.resources.iter_mut().find(|r| {
                    r.resource_type == b.resource_type.code()
                        && r.resource_name.as_str() == b.resource_name
                        && r.pattern_type == b.pattern_type.code()
                }) {
                    Some(r) => r.acls.push(acl),
                    None => {
                        let mut r = DescribeAclsResource::default();
                        r.resource_type = b.resource_type.code();
                        r.resource_name = text(b.resource_name);
                        r.pattern_type = b.pattern_type.code();
                        r.acls.push(acl);
                        response.resources.push(r);
                    }
                }
            }
        }
        Err(e) => {
            response.error_code = crate::error::metadata_code(&e);
            response.error_message = Some(text(e.to_string()));
        }
    }
    respond(ctx, &response)
}

pub(crate) async fn delete_acls(
    state: &KafkaState,
    ctx: &RequestContext,
    request: DeleteAclsRequest,
) -> Result<Bytes, KafkaError> {
    let mut response = DeleteAclsResponse::default();
    let gate = acl_gate(state, ctx, AclOperation::Alter);
    let mut filters = Vec::new();
    let mut slots = Vec::new();
    for f in request.filters {
        let mut result = DeleteAclsFilterResult::default();
        match (
            gate,
            filter_from(
                f.resource_type_filter,
                f.resource_name_filter,
                f.pattern_type_filter,
                f.principal_filter,
                f.host_filter,
                f.operation,
                f.permission_type,
            ),
        ) {
            (Some(code), _) => result.error_code = code.code(),
            (None, Err(message)) => {
                result.error_code = ResponseError::InvalidRequest.code();
                result.error_message = Some(text(message));
            }
            (None, Ok(filter)) => {
                slots.push(response.filter_results.len());
                filters.push(filter);
            }
        }
        response.filter_results.push(result);
    }
    if !filters.is_empty() {
        match state.security.authorizer.delete(&filters).await {
            Ok(removed) => {
                for (slot, bindings) in slots.into_iter().zip(removed) {
                    for b in bindings {
                        info!(acl = ?b, by = %ctx.principal, "ACL deleted");
                        let mut m = DeleteAclsMatchingAcl::default();
                        m.resource_type = b.resource_type.code();
                        m.resource_name = text(b.resource_name);
                        m.pattern_type = b.pattern_type.code();
                        m.principal = text(b.principal);
                        m.host = text(b.host);
                        m.operation = b.operation.code();
                        m.permission_type = b.permission.code();
                        response.filter_results[slot].matching_acls.push(m);
                    }
                }
            }
            Err(e) => {
                for slot in slots {
                    response.filter_results[slot].error_code = crate::error::metadata_code(&e);
                    response.filter_results[slot].error_message = Some(text(e.to_string()));
                }
            }
        }
    }
    respond(ctx, &response)
}
