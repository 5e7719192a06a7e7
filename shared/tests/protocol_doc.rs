//! Keeps `docs/protocol.md` honest: every fenced example there must parse with the type it
//! illustrates (the NHS app's unsigned event replies as NHS-compatible mode reads them), and the
//! signed example must verify with the documented key.

use shared::wire::action::{Action, ActionReply};
use shared::wire::event::{Event, EventReply};
use shared::wire::{Keyring, PublicKey, Verification};

const DOC: &str = include_str!("../../docs/protocol.md");
/// The documentation key: seed = 32 bytes of 0x01.
const DOC_PUBLIC_KEY: &str = "iojj3XQJ8ZX9UtstPLpdcspnCb8dlBIb83SIAbQPb1w=";

/// (info string, body) of every fenced block.
fn examples() -> Vec<(String, String)> {
    let mut out = Vec::new();
    let mut lines = DOC.lines();
    while let Some(line) = lines.next() {
        if let Some(info) = line.strip_prefix("```") {
            let info = info.trim().to_string();
            let body: Vec<&str> = lines
                .by_ref()
                .take_while(|l| !l.starts_with("```"))
                .collect();
            out.push((info, body.join("\n")));
        }
    }
    out
}

#[test]
fn every_example_parses_as_its_type() {
    let lenient = Verification {
        keyring: Keyring::default(),
        accept_unsigned: true,
    };
    let strict = Verification::strict(Keyring::default());
    let mut counted = 0;
    for (info, body) in examples() {
        let result = match info.as_str() {
            "json action" => Action::open(&body, &lenient).map(|_| ()),
            "json action-reply" => ActionReply::open(&body, &lenient).map(|_| ()),
            "json event" => Event::open(&body, &lenient).map(|_| ()),
            "json event-reply" => EventReply::open(&body, &lenient).map(|_| ()),
            // Unsigned NHS-app replies: delivered only in the gateway's NHS-compatible mode.
            "json nhs-event-reply" => EventReply::open_nhs_compatible(&body, &strict)
                .map(|r| assert!(r.is_delivered(), "{body}")),
            _ => continue,
        };
        result.unwrap_or_else(|e| panic!("{info} example does not parse: {e}\n{body}"));
        counted += 1;
    }
    assert!(counted >= 22, "only {counted} examples found");
}

#[test]
fn the_signed_example_verifies_with_the_documented_key() {
    let (_, body) = examples()
        .into_iter()
        .find(|(info, _)| info == "json signed-action")
        .expect("a signed example");
    let strict = Verification::strict(Keyring::new(vec![
        PublicKey::from_base64(DOC_PUBLIC_KEY).unwrap()
    ]));
    let action = Action::open(&body, &strict).expect("the documented signature verifies");
    assert!(
        action.target_gateway.is_some() && action.expires_at.is_some(),
        "the signed example is addressed and expires, as every signed action must"
    );
    let tampered = body.replacen("ACC20261122AB12", "ACC20261122AB13", 1);
    assert!(Action::open(&tampered, &strict).is_err());
}
