//! "Send to modality" as FHIR R4, for a gateway whose message type is `fhir_service_request`: a
//! transaction `Bundle` of the participant's `Patient` and a `ServiceRequest` for screening
//! mammography, which the gateway delivers to the hospital's integration engine. Both entries
//! are conditional updates keyed by identifier (the NHS number, the accession number), so a
//! repeat, or the cancellation (`ServiceRequest.status = revoked`), updates the same resources.

use serde_json::{json, Value};

/// The NHS number's identifier system.
pub const NHS_NUMBER_SYSTEM: &str = "https://fhir.nhs.uk/Id/nhs-number";
/// This service's accession numbers (the DICOM Accession Number the modality will report).
pub const ACCESSION_SYSTEM: &str = "urn:screening-gateway:accession-number";

/// What the order says, in the booking side's own forms.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Order {
    pub accession_number: String,
    pub nhs_number: String,
    pub family_name: String,
    pub given_name: String,
    /// YYYY-MM-DD.
    pub birth_date: String,
    /// `F`, `M` or `O`.
    pub sex: String,
    /// The clinic's day, YYYY-MM-DD, and the appointment's start, HH:MM, UK local time.
    pub date: String,
    pub starts_at: String,
    pub description: String,
    /// Cancelled: the ServiceRequest is revoked.
    pub revoked: bool,
}

impl Order {
    /// The transaction bundle; `patient_uuid` and `request_uuid` name its entries (fresh v4
    /// UUIDs from the caller: the domain has no randomness).
    pub fn bundle(&self, patient_uuid: &str, request_uuid: &str) -> Value {
        let patient_ref = format!("urn:uuid:{patient_uuid}");
        let patient = json!({
            "resourceType": "Patient",
            "identifier": [{"system": NHS_NUMBER_SYSTEM, "value": self.nhs_number}],
            "name": [{"use": "official", "family": self.family_name, "given": [self.given_name]}],
            "gender": gender(&self.sex),
            "birthDate": self.birth_date,
        });
        let mut request = json!({
            "resourceType": "ServiceRequest",
            "identifier": [{
                "type": {"coding": [{
                    "system": "http://terminology.hl7.org/CodeSystem/v2-0203",
                    "code": "ACSN",
                    "display": "Accession ID"
                }]},
                "system": ACCESSION_SYSTEM,
                "value": self.accession_number
            }],
            "status": if self.revoked { "revoked" } else { "active" },
            "intent": "order",
            "category": [{"coding": [{
                "system": "http://snomed.info/sct", "code": "363679005", "display": "Imaging"
            }]}],
            "code": {
                "coding": [{
                    "system": "http://snomed.info/sct",
                    "code": "24623002",
                    "display": "Screening mammography"
                }],
                "text": self.description
            },
            "subject": {"reference": patient_ref},
        });
        if let Some(at) = occurrence(&self.date, &self.starts_at) {
            request["occurrenceDateTime"] = Value::String(at);
        }
        json!({
            "resourceType": "Bundle",
            "type": "transaction",
            "entry": [
                {
                    "fullUrl": patient_ref,
                    "resource": patient,
                    "request": {
                        "method": "PUT",
                        "url": format!("Patient?identifier={NHS_NUMBER_SYSTEM}|{}", self.nhs_number)
                    }
                },
                {
                    "fullUrl": format!("urn:uuid:{request_uuid}"),
                    "resource": request,
                    "request": {
                        "method": "PUT",
                        "url": format!(
                            "ServiceRequest?identifier={ACCESSION_SYSTEM}|{}",
                            self.accession_number
                        )
                    }
                }
            ]
        })
    }
}

/// FHIR's administrative gender from the booking side's `F`/`M`/`O`.
fn gender(sex: &str) -> &'static str {
    match sex {
        "F" => "female",
        "M" => "male",
        "O" => "other",
        _ => "unknown",
    }
}

/// `YYYY-MM-DDTHH:MM:00±hh:mm` for a UK local date and time, or `None` when either is not in
/// its form. FHIR needs the offset with a time of day.
fn occurrence(date: &str, hh_mm: &str) -> Option<String> {
    let (y, m, d) = parse_date(date)?;
    let (hh, mm) = hh_mm.split_once(':')?;
    let (hh, mm): (u32, u32) = (hh.parse().ok()?, mm.parse().ok()?);
    if hh > 23 || mm > 59 {
        return None;
    }
    let offset = if uk_summer_time(y, m, d, hh) {
        "+01:00"
    } else {
        "+00:00"
    };
    Some(format!("{date}T{hh:02}:{mm:02}:00{offset}"))
}

fn parse_date(date: &str) -> Option<(i32, u32, u32)> {
    let mut parts = date.splitn(3, '-');
    let y: i32 = parts.next()?.parse().ok()?;
    let m: u32 = parts.next()?.parse().ok()?;
    let d: u32 = parts.next()?.parse().ok()?;
    ((1..=12).contains(&m) && (1..=31).contains(&d)).then_some((y, m, d))
}

/// Whether a UK wall-clock time is in British Summer Time: from 01:00 GMT on the last Sunday of
/// March to 01:00 GMT on the last Sunday of October. By hand because that one rule is all the
/// service needs, where a time-zone database crate would add a database to both builds.
fn uk_summer_time(y: i32, m: u32, d: u32, hh: u32) -> bool {
    match m {
        4..=9 => true,
        3 => {
            let change = last_sunday(y, 3);
            d > change || (d == change && hh >= 1)
        }
        10 => {
            let change = last_sunday(y, 10);
            // 01:00 GMT is 02:00 BST on the wall.
            d < change || (d == change && hh < 2)
        }
        _ => false,
    }
}

/// The day of the month of the last Sunday of March or October (both have 31 days).
fn last_sunday(y: i32, m: u32) -> u32 {
    31 - (weekday(y, m, 31) % 7)
}

/// 0 = Sunday … 6 = Saturday (Sakamoto's method).
fn weekday(y: i32, m: u32, d: u32) -> u32 {
    const T: [i32; 12] = [0, 3, 2, 5, 0, 3, 5, 1, 4, 6, 2, 4];
    let y = if m < 3 { y - 1 } else { y };
    let t = T.get((m as usize).saturating_sub(1)).copied().unwrap_or(0);
    (y + y / 4 - y / 100 + y / 400 + t + d as i32).rem_euclid(7) as u32
}

#[cfg(test)]
mod tests {
    use super::*;

    fn order() -> Order {
        Order {
            accession_number: "ACC20261122AB12".into(),
            nhs_number: "9434765919".into(),
            family_name: "Smith".into(),
            given_name: "Jane".into(),
            birth_date: "1970-01-01".into(),
            sex: "F".into(),
            date: "2026-11-22".into(),
            starts_at: "09:30".into(),
            description: "Screening mammography, bilateral".into(),
            revoked: false,
        }
    }

    #[test]
    fn uk_local_times_get_their_offset() {
        let cases: [(&str, &str, Option<&str>); 9] = [
            ("2026-11-22", "09:30", Some("2026-11-22T09:30:00+00:00")),
            ("2026-07-01", "14:05", Some("2026-07-01T14:05:00+01:00")),
            // 2026: summer time from 29 March, to 25 October.
            ("2026-03-28", "09:00", Some("2026-03-28T09:00:00+00:00")),
            ("2026-03-29", "09:00", Some("2026-03-29T09:00:00+01:00")),
            ("2026-10-24", "16:00", Some("2026-10-24T16:00:00+01:00")),
            ("2026-10-25", "09:00", Some("2026-10-25T09:00:00+00:00")),
            // 2027: 28 March and 31 October.
            ("2027-10-30", "09:00", Some("2027-10-30T09:00:00+01:00")),
            ("2026-11-22", "9h30", None),
            ("22/11/2026", "09:30", None),
        ];
        for (date, time, expected) in cases {
            assert_eq!(occurrence(date, time).as_deref(), expected, "{date} {time}");
        }
    }

    #[test]
    fn the_bundle_carries_the_patient_and_the_request() {
        let b = order().bundle("p-uuid", "r-uuid");
        assert_eq!(b["type"], "transaction");
        let patient = &b["entry"][0]["resource"];
        assert_eq!(patient["identifier"][0]["value"], "9434765919");
        assert_eq!(patient["gender"], "female");
        assert_eq!(patient["name"][0]["family"], "Smith");
        let request = &b["entry"][1]["resource"];
        assert_eq!(request["status"], "active");
        assert_eq!(request["subject"]["reference"], "urn:uuid:p-uuid");
        assert_eq!(b["entry"][0]["fullUrl"], "urn:uuid:p-uuid");
        assert_eq!(request["identifier"][0]["value"], "ACC20261122AB12");
        assert_eq!(request["occurrenceDateTime"], "2026-11-22T09:30:00+00:00");
        assert_eq!(
            b["entry"][1]["request"]["url"],
            "ServiceRequest?identifier=urn:screening-gateway:accession-number|ACC20261122AB12"
        );
        let revoked = Order {
            revoked: true,
            ..order()
        }
        .bundle("p", "r");
        assert_eq!(revoked["entry"][1]["resource"]["status"], "revoked");
        for (sex, gender) in [
            ("F", "female"),
            ("M", "male"),
            ("O", "other"),
            ("", "unknown"),
        ] {
            let b = Order {
                sex: sex.into(),
                ..order()
            }
            .bundle("p", "r");
            assert_eq!(b["entry"][0]["resource"]["gender"], gender, "{sex:?}");
        }
    }
}
