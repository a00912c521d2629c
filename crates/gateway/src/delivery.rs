//! Where a message that a stdio process sends of its own accord goes.
//!
//! Over HTTP, the upstream server knows its sessions and sends each message on
//! the right one. On stdio it has one pipe, shared by every session the
//! gateway runs on that process: a person's two agents, or everyone on a
//! shared process. When the process asks something (`sampling/createMessage`,
//! `elicitation/create`, `roots/list`) or tells something (a resource changed),
//! the gateway must pick the streams that may see it — and a wrong pick shows
//! one agent what was meant for another, or lets it answer in the other's name.
//!
//! The rule, refusing by default, decides first whose a message may be:
//!
//! - a request of the process's (`sampling/createMessage`…) while requests
//!   are in flight is about them (a tool that asks while it runs): it may be
//!   the owner's of the requests in flight;
//! - anything else — a request while nothing is in flight, a notification
//!   (a resource changed, a log line) — may be about anyone with a stream
//!   open: the owners of the requests in flight and of the GET streams;
//! - only when all of those are one [`Owner`] — one person through one app —
//!   is it theirs. When they are several, the gateway cannot tell whose it
//!   is, and nobody gets it; a request is then answered with an error, so
//!   that the process does not wait forever. `notifications/…/list_changed`
//!   is the exception: it names nobody's data, so every stream gets it.
//!
//! Then where it goes: to that owner's requests in flight that answer with an
//! SSE stream (MCP asks servers to send what belongs to a request on that
//! request's stream), else to that owner's GET streams. A request answered
//! with plain JSON carries nothing else.
//!
//! Who a request went to is remembered, and only that owner's answer reaches
//! the process (see [`Asked`]).

use std::collections::VecDeque;

use serde_json::Value;

/// Whose a stream is: one person, through one app.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(crate) struct Owner {
    /// The person: their issuer and subject.
    pub person: String,
    /// The app's client id, when the token names one.
    pub client_id: Option<String>,
}

/// Why a message found no stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Undeliverable {
    /// No request in flight and no GET stream open.
    NoStream,
    /// The streams belong to several owners.
    Ambiguous,
}

impl Undeliverable {
    /// The words of the error the process gets for a request nobody may answer.
    pub fn words(self) -> &'static str {
        match self {
            Undeliverable::NoStream => "no agent has a stream open to take this request",
            Undeliverable::Ambiguous => {
                "agents of several people or apps are connected, and the gateway cannot tell which one this request is for"
            }
        }
    }
}

/// The streams a message goes to — a request of the process's when
/// `is_request`, else a notification of `method` — from the requests
/// `in_flight` (each with its owner, and its SSE stream if it answers with
/// one) and the GET streams `listening`; and the one owner whose it is
/// (`None` for a message that everyone may see).
pub(crate) fn audience<T>(
    method: &str,
    is_request: bool,
    in_flight: Vec<(Owner, Option<T>)>,
    listening: Vec<(Owner, T)>,
) -> Result<(Option<Owner>, Vec<T>), Undeliverable> {
    if !is_request && method.starts_with("notifications/") && method.ends_with("/list_changed") {
        let streams: Vec<T> = in_flight
            .into_iter()
            .filter_map(|(_, s)| s)
            .chain(listening.into_iter().map(|(_, s)| s))
            .collect();
        return if streams.is_empty() { Err(Undeliverable::NoStream) } else { Ok((None, streams)) };
    }
    let mut deciding = in_flight.iter().map(|(owner, _)| owner);
    let first = deciding.next().or_else(|| listening.first().map(|(owner, _)| owner));
    let Some(owner) = first.cloned() else {
        return Err(Undeliverable::NoStream);
    };
    let about_the_calls = is_request && !in_flight.is_empty();
    let others = deciding.chain(listening.iter().filter(|_| !about_the_calls).map(|(owner, _)| owner));
    if others.into_iter().any(|other| *other != owner) {
        return Err(Undeliverable::Ambiguous);
    }
    let mut streams: Vec<T> =
        in_flight.into_iter().filter(|(o, _)| *o == owner).filter_map(|(_, stream)| stream).collect();
    if streams.is_empty() {
        streams = listening.into_iter().filter(|(o, _)| *o == owner).map(|(_, stream)| stream).collect();
    }
    if streams.is_empty() { Err(Undeliverable::NoStream) } else { Ok((Some(owner), streams)) }
}

/// The process's requests that went to an agent, and whose each was: the
/// answer of anyone else is refused. Bounded: past [`Asked::LIMIT`] open
/// requests the oldest is forgotten (its late answer is then refused).
#[derive(Debug, Default)]
pub(crate) struct Asked {
    open: VecDeque<(Value, Owner)>,
}

impl Asked {
    /// The most requests remembered at once.
    pub const LIMIT: usize = 256;

    /// The process's request `id` went to `owner`.
    pub fn note(&mut self, id: Value, owner: Owner) {
        if self.open.len() == Self::LIMIT {
            self.open.pop_front();
        }
        self.open.push_back((id, owner));
    }

    /// Whether `owner` may answer the request `id` (nothing changes).
    pub fn may_answer(&self, id: &Value, owner: &Owner) -> bool {
        self.open.iter().any(|(open, asked)| open == id && asked == owner)
    }

    /// Whether `owner` may answer the request `id`; the request is then closed.
    pub fn take(&mut self, id: &Value, owner: &Owner) -> bool {
        match self.open.iter().position(|(open, asked)| open == id && asked == owner) {
            Some(at) => {
                self.open.remove(at);
                true
            }
            None => false,
        }
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn owner(person: &str, app: &str) -> Owner {
        Owner { person: person.into(), client_id: Some(app.into()) }
    }

    #[test]
    fn a_message_goes_to_its_owners_calls_in_flight_before_their_get_streams() {
        let alice = owner("alice", "mail");
        let ask = |in_flight, listening| audience("sampling/createMessage", true, in_flight, listening);
        let (whose, streams) =
            ask(vec![(alice.clone(), Some("alice's call"))], vec![(alice.clone(), "alice's get stream")])
                .unwrap();
        assert_eq!((whose, streams), (Some(alice.clone()), vec!["alice's call"]));
        // Her call answers with JSON, which carries nothing else: her GET stream.
        let (_, streams) = ask(vec![(alice.clone(), None)], vec![(alice.clone(), "get")]).unwrap();
        assert_eq!(streams, vec!["get"]);
        assert_eq!(ask(vec![(alice.clone(), None)], vec![]), Err(Undeliverable::NoStream));
        let (_, streams) = audience("notifications/message", false, vec![], vec![(alice, "get")]).unwrap();
        assert_eq!(streams, vec!["get"]);
    }

    #[test]
    fn nobody_gets_what_could_be_someone_elses() {
        let (alice, bob) = (owner("alice", "mail"), owner("bob", "mail"));
        let both = vec![(alice.clone(), Some(1)), (bob.clone(), Some(2))];
        let ambiguous = Err(Undeliverable::Ambiguous);
        assert_eq!(audience("sampling/createMessage", true, both.clone(), vec![]), ambiguous);
        assert_eq!(
            audience(
                "notifications/resources/updated",
                false,
                vec![],
                vec![(alice.clone(), 1), (bob.clone(), 2)]
            ),
            ambiguous
        );
        // A notification during alice's call may be about bob's subscription:
        // with bob listening, it is nobody's.
        let during = vec![(alice.clone(), Some(1))];
        assert_eq!(
            audience("notifications/resources/updated", false, during.clone(), vec![(bob.clone(), 2)]),
            ambiguous
        );
        // A request during alice's call is about her call: bob's stream is no reason to hold it.
        assert_eq!(
            audience("elicitation/create", true, during, vec![(bob, 2)]),
            Ok((Some(alice.clone()), vec![1]))
        );
        // One person, two apps: the apps are kept apart too.
        let two_apps = vec![(alice.clone(), Some(1)), (owner("alice", "notes"), Some(2))];
        assert_eq!(audience("roots/list", true, two_apps, vec![]), ambiguous);
        assert_eq!(audience::<u8>("roots/list", true, vec![], vec![]), Err(Undeliverable::NoStream));
        // A list change names nobody's data: everyone hears of it.
        let (whose, all) =
            audience("notifications/tools/list_changed", false, both, vec![(alice, 3)]).unwrap();
        assert_eq!((whose, all), (None, vec![1, 2, 3]));
    }

    #[test]
    fn only_the_asked_owner_answers_and_only_once() {
        let mut asked = Asked::default();
        asked.note(json!(7), owner("alice", "mail"));
        assert!(asked.may_answer(&json!(7), &owner("alice", "mail")));
        assert!(!asked.take(&json!(7), &owner("bob", "mail")), "bob answers alice's request");
        assert!(!asked.take(&json!(7), &owner("alice", "notes")), "another app of alice's answers");
        assert!(asked.take(&json!(7), &owner("alice", "mail")));
        assert!(!asked.take(&json!(7), &owner("alice", "mail")), "a second answer");
        for id in 0..=Asked::LIMIT {
            asked.note(json!(id), owner("alice", "mail"));
        }
        assert!(!asked.take(&json!(0), &owner("alice", "mail")), "the oldest was forgotten");
        assert!(asked.take(&json!(Asked::LIMIT), &owner("alice", "mail")));
    }
}
