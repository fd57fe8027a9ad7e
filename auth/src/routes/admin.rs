//! `/admin/*`: needs the `admin` role (enforced at the edge by `TOLLGATE_ROUTES` and
//! again here).

use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Deserialize;
use serde_json::json;

use crate::app::{JsonBody, Shared};
use crate::error::ApiError;
use crate::identity::{self, Principal};
use crate::routes::user_json;
use crate::sessions;

fn require_admin(p: &Principal) -> Result<(), ApiError> {
    // The role must be in the token (what the edge checked) and still on the account.
    if p.claims.roles.iter().any(|r| r == "admin") && p.user.roles.iter().any(|r| r == "admin") {
        Ok(())
    } else {
        Err(ApiError::forbidden("insufficient_role", "this route needs the admin role"))
    }
}

/// `GET /admin/users?after=&limit=` query.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Page {
    #[serde(default)]
    after: String,
    #[serde(default = "default_limit")]
    limit: i64,
}

fn default_limit() -> i64 {
    100
}

/// Lists accounts, in id order, a page at a time.
pub async fn list_users(
    State(state): State<Shared>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    page: Result<Query<Page>, axum::extract::rejection::QueryRejection>,
) -> Result<Response, ApiError> {
    let p = identity::authenticate(&state, &method, &uri, &headers, false).await?;
    require_admin(&p)?;
    let Query(page) = page.map_err(|e| ApiError::bad_request("invalid_query", e.body_text()))?;
    if !(1..=1000).contains(&page.limit) {
        return Err(ApiError::bad_request("invalid_query", "limit must be between 1 and 1000"));
    }
    let users = state.store.list_users(&page.after, page.limit).await?;
    let next = (users.len() as i64 == page.limit).then(|| users.last().map(|u| u.id.clone())).flatten();
    Ok(Json(json!({"users": users.iter().map(user_json).collect::<Vec<_>>(), "next_after": next})).into_response())
}

/// `POST /admin/users/{id}/roles` body.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Roles {
    roles: Vec<String>,
}

/// Replaces an account's roles and revokes its access tokens issued until now
/// (`revoke_subject`), so stale privileges stop at the edge within seconds; its
/// sessions stay, and their next refresh carries the new roles.
pub async fn set_roles(
    State(state): State<Shared>,
    Path(id): Path<String>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    JsonBody(body): JsonBody<Roles>,
) -> Result<Response, ApiError> {
    let p = identity::authenticate_write(&state, &method, &uri, &headers, false).await?;
    require_admin(&p)?;
    let mut roles: Vec<String> = Vec::new();
    for r in body.roles {
        let ok = !r.is_empty() && r.len() <= 64 && r.bytes().all(|b| b.is_ascii_alphanumeric() || b"-_.:".contains(&b));
        if !ok {
            return Err(ApiError::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                "invalid_request",
                format!("invalid role name {r:?}"),
            ));
        }
        if !roles.contains(&r) {
            roles.push(r);
        }
    }
    let Some(user) = state.store.user_by_id(&id).await? else {
        return Err(ApiError::new(StatusCode::NOT_FOUND, "unknown_user", "no account has this id"));
    };
    let (_, seq) = sessions::revoke_user(&state, &user, false, "role_change").await?;
    state.store.set_roles(&user.id, &roles, 0).await?;
    let user = state.store.user_by_id(&id).await?.ok_or_else(|| ApiError::internal("user vanished"))?;
    Ok(Json(json!({"user": user_json(&user), "seq": seq})).into_response())
}
