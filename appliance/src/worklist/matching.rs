//! Worklist query matching (PS3.4 C.2.2.2): single value, wildcard (`*`, `?`) and range
//! (`a-b`, `-b`, `a-`) matching, with a date range and a time range combined into one
//! date-time range as the standard asks.

use super::WorklistEntry;
use shared::wire::action::WorklistStatus;

/// A value to match text against; `None` fields in [`Query`] match everything.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pattern {
    text: Vec<char>,
    case_insensitive: bool,
}

impl Pattern {
    /// `None` for universal matching (empty value or a lone `*`).
    pub fn new(value: &str, case_insensitive: bool) -> Option<Pattern> {
        let value = value.trim_matches(['\0', ' ']);
        if value.is_empty() || value.chars().all(|c| c == '*') {
            return None;
        }
        let fold = |c: char| {
            if case_insensitive {
                c.to_lowercase().next().unwrap_or(c)
            } else {
                c
            }
        };
        Some(Pattern {
            text: value.chars().map(fold).collect(),
            case_insensitive,
        })
    }

    fn has_wildcards(&self) -> bool {
        self.text.iter().any(|&c| c == '*' || c == '?')
    }

    pub fn matches(&self, value: &str) -> bool {
        let value: Vec<char> = value
            .trim_matches(['\0', ' '])
            .chars()
            .map(|c| {
                if self.case_insensitive {
                    c.to_lowercase().next().unwrap_or(c)
                } else {
                    c
                }
            })
            .collect();
        wildcard(&self.text, &value)
    }
}

/// Iterative wildcard match with backtracking to the last `*`: linear for typical patterns.
fn wildcard(pattern: &[char], value: &[char]) -> bool {
    let (mut p, mut v) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while v < value.len() {
        if p < pattern.len() && (pattern[p] == '?' || pattern[p] == value[v]) {
            p += 1;
            v += 1;
        } else if p < pattern.len() && pattern[p] == '*' {
            star = Some((p, v));
            p += 1;
        } else if let Some((sp, sv)) = star {
            p = sp + 1;
            v = sv + 1;
            star = Some((sp, sv + 1));
        } else {
            return false;
        }
    }
    pattern[p..].iter().all(|&c| c == '*')
}

/// A range of DA or TM values, bounds inclusive, either side open.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Range {
    pub low: Option<String>,
    pub high: Option<String>,
}

impl Range {
    /// Parses `a`, `a-b`, `-b`, `a-`; `None` for universal matching.
    pub fn parse(value: &str) -> Option<Range> {
        let value = value.trim_matches(['\0', ' ']);
        if value.is_empty() || value == "-" {
            return None;
        }
        let clean = |s: &str| {
            let s = s.trim();
            (!s.is_empty()).then(|| s.replace(':', ""))
        };
        Some(match value.split_once('-') {
            Some((a, b)) => Range {
                low: clean(a),
                high: clean(b),
            },
            None => Range {
                low: clean(value),
                high: clean(value),
            },
        })
    }
}

/// HHMMSS from a TM value: colons and fractions dropped, padded with `pad`.
pub fn time_key(value: &str, pad: char) -> String {
    let mut t: String = value
        .split('.')
        .next()
        .unwrap_or("")
        .chars()
        .filter(|c| c.is_ascii_digit())
        .take(6)
        .collect();
    while t.len() < 6 {
        t.push(pad);
    }
    t
}

/// What a modality asked for. Every field is optional; `None` matches everything.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Query {
    pub accession_number: Option<Pattern>,
    pub patient_id: Option<Pattern>,
    /// Case-insensitive, as modalities type names in any case.
    pub patient_name: Option<Pattern>,
    pub modality: Option<Pattern>,
    pub station_ae: Option<Pattern>,
    pub date: Option<Range>,
    pub time: Option<Range>,
    pub status: Option<Pattern>,
}

impl Query {
    /// The accession number when the query names exactly one (a point lookup).
    pub fn exact_accession(&self) -> Option<String> {
        self.accession_number
            .as_ref()
            .filter(|p| !p.has_wildcards())
            .map(|p| p.text.iter().collect())
    }

    pub fn matches(&self, entry: &WorklistEntry) -> bool {
        let text = |p: &Option<Pattern>, v: &str| p.as_ref().is_none_or(|p| p.matches(v));
        text(&self.accession_number, &entry.accession_number)
            && text(&self.patient_id, &entry.participant.nhs_number)
            && text(&self.patient_name, &entry.participant.name)
            && text(&self.modality, &entry.procedure.modality)
            && self.station_matches(entry)
            && text(&self.status, status_text(entry.status))
            && self.when_matches(entry)
    }

    fn station_matches(&self, entry: &WorklistEntry) -> bool {
        match (&self.station_ae, &entry.scheduled_station_ae) {
            (None, _) => true,
            // An item scheduled on no particular station is offered to every station.
            (Some(_), None) => true,
            (Some(p), Some(ae)) => p.matches(ae),
        }
    }

    fn when_matches(&self, entry: &WorklistEntry) -> bool {
        let date = entry.scheduled.date.as_str();
        let time = time_key(&entry.scheduled.time, '0');
        match (&self.date, &self.time) {
            (None, None) => true,
            (Some(d), None) => {
                d.low.as_deref().is_none_or(|l| date >= l)
                    && d.high.as_deref().is_none_or(|h| date <= h)
            }
            (None, Some(t)) => {
                t.low.as_ref().is_none_or(|l| time >= time_key(l, '0'))
                    && t.high.as_ref().is_none_or(|h| time <= time_key(h, '9'))
            }
            (Some(d), Some(t)) => {
                let at = format!("{date}{time}");
                let low = d.low.as_ref().map(|l| {
                    format!(
                        "{l}{}",
                        t.low
                            .as_deref()
                            .map_or("000000".into(), |x| time_key(x, '0'))
                    )
                });
                let high = d.high.as_ref().map(|h| {
                    format!(
                        "{h}{}",
                        t.high
                            .as_deref()
                            .map_or("999999".into(), |x| time_key(x, '9'))
                    )
                });
                low.is_none_or(|l| at >= l) && high.is_none_or(|h| at <= h)
            }
        }
    }
}

/// The DICOM defined term for a status.
pub fn status_text(status: WorklistStatus) -> &'static str {
    match status {
        WorklistStatus::Scheduled => "SCHEDULED",
        WorklistStatus::InProgress => "IN PROGRESS",
        WorklistStatus::Completed => "COMPLETED",
        WorklistStatus::Discontinued => "DISCONTINUED",
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use shared::wire::action::WorklistItem;

    /// (pattern, case-insensitive, value, matches)
    #[rustfmt::skip]
    const PATTERNS: &[(&str, bool, &str, bool)] = &[
        // Single value matching: the whole value, case as given.
        ("ACC1", false, "ACC1", true),
        ("ACC1", false, "ACC12", false),
        ("ACC1", false, "XACC1", false),
        ("ACC1", false, "acc1", false),
        ("ACC1", false, "", false),
        // Trailing (and leading) spaces and NULs are padding, on either side.
        ("ACC1 ", false, "ACC1", true),
        ("ACC1", false, "ACC1 ", true),
        ("ACC1\0", false, "ACC1", true),
        ("ACC1", false, "ACC1\0", true),
        (" ACC1", false, "ACC1", true),
        ("ACC 1", false, "ACC 1", true),
        ("ACC 1", false, "ACC1", false),
        // `?` is exactly one character.
        ("AC?1", false, "ACC1", true),
        ("AC?1", false, "AC1", false),
        ("AC?1", false, "ACCC1", false),
        ("????", false, "ACC1", true),
        ("????", false, "ACC", false),
        ("????", false, "ACC12", false),
        ("?", false, "É", true),
        // `*` is any run, including none.
        ("ACC*", false, "ACC", true),
        ("ACC*", false, "ACC123", true),
        ("ACC*", false, "AC", false),
        ("*123", false, "ACC123", true),
        ("*123", false, "123", true),
        ("*123", false, "1234", false),
        ("A*1", false, "A1", true),
        ("A*1", false, "ACC1", true),
        ("A*1", false, "ACC12", false),
        ("*C*", false, "ACC1", true),
        ("*C*", false, "A1", false),
        ("**1", false, "ACC1", true),
        ("A**", false, "ACC1", true),
        ("*?", false, "A", true),
        ("*?", false, "", false),
        ("?*", false, "", false),
        ("?*?", false, "AB", true),
        ("?*?", false, "A", false),
        // Backtracking: the first place a `*` could stop is not always the right one.
        ("*ab", false, "aab", true),
        ("*ab", false, "abab", true),
        ("*ab", false, "abac", false),
        ("a*b*c", false, "aXbYbZc", true),
        ("a*b*c", false, "abcbc", true),
        ("a*b*c", false, "aXbYbZ", false),
        ("a*bc", false, "abbbc", true),
        ("a*bc", false, "abcbd", false),
        ("*aab", false, "aaaab", true),
        ("*a?b", false, "aaxab", false),
        ("*a?b", false, "aaxb", true),
        ("a*a*a*a*b", false, "aaaaaaaaaaaaaaaaaaaa", false),
        ("a*a*a*a*b", false, "aaaaaaaaaaaaaaaaaaab", true),
        ("*?*?*", false, "ab", true),
        ("*?*?*", false, "a", false),
        // Names: case folded when asked, on both sides, including outside ASCII.
        ("smith^jane", true, "SMITH^JANE", true),
        ("SMITH^*", true, "Smith^Jane", true),
        ("SMITH^*", false, "Smith^Jane", false),
        ("smith^j?ne", true, "SMITH^JANE", true),
        ("ÉLODIE*", true, "élodie^x", true),
        ("élodie", false, "ÉLODIE", false),
        ("smith", true, "SMITHS", false),
        // A `*` in the value is an ordinary character.
        ("A*", false, "*", false),
        ("?", false, "*", true),
    ];

    #[test]
    fn wildcard_patterns() {
        for &(pattern, fold, value, expected) in PATTERNS {
            let p = Pattern::new(pattern, fold).expect("not universal");
            assert_eq!(
                p.matches(value),
                expected,
                "{pattern:?} (fold {fold}) ~ {value:?}"
            );
        }
    }

    #[test]
    fn empty_and_lone_star_patterns_are_universal() {
        for value in ["", " ", "\0", " \0 ", "*", "**", " * ", "*\0"] {
            assert_eq!(Pattern::new(value, false), None, "{value:?}");
            assert_eq!(Pattern::new(value, true), None, "{value:?}");
        }
        for value in ["?", "*?", "a", "?*"] {
            assert!(Pattern::new(value, false).is_some(), "{value:?}");
        }
    }

    #[test]
    fn only_a_wildcard_free_accession_is_a_point_lookup() {
        let cases = [
            ("ACC00001", Some("ACC00001")),
            (" ACC00001 ", Some("ACC00001")),
            ("ACC0000?", None),
            ("ACC*", None),
            ("*", None),
            ("", None),
        ];
        for (value, expected) in cases {
            let query = Query {
                accession_number: Pattern::new(value, false),
                ..Query::default()
            };
            assert_eq!(query.exact_accession().as_deref(), expected, "{value:?}");
        }
    }

    #[test]
    fn ranges() {
        let range = |low: Option<&str>, high: Option<&str>| {
            Some(Range {
                low: low.map(Into::into),
                high: high.map(Into::into),
            })
        };
        #[rustfmt::skip]
        let cases = [
            // A single value is a range of one.
            ("20261122", range(Some("20261122"), Some("20261122"))),
            ("20261120-20261125", range(Some("20261120"), Some("20261125"))),
            ("-20261125", range(None, Some("20261125"))),
            ("20261120-", range(Some("20261120"), None)),
            // Universal.
            ("", None),
            ("-", None),
            (" ", None),
            ("\0", None),
            (" - ", None),
            // TM values: colons (the ACR-NEMA form) dropped, fractions kept for later.
            ("09:30", range(Some("0930"), Some("0930"))),
            ("09:30-10:00", range(Some("0930"), Some("1000"))),
            ("-10:00:00", range(None, Some("100000"))),
            ("093000.5-", range(Some("093000.5"), None)),
            // Padding around the value and around the dash.
            (" 20261120-20261125 ", range(Some("20261120"), Some("20261125"))),
            ("20261120 - 20261125", range(Some("20261120"), Some("20261125"))),
            ("20261120\0", range(Some("20261120"), Some("20261120"))),
            ("0930 -", range(Some("0930"), None)),
        ];
        for (value, expected) in cases {
            assert_eq!(Range::parse(value), expected, "{value:?}");
        }
    }

    /// A SCHEDULED item, accession ACC00001, on `date` at `time` on `station` (also used by the
    /// MPPS tests).
    pub(crate) fn entry(date: &str, time: &str, station: Option<&str>) -> WorklistEntry {
        // As the cloud sends it (tests/common builds the same for the integration tests).
        let item: WorklistItem = serde_json::from_value(serde_json::json!({
            "accession_number": "ACC00001",
            "participant": {"nhs_number": "9434765919", "name": "Smith^Jane",
                            "birth_date": "19700101", "sex": "F"},
            "scheduled": {"date": date, "time": time},
            "procedure": {"modality": "MG", "study_description": "Screening"},
        }))
        .unwrap();
        WorklistEntry::new(item, None, station.map(Into::into)).unwrap()
    }

    #[test]
    fn date_and_time_ranges_combine_into_one_date_time_range() {
        // (date key, time key, scheduled date, scheduled time, matches)
        #[rustfmt::skip]
        let cases = [
            // No keys: everything.
            ("", "", "20261122", "093000", true),
            // Date alone.
            ("20261122", "", "20261122", "093000", true),
            ("20261122", "", "20261123", "093000", false),
            ("20261120-20261122", "", "20261122", "235959", true),
            ("20261120-20261122", "", "20261119", "120000", false),
            ("-20261122", "", "19990101", "000000", true),
            ("-20261122", "", "20261123", "000000", false),
            ("20261122-", "", "20991231", "000000", true),
            ("20261122-", "", "20261121", "235959", false),
            // Time alone, on any day; a short bound covers what it leaves out.
            ("", "0930", "20261122", "093000", true),
            ("", "0930", "20261122", "093059", true),
            ("", "0930", "20261122", "093100", false),
            ("", "09", "20261122", "095959", true),
            ("", "09", "20261122", "100000", false),
            ("", "0900-1000", "20261122", "093000", true),
            ("", "0900-1000", "20261122", "100059", true),
            ("", "0900-1000", "20261122", "101000", false),
            ("", "0900-1000", "20261122", "085959", false),
            ("", "-0900", "20261122", "080000", true),
            ("", "-0900", "20261122", "091000", false),
            ("", "1700-", "20261122", "235959", true),
            ("", "1700-", "20261122", "165959", false),
            ("", "09:00-10:00", "20261122", "0930", true),
            ("", "0900-1000", "20261122", "0930", true),
            ("", "0900-1000", "20261122", "093000.123", true),
            ("", "093000.5-", "20261122", "093000", true),
            // Both: from the low date at the low time to the high date at the high time, so
            // the time bounds the first and last days only.
            ("20261122", "0900-1000", "20261122", "093000", true),
            ("20261122", "0900-1000", "20261122", "110000", false),
            ("20261122-20261123", "0900-1000", "20261122", "230000", true),
            ("20261122-20261123", "0900-1000", "20261123", "080000", true),
            ("20261122-20261123", "0900-1000", "20261122", "080000", false),
            ("20261122-20261123", "0900-1000", "20261123", "110000", false),
            ("20261121-20261123", "0900-1000", "20261122", "030000", true),
            // An open date end leaves the time on that end open too.
            ("20261122-", "0900-1000", "20261122", "085959", false),
            ("20261122-", "0900-1000", "20261230", "230000", true),
            ("-20261122", "0900-1000", "20261101", "000000", true),
            ("-20261122", "0900-1000", "20261122", "100100", false),
            // An open time end spans the whole day.
            ("20261122", "0900-", "20261122", "235959", true),
            ("20261122", "0900-", "20261122", "085959", false),
            ("20261122", "-1000", "20261122", "000000", true),
            ("20261122", "-1000", "20261122", "100100", false),
            // Short scheduled times are padded with zeros.
            ("20261122", "0930-", "20261122", "0930", true),
            ("20261122", "-0929", "20261122", "0930", false),
        ];
        for (date, time, on, at, expected) in cases {
            let query = Query {
                date: Range::parse(date),
                time: Range::parse(time),
                ..Query::default()
            };
            assert_eq!(
                query.when_matches(&entry(on, at, None)),
                expected,
                "date {date:?} time {time:?} ~ {on} {at}"
            );
        }
    }

    #[test]
    fn items_on_no_station_are_offered_to_every_station() {
        // (station key, item's station, matches)
        let cases = [
            ("", None, true),
            ("", Some("MAMMO1"), true),
            ("*", Some("MAMMO1"), true),
            ("MAMMO1", Some("MAMMO1"), true),
            ("MAMMO1", Some("MAMMO2"), false),
            ("MAMMO1", None, true),
            ("MAMMO?", Some("MAMMO2"), true),
            ("MAMMO*", None, true),
            ("mammo1", Some("MAMMO1"), false),
        ];
        for (key, station, expected) in cases {
            let query = Query {
                station_ae: Pattern::new(key, false),
                ..Query::default()
            };
            let item = entry("20261122", "093000", station);
            assert_eq!(
                query.station_matches(&item),
                expected,
                "{key:?} ~ {station:?}"
            );
            assert_eq!(
                query.matches(&item),
                expected,
                "{key:?} ~ {station:?} (whole query)"
            );
        }
    }
}
