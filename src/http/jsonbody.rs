//! Reading a JSON request body (at most 1 MiB, as the original).

use bytes::BytesMut;
use serde_json::{Map, Value};

use super::{HttpError, HttpResult, Req};

const MAX_JSON: usize = 1_048_576;

/// Reads a whole body of at most 1 MiB (413 beyond).
pub async fn read_small_body(req: &mut Req) -> HttpResult<BytesMut> {
    let mut buf = BytesMut::new();
    while let Some(data) = req.next_body_frame().await? {
        if buf.len() + data.len() > MAX_JSON {
            return Err(HttpError::TooLarge);
        }
        buf.extend_from_slice(&data);
    }
    req.body = None;
    Ok(buf)
}

/// Reads the body and parses it as JSON. Invalid JSON gives
/// `400 invalid JSON data: <error>`.
pub async fn read_json(req: &mut Req) -> HttpResult<Value> {
    if req.body.is_none() {
        return Ok(Value::Null);
    }
    let buf = read_small_body(req).await?;
    serde_json::from_slice(&buf).map_err(|e| HttpError::bad_request(format!("invalid JSON data: {e}")))
}

/// The object under `key` of a JSON body, or `None` when the body is not an
/// object or the key is missing or not an object.
pub fn wrapped_object(v: Value, key: &str) -> Option<Map<String, Value>> {
    match v {
        Value::Object(mut m) => match m.remove(key) {
            Some(Value::Object(inner)) => Some(inner),
            _ => None,
        },
        _ => None,
    }
}
