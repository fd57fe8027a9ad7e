//! `/admin/*` and role changes.

use serde_json::json;

use super::harness::{email, Stack};
use crate::both_engines;

both_engines!(roles_are_enforced_and_changes_revoke_old_tokens, |s: Stack| async move {
    let admin = email("admin");
    s.register(&admin).await;
    let user = email("user");
    let user_id = s.register(&user).await;
    let u = s.login(&user).await;
    let ub = format!("Bearer {}", u["access_token"].as_str().unwrap());
    let r = s.get("/admin/users", &[("authorization", &ub)]).await;
    assert_eq!((r.status, r.kind()), (403, "insufficient_role"));
    s.make_admin(&admin).await;
    let a = s.login(&admin).await;
    let ab = format!("Bearer {}", a["access_token"].as_str().unwrap());
    let r = s.get("/admin/users?limit=1", &[("authorization", &ab)]).await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.body["users"].as_array().unwrap().len(), 1);
    assert!(r.body["next_after"].is_string());
    let r = s.get("/admin/users?limit=0", &[("authorization", &ab)]).await;
    assert_eq!((r.status, r.kind()), (400, "invalid_query"));
    // Promote the user: its old token (roles ["user"]) is revoked at once...
    let r = s
        .post(&format!("/admin/users/{user_id}/roles"), json!({"roles": ["user", "editor"]}), &[("authorization", &ab)])
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.body["user"]["roles"], json!(["user", "editor"]));
    assert!(s.rev.denies("sub", &user_id).await);
    let p = s.get("/profile", &[("authorization", &ub)]).await;
    assert_eq!(p.body["reason"], "revoked");
    // ...and the session lives on: the next refresh carries the new roles.
    s.clock.advance_secs(1);
    let r = s.post("/auth/refresh", json!({"refresh_token": u["refresh_token"]}), &[]).await;
    assert_eq!(r.status, 200, "{}", r.body);
    let (_, c) = crate::integration::harness::jwt_parts(r.body["access_token"].as_str().unwrap());
    assert_eq!(c["roles"], json!(["user", "editor"]));
    let nb = format!("Bearer {}", r.body["access_token"].as_str().unwrap());
    assert_eq!(s.get("/profile", &[("authorization", &nb)]).await.status, 200);
    // Errors.
    let r = s.post("/admin/users/nope/roles", json!({"roles": ["x"]}), &[("authorization", &ab)]).await;
    assert_eq!((r.status, r.kind()), (404, "unknown_user"));
    let r = s
        .post(&format!("/admin/users/{user_id}/roles"), json!({"roles": ["bad role"]}), &[("authorization", &ab)])
        .await;
    assert_eq!((r.status, r.kind()), (422, "invalid_request"));
    // Demoting the admin in the database: its token still says admin, the service refuses.
    let aid = s.state.store.user_by_email(&admin).await.unwrap().unwrap().id;
    s.state.store.set_roles(&aid, &["user".into()], 0).await.unwrap();
    let r = s.get("/admin/users", &[("authorization", &ab)]).await;
    assert_eq!(r.status, 403);
});
