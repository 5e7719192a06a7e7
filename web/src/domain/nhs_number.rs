//! NHS numbers: ten digits whose last is a modulus-11 check digit. A mistyped number must be
//! refused before it reaches a modality worklist, where it becomes the DICOM PatientID.

use std::fmt;

use serde::{Deserialize, Serialize};

/// Why a string is not an NHS number.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NhsNumberError {
    #[error("an NHS number has 10 digits, this has {0}")]
    Length(usize),
    #[error("an NHS number has only digits (spaces allowed between groups)")]
    NotDigits,
    #[error("the check digit of {0} is wrong")]
    CheckDigit(String),
}

/// A validated NHS number, stored as its ten digits.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct NhsNumber(String);

impl NhsNumber {
    /// Parses `943 476 5919` or `9434765919`, checking the check digit.
    pub fn parse(text: &str) -> Result<NhsNumber, NhsNumberError> {
        let digits: String = text.chars().filter(|c| !c.is_whitespace()).collect();
        if !digits.chars().all(|c| c.is_ascii_digit()) {
            return Err(NhsNumberError::NotDigits);
        }
        if digits.len() != 10 {
            return Err(NhsNumberError::Length(digits.len()));
        }
        let d: Vec<u32> = digits.bytes().map(|b| u32::from(b - b'0')).collect();
        match check_digit(&d[..9]) {
            Some(check) if check == d[9] => Ok(NhsNumber(digits)),
            _ => Err(NhsNumberError::CheckDigit(digits)),
        }
    }

    /// Appends the check digit to nine digits; `None` when no check digit exists (remainder 10),
    /// i.e. no valid NHS number starts with those nine digits.
    pub fn with_check_digit(first_nine: &str) -> Option<NhsNumber> {
        let d: Vec<u32> = first_nine.chars().filter_map(|c| c.to_digit(10)).collect();
        if d.len() != 9 {
            return None;
        }
        let check = check_digit(&d)?;
        Some(NhsNumber(format!("{first_nine}{check}")))
    }

    /// The ten digits.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// The modulus-11 check digit of the first nine digits (weights 10 down to 2).
fn check_digit(first_nine: &[u32]) -> Option<u32> {
    let sum: u32 = first_nine
        .iter()
        .zip((2..=10).rev())
        .map(|(d, w)| d * w)
        .sum();
    match 11 - sum % 11 {
        11 => Some(0),
        10 => None,
        c => Some(c),
    }
}

/// Formats as the NHS writes it: `943 476 5919`.
impl fmt::Display for NhsNumber {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {} {}", &self.0[..3], &self.0[3..6], &self.0[6..])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_a_valid_number_with_or_without_spaces() {
        assert_eq!(
            NhsNumber::parse("9434765919").unwrap().as_str(),
            "9434765919"
        );
        assert_eq!(
            NhsNumber::parse("943 476 5919").unwrap().to_string(),
            "943 476 5919"
        );
    }

    #[test]
    fn refuses_a_wrong_check_digit() {
        assert_eq!(
            NhsNumber::parse("9434765918"),
            Err(NhsNumberError::CheckDigit("9434765918".into()))
        );
    }

    #[test]
    fn refuses_wrong_length_and_letters() {
        assert_eq!(
            NhsNumber::parse("943476591"),
            Err(NhsNumberError::Length(9))
        );
        assert_eq!(
            NhsNumber::parse("94347659A9"),
            Err(NhsNumberError::NotDigits)
        );
    }

    #[test]
    fn a_remainder_of_ten_has_no_valid_number() {
        // 1*10 + 2*9 + ... : find nine digits whose remainder gives check 10.
        let none = (0..1000u32)
            .map(|n| format!("999000{n:03}"))
            .find(|s| NhsNumber::with_check_digit(s).is_none())
            .expect("some prefix has no check digit");
        for last in 0..10 {
            assert!(NhsNumber::parse(&format!("{none}{last}")).is_err());
        }
    }

    #[test]
    fn with_check_digit_makes_numbers_that_parse() {
        let made = NhsNumber::with_check_digit("943476591").unwrap();
        assert_eq!(made.as_str(), "9434765919");
        assert!(NhsNumber::parse(made.as_str()).is_ok());
    }
}
