//! A fake Upstash REST endpoint for unit tests: a tiny in-memory Redis for the plain commands
//! the revocation check and its writes send, switchable to every failure shape, and canned
//! replies for the session Lua script (which runs against a real Redis in `tools/tests/cli.rs`).
//! Used by the revocation tests and the gateway's.

use std::cell::RefCell;
use std::collections::{BTreeSet, HashMap, VecDeque};

use futures::executor::block_on;
use serde_json::{json, Value};

use super::WriteRequest;
use crate::http::{FetchError, HttpClient, HttpRequest, HttpResponse};

enum Mode {
    Redis,
    Fail(Result<HttpResponse, FetchError>),
    Canned(VecDeque<Value>),
}

pub(crate) enum Val {
    Str(String),
    Set(BTreeSet<String>),
}

pub(crate) struct Fake {
    pub(crate) data: RefCell<HashMap<String, Val>>,
    mode: RefCell<Mode>,
    pub(crate) requests: RefCell<Vec<HttpRequest>>,
}

impl Fake {
    pub(crate) fn new() -> Self {
        Fake { data: RefCell::new(HashMap::new()), mode: RefCell::new(Mode::Redis), requests: RefCell::new(Vec::new()) }
    }
    pub(crate) fn calls(&self) -> usize {
        self.requests.borrow().len()
    }
    pub(crate) fn last_commands(&self) -> Vec<Vec<String>> {
        let reqs = self.requests.borrow();
        serde_json::from_slice(reqs.last().unwrap().body.as_ref().unwrap()).unwrap()
    }
    pub(crate) fn fail(&self, r: Result<HttpResponse, FetchError>) {
        *self.mode.borrow_mut() = Mode::Fail(r);
    }
    pub(crate) fn heal(&self) {
        *self.mode.borrow_mut() = Mode::Redis;
    }
    pub(crate) fn canned(&self, replies: Vec<Value>) {
        *self.mode.borrow_mut() = Mode::Canned(replies.into());
    }
    /// Applies a write request (as the gateway sends it) and checks its reply is read as a
    /// success (one result per command).
    pub(crate) fn apply(&self, w: WriteRequest) {
        block_on(w.send(self)).expect("write reply read as a success");
    }
    fn exec(&self, c: &[String]) -> Value {
        let mut data = self.data.borrow_mut();
        let arg = |i: usize| c.get(i).cloned().unwrap_or_default();
        match c.first().map(String::as_str).unwrap_or("") {
            "GET" => match data.get(&arg(1)) {
                Some(Val::Str(s)) => json!({ "result": s }),
                Some(Val::Set(_)) => json!({ "error": "WRONGTYPE" }),
                None => json!({ "result": null }),
            },
            "SET" => {
                if c.iter().any(|a| a == "NX") && data.contains_key(&arg(1)) {
                    return json!({ "result": null });
                }
                data.insert(arg(1), Val::Str(arg(2)));
                json!({ "result": "OK" })
            }
            "DEL" => json!({ "result": data.remove(&arg(1)).map_or(0, |_| 1) }),
            // No sorted sets here: nothing to remove.
            "ZREM" => json!({ "result": 0 }),
            "EXISTS" => json!({ "result": data.contains_key(&arg(1)) as i64 }),
            "INCR" => {
                let n = match data.get(&arg(1)) {
                    Some(Val::Str(s)) => s.parse::<i64>().unwrap_or(0) + 1,
                    _ => 1,
                };
                data.insert(arg(1), Val::Str(n.to_string()));
                json!({ "result": n })
            }
            "SADD" => {
                let entry = data.entry(arg(1)).or_insert_with(|| Val::Set(BTreeSet::new()));
                if let Val::Set(s) = entry {
                    s.extend(c[2..].iter().cloned());
                }
                json!({ "result": c.len() - 2 })
            }
            "SMEMBERS" => match data.get(&arg(1)) {
                Some(Val::Set(s)) => json!({ "result": s.iter().collect::<Vec<_>>() }),
                Some(Val::Str(_)) => json!({ "error": "WRONGTYPE Operation against a key holding the wrong kind of value" }),
                None => json!({ "result": [] }),
            },
            _ => json!({ "error": "ERR unknown command" }),
        }
    }
}

impl HttpClient for Fake {
    async fn send(&self, req: HttpRequest) -> Result<HttpResponse, FetchError> {
        self.requests.borrow_mut().push(req.clone());
        let mut mode = self.mode.borrow_mut();
        let body = match &mut *mode {
            Mode::Fail(r) => return r.clone(),
            Mode::Canned(q) => q.pop_front().expect("no canned reply left"),
            Mode::Redis => {
                drop(mode);
                let cmds: Vec<Vec<String>> = serde_json::from_slice(req.body.as_deref().unwrap_or(b"")).unwrap();
                Value::Array(cmds.iter().map(|c| self.exec(c)).collect())
            }
        };
        Ok(HttpResponse { status: 200, headers: vec![], body: body.to_string().into_bytes() })
    }
}
