//! Walk-ins: appointments made from a worklist item a local operator added at the gateway
//! (typically while the cloud was unreachable). The gateway speaks DICOM (`FAMILY^GIVEN`,
//! `YYYYMMDD`, `HHMMSS`); the clinic pages speak the booking system's forms. This is the one
//! place that reads the first as the second, and refuses what cannot become an appointment.

use serde::{Deserialize, Serialize};

use super::NhsNumber;

/// A walk-in appointment's standing.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum WalkIn {
    /// Added at the gateway; a clinician has yet to confirm it or match it to a booked one.
    Unconfirmed,
    /// A clinician confirmed it as a new appointment.
    Confirmed,
}

impl WalkIn {
    /// The stored word (`appointments.walk_in`).
    pub fn as_str(self) -> &'static str {
        match self {
            WalkIn::Unconfirmed => "unconfirmed",
            WalkIn::Confirmed => "confirmed",
        }
    }

    /// Reads the stored word; anything else is not a walk-in.
    pub fn parse(text: &str) -> Option<WalkIn> {
        match text {
            "unconfirmed" => Some(WalkIn::Unconfirmed),
            "confirmed" => Some(WalkIn::Confirmed),
            _ => None,
        }
    }
}

/// A locally added item, read as the booking side stores participants and appointments.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WalkInDetails {
    pub nhs_number: NhsNumber,
    pub family_name: String,
    pub given_name: String,
    /// `YYYY-MM-DD`.
    pub birth_date: String,
    pub sex: String,
    /// `YYYY-MM-DD`: the clinic day it belongs to.
    pub date: String,
    /// `HH:MM`.
    pub time: String,
}

impl WalkInDetails {
    /// Reads the item's DICOM forms; says which field is wrong when one is.
    pub fn from_dicom(
        nhs_number: &str,
        name: &str,
        birth_date: &str,
        sex: &str,
        scheduled_date: &str,
        scheduled_time: &str,
    ) -> Result<WalkInDetails, String> {
        let nhs_number = NhsNumber::parse(nhs_number).map_err(|e| format!("NHS number: {e}"))?;
        let mut parts = name.split('^').map(str::trim);
        let family_name = parts.next().unwrap_or_default().to_string();
        let given_name = parts.next().unwrap_or_default().to_string();
        if family_name.is_empty() || family_name.len() > 64 || given_name.len() > 64 {
            return Err(format!(
                "name {name:?}: a family name of 1–64 characters is needed (FAMILY^GIVEN)"
            ));
        }
        let sex = match sex {
            "F" | "M" | "O" => sex.to_string(),
            other => return Err(format!("sex {other:?}: F, M or O")),
        };
        Ok(WalkInDetails {
            nhs_number,
            family_name,
            given_name,
            birth_date: iso_date(birth_date)
                .ok_or_else(|| format!("date of birth {birth_date:?}: YYYYMMDD, a real date"))?,
            sex,
            date: iso_date(scheduled_date).ok_or_else(|| {
                format!("scheduled date {scheduled_date:?}: YYYYMMDD, a real date")
            })?,
            time: clock_time(scheduled_time)
                .ok_or_else(|| format!("scheduled time {scheduled_time:?}: HHMM or HHMMSS"))?,
        })
    }
}

/// `YYYYMMDD` → `YYYY-MM-DD`, for a date that exists (Gregorian; checked here rather than with
/// the `time` crate, which the browser build does not carry).
fn iso_date(dicom: &str) -> Option<String> {
    if dicom.len() != 8 || !dicom.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let year: u32 = dicom.get(..4)?.parse().ok()?;
    let month: u32 = dicom.get(4..6)?.parse().ok()?;
    let day: u32 = dicom.get(6..)?.parse().ok()?;
    let leap = year.is_multiple_of(4) && (!year.is_multiple_of(100) || year.is_multiple_of(400));
    let days = match month {
        1 | 3 | 5 | 7 | 8 | 10 | 12 => 31,
        4 | 6 | 9 | 11 => 30,
        2 if leap => 29,
        2 => 28,
        _ => return None,
    };
    (year >= 1 && (1..=days).contains(&day)).then(|| format!("{year:04}-{month:02}-{day:02}"))
}

/// `HHMM[SS[.ffffff]]` → `HH:MM`.
fn clock_time(dicom: &str) -> Option<String> {
    let hours: u8 = dicom.get(..2)?.parse().ok()?;
    let minutes: u8 = dicom.get(2..4)?.parse().ok()?;
    let digits_only = dicom.get(..2)?.bytes().chain(dicom.get(2..4)?.bytes());
    if hours > 23 || minutes > 59 || !digits_only.into_iter().all(|b| b.is_ascii_digit()) {
        return None;
    }
    Some(format!("{hours:02}:{minutes:02}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    const NHS: &str = "9434765919";

    #[test]
    fn reads_the_gateway_forms_or_names_the_wrong_field() {
        type Case = (
            &'static str,
            &'static str,
            &'static str,
            &'static str,
            &'static str,
        );
        // (name, birth date, sex, date, time) → Ok((family, given, birth, date, time)) or the
        // start of the error.
        let cases: &[(Case, Result<[&str; 5], &str>)] = &[
            (
                ("SMITH^JANE", "19700102", "F", "20261202", "093000"),
                Ok(["SMITH", "JANE", "1970-01-02", "2026-12-02", "09:30"]),
            ),
            (
                ("SMITH", "19700102", "F", "20261202", "0930"),
                Ok(["SMITH", "", "1970-01-02", "2026-12-02", "09:30"]),
            ),
            (
                ("O'NEIL^MARY^ANN", "19700102", "O", "20240229", "235959.123"),
                Ok(["O'NEIL", "MARY", "1970-01-02", "2024-02-29", "23:59"]),
            ),
            (("^JANE", "19700102", "F", "20261202", "0930"), Err("name")),
            (
                ("SMITH^JANE", "1970-01-02", "F", "20261202", "0930"),
                Err("date of birth"),
            ),
            (
                ("SMITH^JANE", "19700231", "F", "20261202", "0930"),
                Err("date of birth"),
            ),
            (
                ("SMITH^JANE", "19700102", "X", "20261202", "0930"),
                Err("sex"),
            ),
            (
                ("SMITH^JANE", "19700102", "F", "20230229", "0930"),
                Err("scheduled date"),
            ),
            (
                ("SMITH^JANE", "19700102", "F", "20261202", "2460"),
                Err("scheduled time"),
            ),
            (
                ("SMITH^JANE", "19700102", "F", "20261202", "9"),
                Err("scheduled time"),
            ),
            (
                ("SMITH^JANE", "19700102", "F", "20261202", "+1:3"),
                Err("scheduled time"),
            ),
        ];
        for ((name, born, sex, date, time), want) in cases {
            let got = WalkInDetails::from_dicom(NHS, name, born, sex, date, time);
            match (want, got) {
                (Ok([family, given, birth, day, clock]), Ok(d)) => {
                    assert_eq!(
                        [
                            d.family_name.as_str(),
                            &d.given_name,
                            &d.birth_date,
                            &d.date,
                            &d.time
                        ],
                        [*family, *given, *birth, *day, *clock],
                        "{name} {born} {date} {time}"
                    );
                    assert_eq!(d.nhs_number.as_str(), NHS);
                }
                (Err(field), Err(e)) => assert!(e.starts_with(field), "{name}: {e}"),
                (want, got) => {
                    panic!("{name} {born} {sex} {date} {time}: want {want:?}, got {got:?}")
                }
            }
        }
    }

    #[test]
    fn a_mistyped_nhs_number_is_refused() {
        let e = WalkInDetails::from_dicom("9434765910", "A^B", "19700102", "F", "20261202", "0930")
            .unwrap_err();
        assert!(e.starts_with("NHS number"), "{e}");
    }

    #[test]
    fn the_stored_word_round_trips() {
        for w in [WalkIn::Unconfirmed, WalkIn::Confirmed] {
            assert_eq!(WalkIn::parse(w.as_str()), Some(w));
        }
        assert_eq!(WalkIn::parse(""), None);
    }
}
