//! What a signed-in person may do within their provider. Clinicians run clinics; administrators
//! also manage accounts and gateways and see what is sent to a gateway (payloads carry patient
//! data) and re-drive it.

use serde::{Deserialize, Serialize};

/// A user's role within their provider.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    Clinician,
    Administrator,
}

/// A stored role string that is neither of ours.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown role {0:?} (clinician or administrator)")]
pub struct UnknownRole(pub String);

impl Role {
    pub const ALL: [Role; 2] = [Role::Clinician, Role::Administrator];

    /// The stored and form value.
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Clinician => "clinician",
            Role::Administrator => "administrator",
        }
    }

    /// The word on the page.
    pub fn label(self) -> &'static str {
        match self {
            Role::Clinician => "Clinician",
            Role::Administrator => "Administrator",
        }
    }

    /// Manage users and gateways, read action payloads, re-drive actions and probe gateways.
    pub fn administers(self) -> bool {
        self == Role::Administrator
    }
}

impl std::str::FromStr for Role {
    type Err = UnknownRole;

    fn from_str(s: &str) -> Result<Role, UnknownRole> {
        Role::ALL
            .into_iter()
            .find(|r| r.as_str() == s)
            .ok_or_else(|| UnknownRole(s.to_string()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn roles_read_back_what_they_store_and_only_administrators_administer() {
        for (text, role, administers) in [
            ("clinician", Some(Role::Clinician), false),
            ("administrator", Some(Role::Administrator), true),
            ("Administrator", None, false),
            ("admin", None, false),
            ("", None, false),
        ] {
            let parsed = text.parse::<Role>().ok();
            assert_eq!(parsed, role, "{text:?}");
            if let Some(r) = parsed {
                assert_eq!(r.as_str(), text);
                assert_eq!(r.administers(), administers);
            }
        }
    }
}
