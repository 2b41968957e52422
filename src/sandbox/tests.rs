//! End-to-end tests of the sandbox over HTTP: a real server on an ephemeral
//! loopback port, driven with reqwest (and raw TCP where "no response" matters).

use std::collections::BTreeMap;
use std::time::Duration;

use clap::Parser;
use reqwest::{Client, StatusCode};
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use super::*;

const KEY: &str = "sandbox-key";

async fn serve(config: SandboxConfig) -> (SandboxHandle, Client) {
    let handle = start(config).await.expect("sandbox starts");
    (handle, Client::new())
}

async fn plain() -> (SandboxHandle, Client) {
    serve(SandboxConfig::default()).await
}

async fn post(client: &Client, h: &SandboxHandle, path: &str, body: Value) -> (StatusCode, Value) {
    let r = client
        .post(format!("{}{path}", h.base_url()))
        .json(&body)
        .send()
        .await
        .expect("response");
    (r.status(), r.json().await.expect("json body"))
}

async fn get(client: &Client, h: &SandboxHandle, path_and_query: &str) -> (StatusCode, Value) {
    let r = client
        .get(format!("{}{path_and_query}", h.base_url()))
        .send()
        .await
        .expect("response");
    (r.status(), r.json().await.expect("json body"))
}

fn input(phone: &str) -> ContactInput {
    ContactInput {
        phone_number: Some(phone.into()),
        ..ContactInput::default()
    }
}

fn assert_code(body: &Value, code: u64, message: &str) {
    assert_eq!(body["success"], false, "{body}");
    assert_eq!(body["code"], code, "{body}");
    assert_eq!(body["message"], message, "{body}");
}

// --------------------------------------------------------------- SMS Partner

#[tokio::test]
async fn sp_add_one_returns_the_contact_in_e164_with_an_id() {
    let (h, c) = plain().await;
    let (status, body) = post(
        &c,
        &h,
        "/v1/contact/add",
        json!({"apiKey": KEY, "groupId": "sandbox", "contact": {
            "phoneNumber": "0612345678", "firstname": "Ada", "lastname": "Lovelace",
            "date": "1815-12-10", "url": "https://example.org", "custom1": "c1", "custom4": "c4"
        }}),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body["success"], true);
    assert_eq!(body["code"], 200);
    let contact = &body["contact"];
    assert_eq!(contact["phoneNumber"], "+33612345678");
    assert_eq!(contact["firstname"], "Ada");
    assert_eq!(contact["lastname"], "Lovelace");
    assert_eq!(contact["date"], "1815-12-10");
    assert_eq!(contact["custom4"], "c4");
    let id = contact["contactId"]
        .as_str()
        .expect("contactId is a string");
    assert!(!id.is_empty());

    let state = h.snapshot();
    let group = state.group("sandbox");
    assert_eq!(group.len(), 1);
    assert_eq!(group[0].contact_id, id);
    assert_eq!(group[0].phone, "+33612345678");
    assert_eq!(group[0].custom1, "c1");
    assert_eq!(state.counters.count("POST /v1/contact/add", "200"), 1);
}

#[tokio::test]
async fn sp_add_coded_errors() {
    let (h, c) = plain().await;
    h.seed_smspartner("sandbox", [input("+33611111111")])
        .unwrap();
    let add = |body: Value| {
        let (c, h) = (&c, &h);
        async move { post(c, h, "/v1/contact/add", body).await }
    };
    let cases = [
        (
            json!({"groupId": "sandbox", "contact": {"phoneNumber": "0622222222"}}),
            10,
            "API key is required",
        ),
        (
            json!({"apiKey": "wrong", "groupId": "sandbox", "contact": {"phoneNumber": "0622222222"}}),
            10,
            "Incorrect API key",
        ),
        (
            json!({"apiKey": KEY, "contact": {"phoneNumber": "0622222222"}}),
            1,
            "groupId is required",
        ),
        (
            json!({"apiKey": KEY, "groupId": "nope", "contact": {"phoneNumber": "0622222222"}}),
            404,
            "Group does not exist",
        ),
        (
            json!({"apiKey": KEY, "groupId": "sandbox"}),
            2,
            "Contact info is required",
        ),
        (
            json!({"apiKey": KEY, "groupId": "sandbox", "contact": {"firstname": "x"}}),
            2,
            "Contact info is required",
        ),
        (
            json!({"apiKey": KEY, "groupId": "sandbox", "contact": {"phoneNumber": "0612"}}),
            9,
            "Invalid phone number",
        ),
        (
            json!({"apiKey": KEY, "groupId": "sandbox", "contact": {"phoneNumber": "06 11 11 11 11"}}),
            15,
            "The number is already in the group",
        ),
    ];
    for (body, code, message) in cases {
        let (status, answer) = add(body.clone()).await;
        assert_eq!(
            status,
            StatusCode::OK,
            "default error status is 200: {body}"
        );
        assert_code(&answer, code, message);
    }
    let r = c
        .post(format!("{}/v1/contact/add", h.base_url()))
        .header("content-type", "application/json")
        .body("{\"apiKey\": ")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    assert_code(&r.json().await.unwrap(), 90, "Malformed JSON");
    // Nothing but the seeded contact.
    assert_eq!(h.snapshot().group("sandbox").len(), 1);
}

#[tokio::test]
async fn sp_coded_errors_use_the_configured_status() {
    let (h, c) = serve(SandboxConfig {
        error_status: 400,
        ..SandboxConfig::default()
    })
    .await;
    let (status, body) = post(
        &c,
        &h,
        "/v1/contact/delete",
        json!({"apiKey": KEY, "contactId": "42"}),
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_code(&body, 404, "Contact does not exist");
}

#[tokio::test]
async fn sp_bulk_add_reports_each_row_in_request_order() {
    let (h, c) = plain().await;
    h.seed_smspartner("sandbox", [input("0611111111")]).unwrap();
    let (status, body) = post(
        &c,
        &h,
        "/v1/contact/add",
        json!({"apiKey": KEY, "groupId": "sandbox", "contactsList": [
            {"phoneNumber": "0622222222", "firstname": "New"},
            {"phoneNumber": "+33611111111"},
            {"phoneNumber": "12ab"},
            {"phoneNumber": "0033633333333"},
            {"phoneNumber": "06 22 22 22 22"},
            {"firstname": "no number"},
        ]}),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    let results = body["results"].as_array().expect("results");
    let summary: Vec<(bool, u64, &str)> = results
        .iter()
        .map(|r| {
            (
                r["success"].as_bool().unwrap(),
                r["code"].as_u64().unwrap(),
                r["phoneNumber"].as_str().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        summary,
        [
            (true, 200, "+33622222222"),
            (false, 15, "+33611111111"),
            (false, 9, "12ab"),
            (true, 200, "+33633333333"),
            (false, 15, "+33622222222"),
            (false, 2, ""),
        ]
    );
    assert!(
        results.iter().all(|r| r.get("contactId").is_none()),
        "no contactId in bulk results"
    );
    assert!(results.iter().all(|r| r["message"].is_string()));
    assert_eq!(body["rapport"]["nbline"], 6);
    assert_eq!(body["rapport"]["nbline_imported"], 2);
    assert_eq!(body["rapport"]["nbline_updated"], 0);
    assert_eq!(body["rapport"]["errors"]["15"], 2);
    assert_eq!(body["groupe"]["name"], "sandbox");
    assert!(body["groupe"]["token"].is_string());

    let phones: Vec<String> = h
        .snapshot()
        .group("sandbox")
        .iter()
        .map(|c| c.phone.clone())
        .collect();
    assert_eq!(phones, ["+33611111111", "+33622222222", "+33633333333"]);
    let new = &h.snapshot().group("sandbox")[1].clone();
    assert_eq!(new.firstname, "New");
}

#[tokio::test]
async fn sp_bulk_add_over_500_is_refused_whole() {
    let (h, c) = plain().await;
    let list: Vec<Value> = (0..501)
        .map(|i| json!({"phoneNumber": format!("06{i:08}")}))
        .collect();
    let (_, body) = post(
        &c,
        &h,
        "/v1/contact/add",
        json!({"apiKey": KEY, "groupId": "sandbox", "contactsList": list}),
    )
    .await;
    assert_eq!(body["success"], false);
    assert_eq!(body["code"], 2);
    assert!(h.snapshot().group("sandbox").is_empty());
    let (_, body) = post(
        &c,
        &h,
        "/v1/contact/add",
        json!({"apiKey": KEY, "groupId": "sandbox", "contactsList": list[..500]}),
    )
    .await;
    assert_eq!(body["rapport"]["nbline_imported"], 500);
}

#[tokio::test]
async fn sp_update_delete_and_detail() {
    let (h, c) = plain().await;
    let ids = h
        .seed_smspartner("sandbox", [input("0611111111"), input("0622222222")])
        .unwrap();
    let (status, body) = post(
        &c,
        &h,
        "/v1/contact/update",
        json!({"apiKey": KEY, "contactId": ids[0], "contact": {"phoneNumber": "0633333333", "firstname": "Grace"}}),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body["success"], true);
    assert_eq!(body["code"], 200);
    assert_eq!(body["contact"]["contactId"], ids[0].as_str());
    assert_eq!(body["contact"]["phoneNumber"], "+33633333333");
    assert_eq!(body["contact"]["firstname"], "Grace");

    let (_, body) = get(
        &c,
        &h,
        &format!("/v1/contact/detail?apiKey={KEY}&contactId={}", ids[0]),
    )
    .await;
    assert_eq!(body["success"], true);
    assert_eq!(body["code"], 200);
    assert_eq!(
        body["contact"]["phone"], "+33633333333",
        "detail says phone, not phoneNumber"
    );
    assert!(body["contact"].get("phoneNumber").is_none());
    assert_eq!(body["contact"]["groupId"], "sandbox");
    assert_eq!(body["contact"]["firstname"], "Grace");

    let update = |body: Value| {
        let (c, h) = (&c, &h);
        async move { post(c, h, "/v1/contact/update", body).await.1 }
    };
    assert_code(
        &update(json!({"apiKey": KEY, "contact": {"firstname": "x"}})).await,
        1,
        "contactId is required",
    );
    assert_code(
        &update(json!({"apiKey": KEY, "contactId": ids[0]})).await,
        2,
        "Contact info is required",
    );
    assert_code(
        &update(json!({"apiKey": KEY, "contactId": "nope", "contact": {"firstname": "x"}})).await,
        404,
        "Contact does not exist",
    );
    assert_code(
        &update(
            json!({"apiKey": KEY, "contactId": ids[1], "contact": {"phoneNumber": "+33633333333"}}),
        )
        .await,
        15,
        "The number is already in the group",
    );
    assert_code(
        &update(json!({"apiKey": "bad", "contactId": ids[1], "contact": {}})).await,
        10,
        "Incorrect API key",
    );

    let (_, body) = post(
        &c,
        &h,
        "/v1/contact/delete",
        json!({"apiKey": KEY, "contactId": ids[0]}),
    )
    .await;
    assert_eq!(body, json!({"success": true, "code": 200}));
    let (_, body) = post(
        &c,
        &h,
        "/v1/contact/delete",
        json!({"apiKey": KEY, "contactId": ids[0]}),
    )
    .await;
    assert_code(&body, 404, "Contact does not exist");
    let (_, body) = post(&c, &h, "/v1/contact/delete", json!({"apiKey": KEY})).await;
    assert_code(&body, 1, "contactId is required");
    let (_, body) = get(
        &c,
        &h,
        &format!("/v1/contact/detail?apiKey={KEY}&contactId={}", ids[0]),
    )
    .await;
    assert_code(&body, 404, "Contact does not exist");
    let (_, body) = get(&c, &h, &format!("/v1/contact/detail?contactId={}", ids[1])).await;
    assert_code(&body, 10, "API key is required");

    let state = h.snapshot();
    assert_eq!(state.group("sandbox").len(), 1);
    assert_eq!(state.counters.total("POST /v1/contact/update"), 6);
    assert_eq!(state.counters.count("GET /v1/contact/detail", "200"), 3);
    // Only the delete that removed a contact is counted as received.
    assert_eq!(
        state.counters.received.smspartner_deletes,
        std::collections::BTreeMap::from([(ids[0].clone(), 1)])
    );
    assert_eq!(state.counters.received.delete_count(), 1);
    assert_eq!(state.counters.total("POST /v1/contact/delete"), 3);
}

/// Sends what `SmsPartner::detail` builds and reads the answer with its `parse_detail`.
async fn provider_detail(
    client: &Client,
    h: &SandboxHandle,
    key: &str,
    contact_id: &str,
) -> Result<Option<String>, crate::provider::OpError> {
    use crate::provider::Provider;
    use crate::provider::smspartner::SmsPartner;
    let provider = SmsPartner::new(reqwest::Url::parse(&h.base_url()).unwrap()).unwrap();
    let key = crate::secret::ApiKey::new(key.into());
    let req = provider
        .detail(&key, contact_id)
        .expect("SMS Partner reads by id");
    let r = client.request(req.method, req.url).send().await.unwrap();
    let status = r.status().as_u16();
    let body = r.bytes().await.unwrap();
    provider.parse_detail(status, &body)
}

#[tokio::test]
async fn sp_detail_answers_what_the_client_reads() {
    // API-NOTES: `{success, code, contact: {contactId, phone, firstname, …, groupId}}`
    // (the seed pages document add and update only). The client's parser and
    // the sandbox must agree, under every configured error status.
    for error_status in [200, 400, 404] {
        let (h, c) = serve(SandboxConfig {
            error_status,
            ..SandboxConfig::default()
        })
        .await;
        let ids = h
            .seed_smspartner("sandbox", [input("06 11 11 11 11"), input("0622222222")])
            .unwrap();
        let (status, body) = get(
            &c,
            &h,
            &format!("/v1/contact/detail?apiKey={KEY}&contactId={}", ids[0]),
        )
        .await;
        assert_eq!(status, StatusCode::OK);
        let contact = body["contact"].as_object().unwrap();
        let mut fields: Vec<&str> = contact.keys().map(String::as_str).collect();
        fields.sort_unstable();
        assert_eq!(
            fields,
            [
                "contactId",
                "custom1",
                "custom2",
                "custom3",
                "custom4",
                "date",
                "firstname",
                "groupId",
                "lastname",
                "phone",
                "shortUrlPartnr",
                "url"
            ]
        );
        assert_eq!(contact["contactId"], ids[0].as_str());

        let read = |id: String, key: &'static str| {
            let (c, h) = (&c, &h);
            async move { provider_detail(c, h, key, &id).await }
        };
        assert_eq!(
            read(ids[0].clone(), KEY).await,
            Ok(Some("+33611111111".into()))
        );
        assert_eq!(read("999".into(), KEY).await, Ok(None), "{error_status}");
        post(
            &c,
            &h,
            "/v1/contact/delete",
            json!({"apiKey": KEY, "contactId": ids[1]}),
        )
        .await;
        assert_eq!(read(ids[1].clone(), KEY).await, Ok(None), "deleted");
        assert!(
            matches!(
                read(ids[0].clone(), "wrong").await,
                Err(crate::provider::OpError::Auth(_))
            ),
            "{error_status}"
        );
        assert!(
            matches!(
                read(String::new(), KEY).await,
                Err(crate::provider::OpError::Failed(e)) if e.code == crate::codes::ErrorCode::Api(1)
            ),
            "{error_status}"
        );
    }
}

#[tokio::test]
async fn sp_list_pages_by_twenty_with_total_as_string() {
    let (h, c) = plain().await;
    let ids = h
        .seed_smspartner("sandbox", (0..45).map(|i| input(&format!("06{i:08}"))))
        .unwrap();
    let mut seen = Vec::new();
    for (page, expected) in [(1, 20), (2, 20), (3, 5), (4, 0)] {
        let (status, body) = get(
            &c,
            &h,
            &format!("/v1/contact/list?apiKey={KEY}&groupId=sandbox&page={page}"),
        )
        .await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(body["success"], true);
        assert_eq!(body["code"], 200);
        assert_eq!(body["total"], "45", "total is a string");
        assert_eq!(body["currentPage"], page);
        let datas = body["datas"].as_array().unwrap();
        assert_eq!(datas.len(), expected, "page {page}");
        for row in datas {
            assert!(row["phone"].as_str().unwrap().starts_with("+336"));
            seen.push(row["contactId"].as_str().unwrap().to_string());
        }
    }
    assert_eq!(seen, ids, "stable insertion order, nothing twice");
    // No page = page 1.
    let (_, body) = get(
        &c,
        &h,
        &format!("/v1/contact/list?apiKey={KEY}&groupId=sandbox"),
    )
    .await;
    assert_eq!(body["datas"][0]["contactId"], ids[0].as_str());

    let (_, body) = get(&c, &h, &format!("/v1/contact/list?apiKey={KEY}")).await;
    assert_code(&body, 1, "groupId is required");
    let (_, body) = get(
        &c,
        &h,
        &format!("/v1/contact/list?apiKey={KEY}&groupId=other"),
    )
    .await;
    assert_code(&body, 404, "Group does not exist");
    let (_, body) = get(&c, &h, "/v1/contact/list?apiKey=nope&groupId=sandbox").await;
    assert_code(&body, 10, "Incorrect API key");
}

#[tokio::test]
async fn sp_group_list_shows_the_configured_groups() {
    let (h, c) = serve(SandboxConfig {
        groups: vec!["g1".into(), "g2".into()],
        ..SandboxConfig::default()
    })
    .await;
    h.seed_smspartner("g2", [input("0611111111")]).unwrap();
    assert!(h.seed_smspartner("sandbox", [input("0611111111")]).is_err());
    let (status, body) = get(&c, &h, &format!("/v1/group/list?apiKey={KEY}")).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body["success"], true);
    let groups = body["groups"].as_array().unwrap();
    let ids: Vec<&str> = groups.iter().map(|g| g["id"].as_str().unwrap()).collect();
    assert_eq!(ids, ["g1", "g2"]);
    assert_eq!(groups[1]["name"], "g2");
    assert_eq!(groups[1]["nbContacts"], 1);
    let (_, body) = get(&c, &h, "/v1/group/list").await;
    assert_code(&body, 10, "API key is required");
}

// ------------------------------------------------------------------ Mobivate

fn mv(
    client: &Client,
    h: &SandboxHandle,
    method: reqwest::Method,
    path: &str,
) -> reqwest::RequestBuilder {
    client
        .request(method, format!("{}{path}", h.base_url()))
        .bearer_auth(KEY)
}

async fn answer(rb: reqwest::RequestBuilder) -> (StatusCode, Value) {
    let r = rb.send().await.expect("response");
    (r.status(), r.json().await.expect("json body"))
}

fn assert_mv_error(status: StatusCode, body: &Value, expected: StatusCode, name: &str) {
    assert_eq!(status, expected, "{body}");
    assert_eq!(body["success"], false);
    assert_eq!(body["error"]["name"], name, "{body}");
    assert_eq!(body["error"]["statusCode"], expected.as_u16());
    assert!(body["error"]["message"].is_string());
}

#[tokio::test]
async fn mv_bearer_auth_is_required() {
    let (h, c) = plain().await;
    let url = format!("{}/addressbook/contacts", h.base_url());
    let body = json!({"alias": "a", "msisdn": "33611111111"});
    let (s, b) = answer(c.post(&url).json(&body)).await;
    assert_mv_error(s, &b, StatusCode::UNAUTHORIZED, "UnauthorizedError");
    let (s, b) = answer(c.post(&url).bearer_auth("wrong").json(&body)).await;
    assert_mv_error(s, &b, StatusCode::UNAUTHORIZED, "UnauthorizedError");
    let (s, b) = answer(c.get(&url).basic_auth(KEY, Some(""))).await;
    assert_mv_error(s, &b, StatusCode::UNAUTHORIZED, "UnauthorizedError");
    // The SMS Partner way (key in the query) is not Mobivate's.
    let (s, b) = answer(c.get(format!("{url}?apiKey={KEY}"))).await;
    assert_mv_error(s, &b, StatusCode::UNAUTHORIZED, "UnauthorizedError");
    assert!(h.snapshot().mobivate.is_empty());
    let (s, _) = answer(c.post(&url).bearer_auth(KEY).json(&body)).await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(
        h.snapshot()
            .counters
            .count("POST /addressbook/contacts", "401"),
        2
    );
}

#[tokio::test]
async fn mv_create_validates_and_returns_the_record() {
    let (h, c) = plain().await;
    let (s, b) = answer(
        mv(&c, &h, reqwest::Method::POST, "/addressbook/contacts").json(&json!({
            "alias": "+33611111111", "msisdn": "33611111111", "meta": {"FIRSTNAME": "Ada"}
        })),
    )
    .await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(b["success"], true);
    let record = &b["record"];
    let id = record["id"].as_str().unwrap();
    assert_eq!(id.len(), 36);
    assert_eq!(id.matches('-').count(), 4);
    assert_eq!(record["alias"], "+33611111111");
    assert_eq!(record["msisdn"], "33611111111");
    assert!(record["created_on"].as_str().unwrap().ends_with('Z'));

    for bad in [
        json!({"msisdn": "33622222222"}),
        json!({"alias": "", "msisdn": "33622222222"}),
        json!({"alias": "+33611111111", "msisdn": "33622222222"}),
        json!({"alias": "b"}),
        json!({"alias": "b", "msisdn": "+33622222222"}),
        json!({"alias": "b", "msisdn": "0622 22"}),
        json!({"alias": "b", "msisdn": "33622222222", "meta": [1]}),
    ] {
        let (s, b) =
            answer(mv(&c, &h, reqwest::Method::POST, "/addressbook/contacts").json(&bad)).await;
        assert_mv_error(s, &b, StatusCode::BAD_REQUEST, "ValidationError");
    }
    let (s, b) =
        answer(mv(&c, &h, reqwest::Method::POST, "/addressbook/contacts").body("{nope")).await;
    assert_mv_error(s, &b, StatusCode::BAD_REQUEST, "ValidationError");

    let state = h.snapshot();
    assert_eq!(state.mobivate.len(), 1);
    assert_eq!(state.mobivate[0].id, id);
    assert_eq!(state.mobivate[0].meta["FIRSTNAME"], "Ada");
}

#[tokio::test]
async fn mv_update_list_and_delete() {
    let (h, c) = plain().await;
    let ids = h
        .seed_mobivate((0..7).map(|i| MobivateInput {
            alias: Some(format!("a{i}")),
            msisdn: Some(format!("3361111111{i}")),
            meta: None,
        }))
        .unwrap();
    let path = format!("/addressbook/contacts/{}", ids[2]);
    let (s, b) = answer(
        mv(&c, &h, reqwest::Method::POST, &path)
            .json(&json!({"msisdn": "33699999999", "meta": {"NAME": "x"}})),
    )
    .await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(b["success"], true);
    assert_eq!(b["record"]["id"], ids[2].as_str());
    assert_eq!(b["record"]["alias"], "a2");
    assert_eq!(b["record"]["msisdn"], "33699999999");
    assert!(b["record"]["updated_on"].is_string());

    let (s, b) = answer(
        mv(
            &c,
            &h,
            reqwest::Method::POST,
            "/addressbook/contacts/00000000-0000-4000-8000-000000000000",
        )
        .json(&json!({"alias": "z"})),
    )
    .await;
    assert_mv_error(s, &b, StatusCode::NOT_FOUND, "NotFoundError");
    let (s, b) =
        answer(mv(&c, &h, reqwest::Method::POST, &path).json(&json!({"alias": "a3"}))).await;
    assert_mv_error(s, &b, StatusCode::BAD_REQUEST, "ValidationError");

    let (s, b) = answer(mv(
        &c,
        &h,
        reqwest::Method::GET,
        "/addressbook/contacts?offset=5&limit=5",
    ))
    .await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(b["success"], true);
    assert_eq!(
        (b["offset"].clone(), b["limit"].clone(), b["total"].clone()),
        (json!(5), json!(5), json!(7))
    );
    let aliases: Vec<&str> = b["records"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["alias"].as_str().unwrap())
        .collect();
    assert_eq!(aliases, ["a5", "a6"]);
    let (_, b) = answer(mv(
        &c,
        &h,
        reqwest::Method::GET,
        "/addressbook/contacts?limit=2&sortField=alias&sortDir=desc",
    ))
    .await;
    assert_eq!(b["records"][0]["alias"], "a6");
    assert_eq!(b["records"].as_array().unwrap().len(), 2);
    let (s, b) = answer(mv(
        &c,
        &h,
        reqwest::Method::GET,
        "/addressbook/contacts?limit=ten",
    ))
    .await;
    assert_mv_error(s, &b, StatusCode::BAD_REQUEST, "ValidationError");

    let (s, b) = answer(mv(&c, &h, reqwest::Method::DELETE, &path)).await;
    assert_eq!((s, b), (StatusCode::OK, json!({"success": true})));
    let (s, b) = answer(mv(&c, &h, reqwest::Method::DELETE, &path)).await;
    assert_mv_error(s, &b, StatusCode::NOT_FOUND, "NotFoundError");
    let (s, b) = answer(c.delete(format!("{}{path}", h.base_url()))).await;
    assert_mv_error(s, &b, StatusCode::UNAUTHORIZED, "UnauthorizedError");

    let state = h.snapshot();
    assert_eq!(state.mobivate.len(), 6);
    assert_eq!(state.counters.received.mobivate_deletes.len(), 1);
    assert_eq!(state.counters.received.delete_count(), 1);
    assert_eq!(
        state
            .counters
            .count("DELETE /addressbook/contacts/{id}", "404"),
        1
    );
    assert_eq!(
        state
            .counters
            .count("POST /addressbook/contacts/{id}", "200"),
        1
    );
}

// ------------------------------------------------------------ what is received

#[tokio::test]
async fn adds_are_counted_per_target_and_number_applied_or_refused_as_existing() {
    let (h, c) = serve(SandboxConfig {
        groups: vec!["g1".into(), "g2".into()],
        ..SandboxConfig::default()
    })
    .await;
    // Pre-loaded contacts were never sent: not counted.
    let ids = h.seed_smspartner("g1", [input("0611111111")]).unwrap();
    let add =
        |group: &str, contact: Value| json!({"apiKey": KEY, "groupId": group, "contact": contact});
    let sp = |body: Value| {
        let (c, h) = (&c, &h);
        async move { post(c, h, "/v1/contact/add", body).await.1 }
    };
    // Applied, then refused as already in the group: one add each.
    assert_eq!(
        sp(add("g1", json!({"phoneNumber": "0622222222"}))).await["success"],
        true
    );
    assert_code(
        &sp(add("g1", json!({"phoneNumber": "06 11 11 11 11"}))).await,
        15,
        "The number is already in the group",
    );
    // Refused for other reasons: not an add of that number.
    sp(add("g1", json!({"phoneNumber": "0612"}))).await;
    sp(add("nope", json!({"phoneNumber": "0644444444"}))).await;
    sp(json!({"apiKey": "wrong", "groupId": "g1", "contact": {"phoneNumber": "0644444444"}})).await;
    // Bulk: every item counts on its own, including a repeat within the list.
    let bulk = sp(json!({"apiKey": KEY, "groupId": "g1", "contactsList": [
        {"phoneNumber": "+33622222222"},
        {"phoneNumber": "0633333333"},
        {"phoneNumber": "0033633333333"},
        {"phoneNumber": "12ab"},
        {"firstname": "no number"},
    ]}))
    .await;
    let codes: Vec<&Value> = bulk["results"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| &r["code"])
        .collect();
    assert_eq!(
        codes,
        [&json!(15), &json!(200), &json!(15), &json!(9), &json!(2)]
    );
    // Another group is another target.
    sp(add("g2", json!({"phoneNumber": "0622222222"}))).await;
    // Updates count by contact id when applied.
    let update = |id: &str| json!({"apiKey": KEY, "contactId": id, "contact": {"firstname": "x"}});
    post(&c, &h, "/v1/contact/update", update(&ids[0])).await;
    post(&c, &h, "/v1/contact/update", update(&ids[0])).await;
    post(&c, &h, "/v1/contact/update", update("999")).await;

    // Mobivate: a create counts by msisdn, applied or refused for its alias.
    let create =
        |body: Value| mv(&c, &h, reqwest::Method::POST, "/addressbook/contacts").json(&body);
    let (_, b) = answer(create(json!({"alias": "ada", "msisdn": "33611111111"}))).await;
    let mv_id = b["record"]["id"].as_str().unwrap().to_string();
    let (s, b) = answer(create(json!({"alias": "ada", "msisdn": "33622222222"}))).await;
    assert_mv_error(s, &b, StatusCode::BAD_REQUEST, "ValidationError");
    let (s, _) = answer(create(json!({"alias": "bob", "msisdn": "+33633333333"}))).await;
    assert_eq!(
        s,
        StatusCode::BAD_REQUEST,
        "an invalid msisdn is not counted"
    );
    let (s, _) = answer(
        c.post(format!("{}/addressbook/contacts", h.base_url()))
            .bearer_auth("wrong")
            .json(&json!({"alias": "eve", "msisdn": "33644444444"})),
    )
    .await;
    assert_eq!(s, StatusCode::UNAUTHORIZED);
    let path = format!("/addressbook/contacts/{mv_id}");
    let (s, _) = answer(mv(&c, &h, reqwest::Method::POST, &path).json(&json!({"meta": {}}))).await;
    assert_eq!(s, StatusCode::OK);

    let state = h.snapshot();
    let received = &state.counters.received;
    assert_eq!(
        received.smspartner_adds_in("g1"),
        BTreeMap::from([
            ("+33611111111".to_string(), 1),
            ("+33622222222".to_string(), 2),
            ("+33633333333".to_string(), 2),
        ])
    );
    assert_eq!(
        received.smspartner_adds_in("g2"),
        BTreeMap::from([("+33622222222".to_string(), 1)])
    );
    assert_eq!(received.smspartner_add_count("nope", "+33644444444"), 0);
    assert_eq!(received.smspartner_add_count("g1", "+33644444444"), 0);
    assert_eq!(
        received.smspartner_updates,
        BTreeMap::from([(ids[0].clone(), 2)])
    );
    assert_eq!(
        received.mobivate_adds,
        BTreeMap::from([
            ("33611111111".to_string(), 1),
            ("33622222222".to_string(), 1)
        ])
    );
    assert_eq!(received.mobivate_updates, BTreeMap::from([(mv_id, 1)]));
    assert_eq!(
        state.counters.unanswered,
        Received::default(),
        "every answer was sent"
    );

    // The inspection endpoint serves the same counts.
    let (_, served) = get(&c, &h, "/_sandbox/state").await;
    assert_eq!(
        served["counters"]["received"]["smspartner_adds"]["g1"]["+33622222222"],
        2
    );
    assert_eq!(
        served["counters"]["received"]["mobivate_adds"]["33622222222"],
        1
    );
    let served: SandboxState = serde_json::from_value(served).unwrap();
    assert_eq!(served, state);
}

#[test]
fn state_json_without_the_received_counts_still_reads() {
    // What /_sandbox/state served before the counts were added.
    let old = json!({
        "smspartner": [{"id": "g1", "contacts": []}],
        "mobivate": [],
        "counters": {
            "requests": {"POST /v1/contact/add": {"200": 1}},
            "faults": {"rate_limited": 0, "server_error": 0, "dropped": 0, "lost": 0, "delayed": 0}
        }
    });
    let state: SandboxState = serde_json::from_value(old).unwrap();
    assert_eq!(state.counters.count("POST /v1/contact/add", "200"), 1);
    assert!(state.counters.received.is_empty() && state.counters.unanswered.is_empty());
}

// -------------------------------------------------------------------- faults

fn stressed(f: impl FnOnce(&mut faults::FaultSettings)) -> SandboxConfig {
    let mut config = SandboxConfig::default();
    f(&mut config.stress);
    config
}

fn add_body(phone: &str) -> Value {
    json!({"apiKey": KEY, "groupId": "sandbox", "contact": {"phoneNumber": phone}})
}

#[tokio::test]
async fn rate_limit_answers_429_with_retry_after_past_the_burst() {
    // One token per 100 s: the bucket never refills during the test.
    let (h, c) = serve(stressed(|s| {
        s.rate = Some(0.01);
        s.burst = 3;
    }))
    .await;
    for i in 0..3 {
        let (s, b) = post(
            &c,
            &h,
            "/v1/contact/add",
            add_body(&format!("061111111{i}")),
        )
        .await;
        assert_eq!((s, b["success"].clone()), (StatusCode::OK, json!(true)));
    }
    let r = c
        .post(format!("{}/v1/contact/add", h.base_url()))
        .json(&add_body("0622222222"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::TOO_MANY_REQUESTS);
    let retry_after: u64 = r.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert_eq!(retry_after, 100);
    let r = mv(&c, &h, reqwest::Method::GET, "/addressbook/contacts")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::TOO_MANY_REQUESTS);
    assert!(r.headers().contains_key("retry-after"));
    let (s, b) = (r.status(), r.json::<Value>().await.unwrap());
    assert_mv_error(s, &b, StatusCode::TOO_MANY_REQUESTS, "TooManyRequestsError");
    // The inspection endpoint is never limited.
    for _ in 0..5 {
        let (s, _) = get(&c, &h, "/_sandbox/state").await;
        assert_eq!(s, StatusCode::OK);
    }
    let state = h.snapshot();
    assert_eq!(
        state.group("sandbox").len(),
        3,
        "the limited add was not applied"
    );
    assert_eq!(state.counters.faults.rate_limited, 2);
    assert_eq!(state.counters.count("POST /v1/contact/add", "429"), 1);
    assert_eq!(state.counters.count("POST /v1/contact/add", "200"), 3);
}

#[tokio::test]
async fn injected_5xx_applies_nothing() {
    let (h, c) = serve(stressed(|s| s.fault_rate = 1.0)).await;
    let r = c
        .post(format!("{}/v1/contact/add", h.base_url()))
        .json(&add_body("0611111111"))
        .send()
        .await
        .unwrap();
    assert!(r.status().is_server_error());
    let (s, b) = answer(
        mv(&c, &h, reqwest::Method::POST, "/addressbook/contacts")
            .json(&json!({"alias": "a", "msisdn": "33611111111"})),
    )
    .await;
    assert_mv_error(
        s,
        &b,
        StatusCode::INTERNAL_SERVER_ERROR,
        "InternalServerError",
    );
    // The inspection endpoint is never faulted.
    let (s, state) = get(&c, &h, "/_sandbox/state").await;
    assert_eq!(s, StatusCode::OK);
    let state: SandboxState = serde_json::from_value(state).unwrap();
    assert!(state.group("sandbox").is_empty());
    assert!(state.mobivate.is_empty());
    assert_eq!(state.counters.faults.server_error, 2);
    assert_eq!(state.counters.count("POST /v1/contact/add", "500"), 1);
    assert_eq!(
        state.counters.received,
        Received::default(),
        "never received"
    );
}

// ------------------------------------------------------------ hostile modes

fn bulk_body(phones: &[String]) -> Value {
    let list: Vec<Value> = phones.iter().map(|p| json!({"phoneNumber": p})).collect();
    json!({"apiKey": KEY, "groupId": "sandbox", "contactsList": list})
}

#[tokio::test]
async fn reordered_bulk_results_keep_each_number_with_its_own_result() {
    let (h, c) = serve(stressed(|s| s.reorder_bulk = true)).await;
    h.seed_smspartner("sandbox", [input("+33600000010")])
        .unwrap();
    let phones: Vec<String> = (10..40).map(|i| format!("+336000000{i:02}")).collect();
    let (status, body) = post(&c, &h, "/v1/contact/add", bulk_body(&phones)).await;
    assert_eq!(status, StatusCode::OK);
    let results = body["results"].as_array().unwrap();
    let order: Vec<&str> = results
        .iter()
        .map(|r| r["phoneNumber"].as_str().unwrap())
        .collect();
    assert_ne!(order, phones, "not in request order");
    let mut sorted = order.clone();
    sorted.sort_unstable();
    assert_eq!(sorted, phones, "one result per number");
    for r in results {
        let code = if r["phoneNumber"] == "+33600000010" {
            15
        } else {
            200
        };
        assert_eq!(r["code"], code, "{r}");
    }
}

#[tokio::test]
async fn retry_after_forms() {
    let limited = |form: faults::RetryAfterForm, secs: Option<u64>| {
        stressed(move |s| {
            s.rate = Some(0.01);
            s.burst = 1;
            s.retry_after = form;
            s.retry_after_secs = secs;
        })
    };
    let header_after_the_burst = |config: SandboxConfig| async move {
        let (h, c) = serve(config).await;
        let url = format!("{}/v1/group/list?apiKey={KEY}", h.base_url());
        assert_eq!(c.get(&url).send().await.unwrap().status(), StatusCode::OK);
        let r = c.get(&url).send().await.unwrap();
        assert_eq!(r.status(), StatusCode::TOO_MANY_REQUESTS);
        r.headers()
            .get("retry-after")
            .map(|v| v.to_str().unwrap().to_string())
    };
    use faults::RetryAfterForm as F;
    assert_eq!(
        header_after_the_burst(limited(F::Seconds, None))
            .await
            .as_deref(),
        Some("100")
    );
    assert_eq!(
        header_after_the_burst(limited(F::Seconds, Some(3600)))
            .await
            .as_deref(),
        Some("3600")
    );
    let date = header_after_the_burst(limited(F::Date, Some(3600)))
        .await
        .unwrap();
    let wait = crate::dispatch::parse_retry_after(&date, chrono::Utc::now()).unwrap();
    assert!((3590..=3600).contains(&wait.as_secs()), "{date}: {wait:?}");
    let far = header_after_the_burst(limited(F::Date, Some(u64::MAX)))
        .await
        .unwrap();
    assert!(far.ends_with("9999 23:59:59 GMT"), "{far}");
    let garbage = header_after_the_burst(limited(F::Garbage, None))
        .await
        .unwrap();
    assert_eq!(
        crate::dispatch::parse_retry_after(&garbage, chrono::Utc::now()),
        None
    );
    assert_eq!(header_after_the_burst(limited(F::None, None)).await, None);
}

#[tokio::test]
async fn misdirect_answers_like_a_host_without_the_api_and_applies_nothing() {
    for (mode, status, starts) in [
        (
            faults::Misdirect::NotFound,
            StatusCode::NOT_FOUND,
            "Not Found",
        ),
        (faults::Misdirect::Html, StatusCode::OK, "<!DOCTYPE html>"),
    ] {
        let (h, c) = serve(stressed(|s| s.misdirect = Some(mode))).await;
        for r in [
            c.post(format!("{}/v1/contact/add", h.base_url()))
                .json(&add_body("0611111111")),
            mv(&c, &h, reqwest::Method::POST, "/addressbook/contacts")
                .json(&json!({"alias": "a", "msisdn": "33611111111"})),
            c.get(format!(
                "{}/v1/contact/list?apiKey={KEY}&groupId=sandbox",
                h.base_url()
            )),
        ] {
            let r = r.send().await.unwrap();
            assert_eq!(r.status(), status, "{mode:?}");
            assert!(r.text().await.unwrap().starts_with(starts), "{mode:?}");
        }
        let state = h.snapshot();
        assert!(state.group("sandbox").is_empty() && state.mobivate.is_empty());
        assert!(state.counters.received.is_empty());
    }
}

#[tokio::test]
async fn echo_key_puts_the_requests_key_in_every_error_message() {
    let (h, c) = serve(stressed(|s| s.echo_key = true)).await;
    // SMS Partner: key in the body, then in the query; a wrong key is echoed as sent.
    let (_, b) = post(
        &c,
        &h,
        "/v1/contact/update",
        json!({"apiKey": KEY, "contactId": "999", "contact": {"firstname": "x"}}),
    )
    .await;
    assert_eq!(b["code"], 404);
    assert!(b["message"].as_str().unwrap().contains(KEY), "{b}");
    let (_, b) = get(&c, &h, "/v1/contact/detail?apiKey=other-key&contactId=1").await;
    assert_eq!(b["code"], 10);
    assert!(b["message"].as_str().unwrap().contains("other-key"), "{b}");
    // Mobivate: the Bearer token, in error.message.
    let (s, b) = answer(
        mv(&c, &h, reqwest::Method::POST, "/addressbook/contacts/nope")
            .json(&json!({"alias": "a"})),
    )
    .await;
    assert_eq!(s, StatusCode::NOT_FOUND);
    assert!(b["error"]["message"].as_str().unwrap().contains(KEY), "{b}");
    // Successes are left alone.
    let (_, b) = post(&c, &h, "/v1/contact/add", add_body("0611111111")).await;
    assert_eq!(b["success"], true);
    assert!(!b.to_string().contains(KEY), "{b}");
}

#[tokio::test]
async fn oversized_answers_apply_then_never_end() {
    let (h, _) = serve(stressed(|s| s.oversize_rate = 1.0)).await;
    let client = Client::new();
    let mut r = client
        .post(format!("{}/v1/contact/add", h.base_url()))
        .json(&add_body("0611111111"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    // Far more than any answer should be, and still coming.
    let mut read = 0usize;
    while read < 32 << 20 {
        read += r
            .chunk()
            .await
            .unwrap()
            .expect("the body does not end")
            .len();
    }
    drop(r);
    let state = h.snapshot();
    assert_eq!(state.group("sandbox").len(), 1, "applied");
    assert_eq!(state.counters.faults.oversized, 1);
    assert_eq!(
        state
            .counters
            .unanswered
            .smspartner_add_count("sandbox", "+33611111111"),
        1,
        "the client could not read the answer"
    );
}

#[tokio::test]
async fn hollow_answers_apply_then_say_nothing() {
    let (h, c) = serve(stressed(|s| s.hollow_rate = 1.0)).await;
    let (status, body) = answer(
        mv(&c, &h, reqwest::Method::POST, "/addressbook/contacts")
            .json(&json!({"alias": "a", "msisdn": "33611111111"})),
    )
    .await;
    assert_eq!((status, body), (StatusCode::OK, json!({"success": true})));
    let (status, body) = post(&c, &h, "/v1/contact/add", add_body("0622222222")).await;
    assert_eq!((status, body), (StatusCode::OK, json!({})));
    let state = h.snapshot();
    assert_eq!(state.mobivate.len(), 1, "applied");
    assert_eq!(state.group("sandbox").len(), 1, "applied");
    assert_eq!(
        state.counters.count("POST /addressbook/contacts", "hollow"),
        1
    );
    assert_eq!(
        state.counters.unanswered.mobivate_add_count("33611111111"),
        1
    );
}

#[tokio::test]
async fn coded_faults_apply_nothing_and_ride_the_configured_status() {
    let (h, c) = serve(stressed(|s| {
        s.coded_rate = 1.0;
        s.coded_status = 503;
    }))
    .await;
    let (status, body) = post(&c, &h, "/v1/contact/add", add_body("0611111111")).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(
        (body["success"].clone(), body["code"].clone()),
        (json!(false), json!(90))
    );
    let (status, body) = answer(
        mv(&c, &h, reqwest::Method::POST, "/addressbook/contacts")
            .json(&json!({"alias": "a", "msisdn": "33611111111"})),
    )
    .await;
    assert_mv_error(status, &body, StatusCode::BAD_REQUEST, "ValidationError");
    let state = h.snapshot();
    assert!(state.group("sandbox").is_empty() && state.mobivate.is_empty());
    assert_eq!(state.counters.faults.coded, 2);
    assert!(state.counters.received.is_empty());
}

/// Sends a raw HTTP/1.1 request and returns every byte the server sent before
/// closing the connection.
async fn raw_exchange(h: &SandboxHandle, path: &str, body: &str) -> Vec<u8> {
    let mut stream = tokio::net::TcpStream::connect(h.addr()).await.unwrap();
    let request = format!(
        "POST {path} HTTP/1.1\r\nHost: sandbox\r\nContent-Type: application/json\r\nAuthorization: Bearer {KEY}\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    );
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut received = Vec::new();
    // Ends when the server closes the connection; a response alone would not
    // close it (keep-alive), so an empty result proves "closed, nothing sent".
    let _ = stream.read_to_end(&mut received).await;
    received
}

#[tokio::test]
async fn dropped_connection_applies_nothing_and_sends_nothing() {
    let (h, c) = serve(stressed(|s| s.drop_rate = 1.0)).await;
    let err = c
        .post(format!("{}/v1/contact/add", h.base_url()))
        .json(&add_body("0611111111"))
        .send()
        .await
        .expect_err("no response");
    assert!(err.status().is_none());
    let received = raw_exchange(
        &h,
        "/addressbook/contacts",
        r#"{"alias":"a","msisdn":"33611111111"}"#,
    )
    .await;
    assert!(
        received.is_empty(),
        "{}",
        String::from_utf8_lossy(&received)
    );
    let state = h.snapshot();
    assert!(state.group("sandbox").is_empty());
    assert!(state.mobivate.is_empty());
    assert_eq!(state.counters.faults.dropped, 2);
    assert_eq!(state.counters.count("POST /v1/contact/add", "dropped"), 1);
    assert_eq!(
        state.counters.received,
        Received::default(),
        "never received"
    );
}

#[tokio::test]
async fn lost_response_applies_the_change_but_sends_nothing() {
    let (h, c) = serve(stressed(|s| s.lose_rate = 1.0)).await;
    let err = c
        .post(format!("{}/v1/contact/add", h.base_url()))
        .json(&add_body("0611111111"))
        .send()
        .await
        .expect_err("no response");
    assert!(err.status().is_none());
    let received = raw_exchange(
        &h,
        "/addressbook/contacts",
        r#"{"alias":"a","msisdn":"33611111111"}"#,
    )
    .await;
    assert!(
        received.is_empty(),
        "{}",
        String::from_utf8_lossy(&received)
    );
    let state = h.snapshot();
    assert_eq!(
        state.group("sandbox").len(),
        1,
        "applied although the client got no answer"
    );
    assert_eq!(state.mobivate.len(), 1);
    assert_eq!(state.counters.faults.lost, 2);
    assert_eq!(
        state.counters.count("POST /addressbook/contacts", "lost"),
        1
    );
    // Received, and known to have gone unanswered: a retry would be fair.
    let received = &state.counters.received;
    assert_eq!(received.smspartner_add_count("sandbox", "+33611111111"), 1);
    assert_eq!(received.mobivate_add_count("33611111111"), 1);
    assert_eq!(&state.counters.unanswered, received);
}

#[tokio::test]
async fn a_healthy_request_keeps_its_connection() {
    // The raw helper relies on keep-alive: without a fault the server answers
    // and leaves the connection open, so read_to_end would wait. Check that a
    // normal answer does arrive on a raw connection (then close it ourselves).
    let (h, _) = plain().await;
    let mut stream = tokio::net::TcpStream::connect(h.addr()).await.unwrap();
    stream
        .write_all(b"GET /_sandbox/state HTTP/1.1\r\nHost: sandbox\r\nConnection: close\r\n\r\n")
        .await
        .unwrap();
    let mut received = Vec::new();
    stream.read_to_end(&mut received).await.unwrap();
    assert!(received.starts_with(b"HTTP/1.1 200"));
}

#[tokio::test]
async fn latency_delays_every_api_request() {
    let latency = Duration::from_millis(30);
    let (h, c) = serve(stressed(|s| {
        s.latency = latency;
        s.jitter = Duration::from_millis(20);
    }))
    .await;
    let started = std::time::Instant::now();
    for i in 0..3 {
        let (s, _) = post(
            &c,
            &h,
            "/v1/contact/add",
            add_body(&format!("061111111{i}")),
        )
        .await;
        assert_eq!(s, StatusCode::OK);
    }
    // A lower bound only: a sleep never ends early, so this cannot flake.
    assert!(started.elapsed() >= latency * 3);
    let (_, _) = get(&c, &h, "/_sandbox/state").await;
    let state = h.snapshot();
    assert_eq!(
        state.counters.faults.delayed, 3,
        "the inspection endpoint is not delayed"
    );
    assert_eq!(state.group("sandbox").len(), 3);
}

#[tokio::test]
async fn faults_replay_from_the_seed() {
    let run = |seed: u64| async move {
        let mut config = stressed(|s| {
            s.fault_rate = 0.3;
            s.lose_rate = 0.3;
        });
        config.seed = seed;
        let (h, c) = serve(config).await;
        let mut outcomes = Vec::new();
        for i in 0..30 {
            let r = c
                .post(format!("{}/v1/contact/add", h.base_url()))
                .json(&add_body(&format!("06{i:08}")))
                .send()
                .await;
            outcomes.push(match r {
                Ok(r) => r.status().as_u16(),
                Err(_) => 0,
            });
        }
        let ids: Vec<String> = h
            .snapshot()
            .group("sandbox")
            .iter()
            .map(|c| c.contact_id.clone())
            .collect();
        (outcomes, ids)
    };
    let a = run(7).await;
    assert_eq!(a, run(7).await);
    assert_ne!(a.0, run(8).await.0);
    assert!(
        a.0.contains(&0) && a.0.contains(&500) && a.0.contains(&200),
        "{:?}",
        a.0
    );
}

// ------------------------------------------------------- config and lifecycle

#[derive(Parser)]
struct Cli {
    #[command(flatten)]
    args: SandboxArgs,
}

#[test]
fn flags_parse_into_a_checked_config() {
    let args = Cli::try_parse_from(["sandbox"]).unwrap().args;
    assert_eq!(args, SandboxArgs::default());
    let expected = SandboxConfig {
        port: 8080,
        ..SandboxConfig::default()
    };
    assert_eq!(SandboxConfig::try_from(args).unwrap(), expected);

    let args = Cli::try_parse_from([
        "sandbox",
        "--port",
        "0",
        "--rate",
        "2.5",
        "--fault-rate",
        "0.1",
        "--drop-rate",
        "0.2",
        "--lose-rate",
        "0.3",
        "--latency-ms",
        "5",
        "--jitter-ms",
        "7",
        "--seed",
        "9",
        "--error-status",
        "500",
        "--api-key",
        "k",
        "--group",
        "a",
        "--group",
        "b",
    ])
    .unwrap()
    .args;
    let config = SandboxConfig::try_from(args).unwrap();
    assert_eq!(config.stress.rate, Some(2.5));
    assert_eq!(
        config.stress.burst, 3,
        "burst defaults to the rate rounded up"
    );
    assert_eq!(config.stress.latency, Duration::from_millis(5));
    assert_eq!(config.stress.jitter, Duration::from_millis(7));
    assert_eq!((config.seed, config.error_status), (9, 500));
    assert_eq!(config.groups, ["a", "b"]);
    assert_eq!(config.api_key, "k");

    let bad = |extra: &[&str]| {
        let mut argv = vec!["sandbox"];
        argv.extend_from_slice(extra);
        SandboxConfig::try_from(Cli::try_parse_from(argv).unwrap().args).is_err()
    };
    assert!(bad(&["--rate", "0"]));
    assert!(bad(&["--burst", "0"]));
    assert!(bad(&["--fault-rate", "1.5"]));
    assert!(bad(&["--drop-rate=-0.1"]));
    assert!(bad(&["--fault-rate", "0.6", "--lose-rate", "0.6"]));
    assert!(bad(&["--error-status", "42"]));
    assert!(bad(&["--api-key", ""]));
    assert!(bad(&[
        "--oversize-rate",
        "0.5",
        "--hollow-rate",
        "0.3",
        "--coded-rate",
        "0.3"
    ]));
    assert!(bad(&["--coded-status", "1000"]));
    assert!(bad(&["--hollow-rate", "2"]));
    assert!(!bad(&["--rate", "0.2"]));

    let args = Cli::try_parse_from([
        "sandbox",
        "--oversize-rate",
        "0.1",
        "--hollow-rate",
        "0.2",
        "--coded-rate",
        "0.3",
        "--coded-status",
        "502",
        "--reorder-bulk",
        "--retry-after",
        "date",
        "--retry-after-secs",
        "3600",
        "--misdirect",
        "html",
        "--echo-key",
    ])
    .unwrap()
    .args;
    let s = SandboxConfig::try_from(args).unwrap().stress;
    assert_eq!(
        (s.oversize_rate, s.hollow_rate, s.coded_rate, s.coded_status),
        (0.1, 0.2, 0.3, 502)
    );
    assert!(s.reorder_bulk && s.echo_key);
    assert_eq!(s.retry_after, faults::RetryAfterForm::Date);
    assert_eq!(s.retry_after_secs, Some(3600));
    assert_eq!(s.misdirect, Some(faults::Misdirect::Html));
    for (form, want) in [
        ("seconds", faults::RetryAfterForm::Seconds),
        ("garbage", faults::RetryAfterForm::Garbage),
        ("none", faults::RetryAfterForm::None),
    ] {
        let args = Cli::try_parse_from(["sandbox", "--retry-after", form])
            .unwrap()
            .args;
        assert_eq!(args.retry_after, want);
    }
    let args = Cli::try_parse_from(["sandbox", "--misdirect", "404"])
        .unwrap()
        .args;
    assert_eq!(args.misdirect, Some(faults::Misdirect::NotFound));
}

#[tokio::test]
async fn binding_a_taken_port_fails_and_shutdown_frees_the_port() {
    let (h, c) = plain().await;
    let port = h.addr().port();
    let taken = start(SandboxConfig {
        port,
        ..SandboxConfig::default()
    })
    .await;
    assert!(matches!(taken, Err(SandboxError::Bind { .. })));
    let url = h.base_url();
    assert!(c.get(format!("{url}/_sandbox/state")).send().await.is_ok());
    h.shutdown().await;
    let fresh = Client::new();
    assert!(
        fresh
            .get(format!("{url}/_sandbox/state"))
            .send()
            .await
            .is_err()
    );
}

#[tokio::test]
async fn unknown_routes_are_404_and_counted() {
    let (h, c) = plain().await;
    let r = c
        .get(format!("{}/v2/whatever", h.base_url()))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::NOT_FOUND);
    let (s, b) = answer(mv(&c, &h, reqwest::Method::GET, "/addressbook/groups")).await;
    assert_mv_error(s, &b, StatusCode::NOT_FOUND, "NotFoundError");
    assert_eq!(h.snapshot().counters.count("GET other", "404"), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hold_applies_the_chosen_request_then_answers_nothing_until_released() {
    let (h, c) = plain().await;
    let send = |phone: &str| {
        c.post(format!("{}/v1/contact/add", h.base_url()))
            .json(&json!({"apiKey": KEY, "groupId": "sandbox", "contact": {"phoneNumber": phone}}))
            .send()
    };
    h.hold_from(2);
    let first = send("0611111111")
        .await
        .expect("the first request is served");
    assert_eq!(first.status(), StatusCode::OK);
    let second = tokio::spawn(send("0622222222"));
    // The second must reach the server before the third is sent, or either may be "the nth".
    let second_held = tokio::task::block_in_place(|| h.wait_held(1, Duration::from_secs(30)));
    assert!(second_held, "the second request is held");
    let third = tokio::spawn(send("0633333333"));
    let reached = tokio::task::block_in_place(|| h.wait_held(2, Duration::from_secs(30)));
    assert!(reached, "both later requests are held");
    assert!(
        !second.is_finished() && !third.is_finished(),
        "held ones get no answer"
    );
    let state = h.snapshot();
    assert_eq!(state.counters.held, 2);
    assert_eq!(state.counters.count("POST /v1/contact/add", "held"), 2);
    let numbers: Vec<&str> = state
        .group("sandbox")
        .iter()
        .map(|c| c.phone.as_str())
        .collect();
    assert_eq!(
        numbers,
        ["+33611111111", "+33622222222"],
        "only the nth is applied"
    );
    let adds = &state.counters.received;
    assert_eq!(adds.smspartner_add_count("sandbox", "+33622222222"), 1);
    assert_eq!(adds.smspartner_add_count("sandbox", "+33633333333"), 0);
    h.release();
    for held in [second, third] {
        let answer = held.await.unwrap().expect("answered once released");
        assert_eq!(answer.status(), StatusCode::SERVICE_UNAVAILABLE);
    }
    let fourth = send("0644444444").await.expect("served again");
    assert_eq!(fourth.status(), StatusCode::OK);
}
