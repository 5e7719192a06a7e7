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
fn time_key(value: &str, pad: char) -> String {
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
