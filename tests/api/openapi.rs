//! `GET /openapi.json`: OpenAPI 3.1, listing exactly the routes the router registers.

use std::collections::BTreeSet;

use crate::helpers::{Backend, spawn_app};

#[actix_web::test]
async fn the_document_lists_exactly_the_routes_the_router_registers() {
    let mut registered = Vec::new();
    let _app = actix_web::App::new().configure(|cfg| {
        registered = jwt_issuer::http::routes(cfg, true);
    });
    assert!(registered.len() > 40, "{registered:?}");
    let routes: BTreeSet<(String, String)> = registered
        .iter()
        .map(|(m, p)| (m.as_str().to_ascii_lowercase(), (*p).to_owned()))
        .collect();

    let app = spawn_app(&Backend::Sqlite).await;
    let resp = app.get("/openapi.json").await;
    assert_eq!(resp.status, 200);
    assert!(
        resp.header("content-type")
            .unwrap()
            .starts_with("application/json")
    );
    let doc = resp.json();
    assert_eq!(doc["openapi"], "3.1.0");
    let mut documented = BTreeSet::new();
    for (path, item) in doc["paths"].as_object().unwrap() {
        for (method, op) in item.as_object().unwrap() {
            assert!(
                op["responses"].as_object().is_some_and(|r| !r.is_empty()),
                "{method} {path} documents its responses"
            );
            documented.insert((method.clone(), path.clone()));
        }
    }
    let missing: Vec<_> = routes.difference(&documented).collect();
    let phantom: Vec<_> = documented.difference(&routes).collect();
    assert!(missing.is_empty(), "routed but not documented: {missing:?}");
    assert!(phantom.is_empty(), "documented but not routed: {phantom:?}");

    let schemes = &doc["components"]["securitySchemes"];
    assert_eq!(schemes["bearer"]["scheme"], "bearer");
    assert_eq!(schemes["basic"]["scheme"], "basic");
    // The admin API says it wants a bearer token; the token endpoint takes Basic or nothing.
    assert_eq!(
        doc["paths"]["/admin/users"]["get"]["security"][0]["bearer"],
        serde_json::json!([])
    );
    assert_eq!(
        doc["paths"]["/oauth/token"]["post"]["requestBody"]["content"]
            .as_object()
            .unwrap()
            .keys()
            .collect::<Vec<_>>(),
        ["application/x-www-form-urlencoded"]
    );
    // Every schema a response or a body names is defined.
    let text = doc.to_string();
    let schemas = doc["components"]["schemas"].as_object().unwrap();
    for reference in text.split("\"#/components/schemas/").skip(1) {
        let name = reference.split('"').next().unwrap();
        assert!(schemas.contains_key(name), "{name} is not defined");
    }
}
