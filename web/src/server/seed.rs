//! Demo data for a first start (`WEB_SEED=true`, which `make run` sets): two providers, a
//! clinician each, a gateway each pointing at the local relay emulator, and today's clinic of ten
//! checked-in appointments with fictitious participants whose NHS numbers are in the 999 test
//! range with valid check digits.

use super::db::{today, Db, StoreError};
use super::store::gateways::GatewaySettings;
use super::store::{appointments, clinics, gateways, identity};
use crate::domain::{NhsNumber, Role};

/// The demo sign-ins (also in the README): clinicians. No administrator is seeded: the first one
/// is made with `web admin create` (`make run` does that for the demo).
pub const DEMO_USERS: [(&str, &str); 2] = [
    ("clinician@north.example", "screening-demo-1"),
    ("clinician@south.example", "screening-demo-2"),
];

/// Where the seeded gateways' relay is; the second provider's gateway uses the same hybrid
/// connection names with `-2` appended.
#[derive(Debug, Clone)]
pub struct SeedRelay {
    pub namespace: String,
    pub endpoint: Option<String>,
    pub actions_hc: String,
    pub events_hc: String,
    pub key_name: String,
    pub key_env_var: String,
    /// The gateway's public key, when known at seeding time (`GATEWAY_PUBLIC_KEY`).
    pub gateway_public_key: Option<String>,
}

impl SeedRelay {
    /// From the `AZURE_RELAY_*` variables, with the local emulator's defaults.
    pub fn from_lookup(get: impl Fn(&str) -> Option<String>) -> SeedRelay {
        let or = |name: &str, default: &str| get(name).unwrap_or_else(|| default.to_string());
        SeedRelay {
            namespace: or(
                "AZURE_RELAY_NAMESPACE",
                "screening-local.servicebus.windows.net",
            ),
            endpoint: Some(or("AZURE_RELAY_ENDPOINT", "ws://127.0.0.1:9350")),
            actions_hc: or("AZURE_RELAY_HYBRID_CONNECTION", "gateway-actions"),
            events_hc: or("AZURE_RELAY_EVENTS_HYBRID_CONNECTION", "gateway-events"),
            key_name: or("AZURE_RELAY_KEY_NAME", "RootManageSharedAccessKey"),
            key_env_var: "AZURE_RELAY_SHARED_ACCESS_KEY".into(),
            gateway_public_key: get("GATEWAY_PUBLIC_KEY"),
        }
    }
}

const PARTICIPANTS: [(&str, &str, &str); 10] = [
    ("Smith", "Jane", "1968-03-14"),
    ("Jones", "Mary", "1960-11-02"),
    ("Taylor", "Susan", "1972-06-21"),
    ("Brown", "Linda", "1958-01-30"),
    ("Williams", "Patricia", "1965-09-09"),
    ("Wilson", "Elizabeth", "1970-12-12"),
    ("Johnson", "Barbara", "1963-04-25"),
    ("Davies", "Margaret", "1955-07-17"),
    ("Robinson", "Dorothy", "1969-02-03"),
    ("Wright", "Karen", "1961-10-28"),
];

/// What was seeded, for tests and the start-up message.
#[derive(Debug, Clone)]
pub struct Seeded {
    pub provider_ids: Vec<i64>,
    pub gateway_ids: Vec<i64>,
    pub clinic_ids: Vec<i64>,
}

/// Seeds the demo data into an empty database.
pub async fn seed(db: &Db, relay: &SeedRelay) -> Result<Seeded, StoreError> {
    let mut seeded = Seeded {
        provider_ids: vec![],
        gateway_ids: vec![],
        clinic_ids: vec![],
    };
    let mut numbers = test_nhs_numbers();
    let providers = [
        (
            "North Breast Screening Service",
            "RXN",
            "Clinician North",
            "North Hospital, Mobile Unit 1",
        ),
        (
            "South Breast Screening Service",
            "RXS",
            "Clinician South",
            "South Hospital, Room 4",
        ),
    ];
    for (i, (name, ods, user_name, location)) in providers.into_iter().enumerate() {
        let provider_id = identity::create_provider(db, name, ods).await?;
        let (email, password) = DEMO_USERS[i];
        identity::create_user(db, provider_id, email, user_name, password, Role::Clinician).await?;
        let suffix = if i == 0 {
            String::new()
        } else {
            format!("-{}", i + 1)
        };
        let gateway_id = gateways::create(
            db,
            provider_id,
            &GatewaySettings {
                name: format!("{}-gateway", ods.to_lowercase()),
                relay_namespace: relay.namespace.clone(),
                relay_endpoint: relay.endpoint.clone(),
                actions_hc: format!("{}{suffix}", relay.actions_hc),
                events_hc: format!("{}{suffix}", relay.events_hc),
                key_name: relay.key_name.clone(),
                key_env_var: relay.key_env_var.clone(),
                public_key: relay.gateway_public_key.clone(),
                message_type: "dicom_worklist".into(),
                destination: "modality_worklist".into(),
            },
        )
        .await?;
        let clinic_id = clinics::create(
            db,
            provider_id,
            Some(gateway_id),
            &format!(
                "{} screening clinic",
                if i == 0 { "Morning" } else { "Afternoon" }
            ),
            location,
            &today(),
        )
        .await?;
        for (slot, (family, given, born)) in PARTICIPANTS.iter().enumerate() {
            let nhs = numbers.next().expect("enough test NHS numbers");
            let participant =
                appointments::create_participant(db, provider_id, &nhs, family, given, born)
                    .await?;
            let minutes = 9 * 60 + slot * 15;
            appointments::create(
                db,
                clinic_id,
                participant,
                &format!("{:02}:{:02}", minutes / 60, minutes % 60),
            )
            .await?;
        }
        seeded.provider_ids.push(provider_id);
        seeded.gateway_ids.push(gateway_id);
        seeded.clinic_ids.push(clinic_id);
    }
    Ok(seeded)
}

/// Valid NHS numbers in the 999 range, which the NHS never issues to real people.
fn test_nhs_numbers() -> impl Iterator<Item = NhsNumber> {
    (0..).filter_map(|n: u32| NhsNumber::with_check_digit(&format!("999{:06}", 100 + n * 7)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn test_numbers_are_valid_and_distinct() {
        let numbers: Vec<_> = test_nhs_numbers().take(20).collect();
        let mut unique = numbers.clone();
        unique.dedup();
        assert_eq!(unique.len(), 20);
        for n in &numbers {
            assert!(NhsNumber::parse(n.as_str()).is_ok());
            assert!(n.as_str().starts_with("999"));
        }
    }
}
