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
//! The rule, refusing by default:
//!
//! - a process that works on requests is talking about them: its message goes
//!   to the streams of the requests in flight (MCP asks servers to send what
//!   belongs to a request on that request's stream);
//! - with nothing in flight, it goes to the sessions' GET streams;
//! - either way, only when every one of those streams has the same
//!   [`Owner`] — one person through one app. When they belong to several,
//!   the gateway cannot tell whose it is, and nobody gets it; a request is
//!   then answered with an error, so that the process does not wait forever.
//!   `notifications/…/list_changed` is the exception: it names nobody's data,
//!   so every stream gets it.
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

/// The streams a message of `method` goes to, from the requests `in_flight`
/// and the GET streams `listening` (each with its owner), and the one owner
/// they all share (`None` for a message that everyone may see).
pub(crate) fn audience<T>(
    method: &str,
    in_flight: Vec<(Owner, T)>,
    listening: Vec<(Owner, T)>,
) -> Result<(Option<Owner>, Vec<T>), Undeliverable> {
    let candidates = if in_flight.is_empty() { listening } else { in_flight };
    let Some((first, _)) = candidates.first() else {
        return Err(Undeliverable::NoStream);
    };
    let first = first.clone();
    let one_owner = candidates.iter().all(|(owner, _)| *owner == first);
    let streams = candidates.into_iter().map(|(_, stream)| stream).collect();
    if one_owner {
        Ok((Some(first), streams))
    } else if method.starts_with("notifications/") && method.ends_with("/list_changed") {
        Ok((None, streams))
    } else {
        Err(Undeliverable::Ambiguous)
    }
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
    fn a_message_goes_to_the_requests_in_flight_before_the_get_streams() {
        let alice = owner("alice", "mail");
        let (whose, streams) = audience(
            "sampling/createMessage",
            vec![(alice.clone(), "alice's call")],
            vec![(alice.clone(), "alice's get stream")],
        )
        .unwrap();
        assert_eq!((whose, streams), (Some(alice.clone()), vec!["alice's call"]));
        let (_, streams) = audience("notifications/message", vec![], vec![(alice, "get")]).unwrap();
        assert_eq!(streams, vec!["get"]);
    }

    #[test]
    fn nobody_gets_what_could_be_someone_elses() {
        let streams = vec![(owner("alice", "mail"), 1), (owner("bob", "mail"), 2)];
        assert_eq!(
            audience("sampling/createMessage", streams.clone(), vec![]),
            Err(Undeliverable::Ambiguous)
        );
        let listening = streams.clone();
        assert_eq!(
            audience("notifications/resources/updated", vec![], listening),
            Err(Undeliverable::Ambiguous)
        );
        // One person, two apps: the apps are kept apart too.
        let two_apps = vec![(owner("alice", "mail"), 1), (owner("alice", "notes"), 2)];
        assert_eq!(audience("roots/list", two_apps, vec![]), Err(Undeliverable::Ambiguous));
        assert_eq!(audience::<u8>("roots/list", vec![], vec![]), Err(Undeliverable::NoStream));
        // A list change names nobody's data: everyone hears of it.
        let (whose, all) = audience("notifications/tools/list_changed", vec![], streams).unwrap();
        assert_eq!((whose, all), (None, vec![1, 2]));
    }

    #[test]
    fn only_the_asked_owner_answers_and_only_once() {
        let mut asked = Asked::default();
        asked.note(json!(7), owner("alice", "mail"));
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
