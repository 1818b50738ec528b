//! Reading the replies of scripts and stream commands (`redis::Value`)
//! without panicking on a shape this version does not expect.

use redis::Value;

pub(crate) fn bytes(v: &Value) -> Option<Vec<u8>> {
    match v {
        Value::BulkString(b) => Some(b.clone()),
        Value::SimpleString(s) => Some(s.as_bytes().to_vec()),
        Value::Okay => Some(b"OK".to_vec()),
        Value::Int(i) => Some(i.to_string().into_bytes()),
        _ => None,
    }
}

pub(crate) fn string(v: &Value) -> Option<String> {
    bytes(v).and_then(|b| String::from_utf8(b).ok())
}

pub(crate) fn int(v: &Value) -> Option<i64> {
    match v {
        Value::Int(i) => Some(*i),
        other => string(other).and_then(|s| s.parse().ok()),
    }
}

pub(crate) fn array(v: &Value) -> &[Value] {
    match v {
        Value::Array(a) | Value::Set(a) => a,
        _ => &[],
    }
}

/// A stream entry's or a hash's fields, as byte pairs.
pub(crate) type Fields = Vec<(Vec<u8>, Vec<u8>)>;

/// A flat field list `[f1, v1, f2, v2, ...]` (or a RESP3 map) as pairs.
pub(crate) fn pairs(v: &Value) -> Fields {
    match v {
        Value::Map(m) => m
            .iter()
            .filter_map(|(k, v)| Some((bytes(k)?, bytes(v)?)))
            .collect(),
        _ => array(v)
            .chunks(2)
            .filter_map(|c| match c {
                [k, v] => Some((bytes(k)?, bytes(v)?)),
                _ => None,
            })
            .collect(),
    }
}

/// A stream entry `[id, [f1, v1, ...]]`.
pub(crate) fn entry(v: &Value) -> Option<(String, Fields)> {
    match array(v) {
        [id, fields] => Some((string(id)?, pairs(fields))),
        _ => None,
    }
}
