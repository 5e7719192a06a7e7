//! Study Root Query/Retrieve over the index (PS3.4 C.4.1): which study, series and image
//! attributes a query may use, how each key matches (single value, wildcard, range for dates and
//! times, list of UIDs, universal, C.2.2.2), the hierarchical rules (C.4.1.2.1: the unique keys
//! of every level above the one asked for, single values), and the response identifiers. Pure:
//! `services::qr_find` and `services::qr_retrieve` do the I/O.

use std::collections::BTreeSet;

use dicom_core::header::Header;
use dicom_core::{DataElement, PrimitiveValue, Tag, VR};
use dicom_dictionary_std::tags;
use dicom_object::InMemDicomObject;
use thiserror::Error;

use super::index::{text, InstanceRecord};
use crate::worklist::matching::{time_key, Pattern, Range};

/// A Query/Retrieve Level (0008,0052). PATIENT is Patient Root's, not offered.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Level {
    Study,
    Series,
    Image,
}

impl Level {
    fn parse(value: &str) -> Option<Level> {
        match value {
            "STUDY" => Some(Level::Study),
            "SERIES" => Some(Level::Series),
            "IMAGE" => Some(Level::Image),
            _ => None,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Level::Study => "STUDY",
            Level::Series => "SERIES",
            Level::Image => "IMAGE",
        }
    }

    /// The unique key of the level (C.4.1.1.3).
    pub fn unique_key(self) -> Tag {
        match self {
            Level::Study => tags::STUDY_INSTANCE_UID,
            Level::Series => tags::SERIES_INSTANCE_UID,
            Level::Image => tags::SOP_INSTANCE_UID,
        }
    }
}

/// Why an identifier cannot be answered: A900 (does not match the SOP class) or C000.
#[derive(Debug, Error, PartialEq, Eq)]
pub enum QueryError {
    #[error("Query/Retrieve Level (0008,0052) is missing or not STUDY, SERIES or IMAGE: {0:?}")]
    Level(String),
    #[error("a {level} query needs a single {key} (hierarchical Study Root, PS3.4 C.4.1.2.1)")]
    Hierarchy {
        level: &'static str,
        key: &'static str,
    },
    #[error("a {0} retrieve names the UIDs to retrieve at its level (PS3.4 C.4.2.2.1)")]
    NoUniqueKey(&'static str),
}

/// What one attribute of a record is, for matching and answering.
struct Attribute {
    tag: Tag,
    level: Level,
    vr: VR,
}

const fn attr(tag: Tag, level: Level, vr: VR) -> Attribute {
    Attribute { tag, level, vr }
}

/// Every attribute the gateway can match and return, with its level. Counts and Modalities in
/// Study are computed over the matching study's or series' instances.
const ATTRIBUTES: &[Attribute] = &[
    attr(tags::STUDY_INSTANCE_UID, Level::Study, VR::UI),
    attr(tags::STUDY_DATE, Level::Study, VR::DA),
    attr(tags::STUDY_TIME, Level::Study, VR::TM),
    attr(tags::ACCESSION_NUMBER, Level::Study, VR::SH),
    attr(tags::PATIENT_NAME, Level::Study, VR::PN),
    attr(tags::PATIENT_ID, Level::Study, VR::LO),
    attr(tags::STUDY_ID, Level::Study, VR::SH),
    attr(tags::STUDY_DESCRIPTION, Level::Study, VR::LO),
    attr(tags::PATIENT_BIRTH_DATE, Level::Study, VR::DA),
    attr(tags::PATIENT_SEX, Level::Study, VR::CS),
    attr(tags::MODALITIES_IN_STUDY, Level::Study, VR::CS),
    attr(tags::NUMBER_OF_STUDY_RELATED_SERIES, Level::Study, VR::IS),
    attr(
        tags::NUMBER_OF_STUDY_RELATED_INSTANCES,
        Level::Study,
        VR::IS,
    ),
    attr(tags::SERIES_INSTANCE_UID, Level::Series, VR::UI),
    attr(tags::MODALITY, Level::Series, VR::CS),
    attr(tags::SERIES_NUMBER, Level::Series, VR::IS),
    attr(tags::SERIES_DESCRIPTION, Level::Series, VR::LO),
    attr(
        tags::NUMBER_OF_SERIES_RELATED_INSTANCES,
        Level::Series,
        VR::IS,
    ),
    attr(tags::SOP_INSTANCE_UID, Level::Image, VR::UI),
    attr(tags::SOP_CLASS_UID, Level::Image, VR::UI),
    attr(tags::INSTANCE_NUMBER, Level::Image, VR::IS),
];

fn attribute(tag: Tag) -> Option<&'static Attribute> {
    ATTRIBUTES.iter().find(|a| a.tag == tag)
}

/// Attributes computed over a group of instances rather than read from one.
fn is_aggregate(tag: Tag) -> bool {
    matches!(
        tag,
        tags::MODALITIES_IN_STUDY
            | tags::NUMBER_OF_STUDY_RELATED_SERIES
            | tags::NUMBER_OF_STUDY_RELATED_INSTANCES
            | tags::NUMBER_OF_SERIES_RELATED_INSTANCES
    )
}

/// The value an instance has for a (non-aggregate) attribute.
fn value_of(record: &InstanceRecord, tag: Tag) -> Option<&str> {
    let d = &record.data_set;
    let v = match tag {
        tags::STUDY_INSTANCE_UID => Some(&record.study_instance_uid),
        tags::SERIES_INSTANCE_UID => Some(&record.series_instance_uid),
        tags::SOP_INSTANCE_UID => Some(&record.sop_instance_uid),
        tags::SOP_CLASS_UID => Some(&record.sop_class_uid),
        tags::STUDY_DATE => d.study_date.as_ref(),
        tags::STUDY_TIME => d.study_time.as_ref(),
        tags::ACCESSION_NUMBER => d.accession_number.as_ref(),
        tags::PATIENT_NAME => d.patient_name.as_ref(),
        tags::PATIENT_ID => d.patient_id.as_ref(),
        tags::STUDY_ID => d.study_id.as_ref(),
        tags::STUDY_DESCRIPTION => d.study_description.as_ref(),
        tags::PATIENT_BIRTH_DATE => d.patient_birth_date.as_ref(),
        tags::PATIENT_SEX => d.patient_sex.as_ref(),
        tags::MODALITY => d.modality.as_ref(),
        tags::SERIES_NUMBER => d.series_number.as_ref(),
        tags::SERIES_DESCRIPTION => d.series_description.as_ref(),
        tags::INSTANCE_NUMBER => d.instance_number.as_ref(),
        _ => None,
    };
    v.map(String::as_str)
}

/// How one key matches (PS3.4 C.2.2.2).
#[derive(Debug, Clone, PartialEq, Eq)]
enum Matcher {
    /// Any of the UIDs, exactly (C.2.2.2.2). A set: a list may be as long as the 16 MiB an
    /// identifier may be, and is looked up once per indexed instance.
    Uids(BTreeSet<String>),
    /// A date or time range, or a single date or time (C.2.2.2.5).
    Range { range: Range, time: bool },
    /// Single value or wildcard; any of several for a multi-valued key (Modalities in Study).
    Text(Vec<Pattern>),
}

impl Matcher {
    /// `None` for universal matching (an empty value).
    fn new(vr: VR, value: &str) -> Option<Matcher> {
        let value = value.trim_matches(['\0', ' ']);
        if value.is_empty() {
            return None;
        }
        match vr {
            VR::UI => Some(Matcher::Uids(
                value
                    .split('\\')
                    .map(|u| u.trim_matches(['\0', ' ']).to_string())
                    .filter(|u| !u.is_empty())
                    .collect(),
            )),
            VR::DA | VR::TM => Range::parse(value).map(|range| Matcher::Range {
                range,
                time: vr == VR::TM,
            }),
            _ => {
                // Person names are matched case-insensitively, as the worklist does: people
                // type them in any case.
                let fold = vr == VR::PN;
                let patterns: Vec<Pattern> = value
                    .split('\\')
                    .filter_map(|v| Pattern::new(v, fold))
                    .collect();
                (!patterns.is_empty()).then_some(Matcher::Text(patterns))
            }
        }
    }

    fn matches(&self, value: Option<&str>) -> bool {
        let Some(value) = value else {
            return false;
        };
        match self {
            Matcher::Uids(uids) => uids.contains(value),
            Matcher::Range { range, time } => {
                if *time {
                    let at = time_key(value, '0');
                    range.low.as_ref().is_none_or(|l| at >= time_key(l, '0'))
                        && range.high.as_ref().is_none_or(|h| at <= time_key(h, '9'))
                } else {
                    let at = value.replace('.', "");
                    range.low.as_ref().is_none_or(|l| at.as_str() >= l.as_str())
                        && range
                            .high
                            .as_ref()
                            .is_none_or(|h| at.as_str() <= h.as_str())
                }
            }
            Matcher::Text(patterns) => value
                .split('\\')
                .any(|v| patterns.iter().any(|p| p.matches(v))),
        }
    }

    /// A single UID, as the hierarchy needs above the level asked for.
    fn single_uid(&self) -> Option<&str> {
        match self {
            Matcher::Uids(uids) if uids.len() == 1 => uids.first().map(String::as_str),
            _ => None,
        }
    }
}

/// A parsed Study Root identifier.
#[derive(Debug, Clone)]
pub struct Query {
    pub level: Level,
    /// Keys that restrict the match, on this level or above.
    keys: Vec<(Tag, Matcher)>,
    /// Every key asked for, in order, with the VR it came with: the response returns each.
    returned: Vec<(Tag, VR)>,
    /// Keys asked for that the gateway does not keep (their values return empty): C-FIND
    /// answers FF01 for them.
    pub unsupported: Vec<Tag>,
}

impl Query {
    /// Reads an identifier. Keys below the level asked for are not Study Root's and are
    /// counted unsupported (returned empty, not matched).
    pub fn parse(identifier: &InMemDicomObject) -> Result<Query, QueryError> {
        let level_text = text(identifier, tags::QUERY_RETRIEVE_LEVEL).unwrap_or_default();
        let level = Level::parse(&level_text).ok_or(QueryError::Level(level_text))?;
        let mut query = Query {
            level,
            keys: Vec::new(),
            returned: Vec::new(),
            unsupported: Vec::new(),
        };
        for element in identifier.iter() {
            let tag = element.tag();
            if tag.group() == 0x0002
                || tag == tags::SPECIFIC_CHARACTER_SET
                || tag == tags::QUERY_RETRIEVE_LEVEL
            {
                continue;
            }
            query.returned.push((tag, element.vr()));
            let known = attribute(tag).filter(|a| a.level <= level);
            let Some(known) = known else {
                query.unsupported.push(tag);
                continue;
            };
            if is_aggregate(tag) && tag != tags::MODALITIES_IN_STUDY {
                // A count is a return key only.
                continue;
            }
            // A sequence or binary value is not a matching key anyone sends; as text it is not
            // a value, so such a key is universal.
            let value = element.to_str().map(|v| v.to_string()).unwrap_or_default();
            if let Some(matcher) = Matcher::new(known.vr, &value) {
                query.keys.push((tag, matcher));
            }
        }
        let needs = |key: Tag, name: &'static str| -> Result<(), QueryError> {
            match query.keys.iter().find(|(t, _)| *t == key) {
                Some((_, m)) if m.single_uid().is_some() => Ok(()),
                _ => Err(QueryError::Hierarchy {
                    level: level.name(),
                    key: name,
                }),
            }
        };
        if level >= Level::Series {
            needs(tags::STUDY_INSTANCE_UID, "Study Instance UID (0020,000D)")?;
        }
        if level >= Level::Image {
            needs(tags::SERIES_INSTANCE_UID, "Series Instance UID (0020,000E)")?;
        }
        Ok(query)
    }

    /// A C-GET or C-MOVE identifier: the level's unique key must list the UIDs wanted, so an
    /// empty identifier never means "everything".
    pub fn parse_retrieve(identifier: &InMemDicomObject) -> Result<Query, QueryError> {
        let query = Query::parse(identifier)?;
        let unique = query.level.unique_key();
        match query.keys.iter().find(|(t, _)| *t == unique) {
            Some((_, Matcher::Uids(uids))) if !uids.is_empty() => Ok(query),
            _ => Err(QueryError::NoUniqueKey(query.level.name())),
        }
    }

    /// The Study Instance UID when the query names exactly one, to narrow the index scan.
    pub fn only_study(&self) -> Option<&str> {
        self.keys
            .iter()
            .find(|(t, _)| *t == tags::STUDY_INSTANCE_UID)
            .and_then(|(_, m)| m.single_uid())
    }

    /// Whether one instance matches the keys read from instances (every key but Modalities in
    /// Study, which [`Query::matches_group`] checks).
    pub fn matches_instance(&self, record: &InstanceRecord) -> bool {
        self.keys
            .iter()
            .filter(|(t, _)| !is_aggregate(*t))
            .all(|(t, m)| m.matches(value_of(record, *t)))
    }

    /// Groups matching instances into the entities of the query's level, in index order, and
    /// keeps those whose aggregate keys match. `all` are every instance of the studies concerned
    /// (for counts and modalities); `matched` those [`Query::matches_instance`] kept.
    pub fn entities<'a>(
        &self,
        matched: &'a [InstanceRecord],
        all: &'a [InstanceRecord],
    ) -> Vec<Entity<'a>> {
        let key = |r: &InstanceRecord| -> String {
            match self.level {
                Level::Study => r.study_instance_uid.clone(),
                Level::Series => r.series_instance_uid.clone(),
                Level::Image => r.sop_instance_uid.clone(),
            }
        };
        let mut by_study: std::collections::HashMap<&str, Vec<&InstanceRecord>> =
            std::collections::HashMap::new();
        for r in all {
            by_study
                .entry(r.study_instance_uid.as_str())
                .or_default()
                .push(r);
        }
        let mut seen = BTreeSet::new();
        let mut out = Vec::new();
        for record in matched {
            if !seen.insert(key(record)) {
                continue;
            }
            let study = by_study
                .get(record.study_instance_uid.as_str())
                .cloned()
                .unwrap_or_default();
            let entity = Entity {
                first: record,
                study,
            };
            let modalities_ok = self
                .keys
                .iter()
                .filter(|(t, _)| *t == tags::MODALITIES_IN_STUDY)
                .all(|(_, m)| m.matches(Some(&entity.modalities().join("\\"))));
            if modalities_ok {
                out.push(entity);
            }
        }
        out
    }

    /// The response identifier for one entity: every key asked for, with the gateway's value
    /// or empty, the unique keys of this level and those above, the level, and Retrieve AE Title.
    pub fn response(&self, entity: &Entity<'_>, retrieve_ae: &str) -> InMemDicomObject {
        let mut out = InMemDicomObject::new_empty();
        let put = |out: &mut InMemDicomObject, tag: Tag, vr: VR, value: Option<String>| {
            out.put(match value {
                Some(v) if !v.is_empty() => DataElement::new(tag, vr, PrimitiveValue::from(v)),
                _ => DataElement::empty(tag, vr),
            });
        };
        put(
            &mut out,
            tags::SPECIFIC_CHARACTER_SET,
            VR::CS,
            Some("ISO_IR 192".into()),
        );
        put(
            &mut out,
            tags::QUERY_RETRIEVE_LEVEL,
            VR::CS,
            Some(self.level.name().into()),
        );
        put(
            &mut out,
            tags::RETRIEVE_AE_TITLE,
            VR::AE,
            Some(retrieve_ae.into()),
        );
        for (tag, vr) in &self.returned {
            let known = attribute(*tag).filter(|a| a.level <= self.level);
            let value = known.and_then(|_| entity.value(*tag));
            // The VR the gateway knows wins over the one an implicit VR identifier implies.
            let vr = known.map_or(*vr, |a| a.vr);
            if vr == VR::SQ {
                continue;
            }
            put(&mut out, *tag, vr, value);
        }
        for level in [Level::Study, Level::Series, Level::Image] {
            if level <= self.level {
                let tag = level.unique_key();
                put(&mut out, tag, VR::UI, entity.value(tag));
            }
        }
        out
    }
}

/// One matching study, series or image: its first matching instance and its study's instances.
pub struct Entity<'a> {
    first: &'a InstanceRecord,
    study: Vec<&'a InstanceRecord>,
}

impl Entity<'_> {
    fn modalities(&self) -> Vec<String> {
        let set: BTreeSet<&str> = self
            .study
            .iter()
            .filter_map(|r| r.data_set.modality.as_deref())
            .collect();
        set.into_iter().map(str::to_string).collect()
    }

    fn value(&self, tag: Tag) -> Option<String> {
        let series_uid = &self.first.series_instance_uid;
        match tag {
            tags::MODALITIES_IN_STUDY => Some(self.modalities().join("\\")),
            tags::NUMBER_OF_STUDY_RELATED_INSTANCES => Some(self.study.len().to_string()),
            tags::NUMBER_OF_STUDY_RELATED_SERIES => {
                let series: BTreeSet<&str> = self
                    .study
                    .iter()
                    .map(|r| r.series_instance_uid.as_str())
                    .collect();
                Some(series.len().to_string())
            }
            tags::NUMBER_OF_SERIES_RELATED_INSTANCES => Some(
                self.study
                    .iter()
                    .filter(|r| &r.series_instance_uid == series_uid)
                    .count()
                    .to_string(),
            ),
            _ => value_of(self.first, tag).map(str::to_string),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::storage::index::DataSetFacts;

    fn record(study: &str, series: &str, sop: &str, date: &str, name: &str) -> InstanceRecord {
        InstanceRecord {
            sop_instance_uid: sop.into(),
            sop_class_uid: "1.2.840.10008.5.1.4.1.1.1.2".into(),
            series_instance_uid: series.into(),
            study_instance_uid: study.into(),
            data_set: DataSetFacts {
                patient_name: Some(name.into()),
                patient_id: Some("9434765919".into()),
                modality: Some("MG".into()),
                study_date: Some(date.into()),
                study_time: Some("093000.123".into()),
                ..DataSetFacts::default()
            },
            transfer_syntax: "1.2.840.10008.1.2.1".into(),
            file_path: String::new(),
            file_size: 0,
            file_sha256: String::new(),
            received_at: String::new(),
            calling_ae: String::new(),
        }
    }

    /// Identifier keys: tag, VR, value.
    type Keys<'a> = Vec<(Tag, VR, &'a str)>;

    fn identifier(level: &str, keys: &[(Tag, VR, &str)]) -> InMemDicomObject {
        let mut obj = InMemDicomObject::new_empty();
        obj.put(DataElement::new(
            tags::QUERY_RETRIEVE_LEVEL,
            VR::CS,
            PrimitiveValue::from(level),
        ));
        for (tag, vr, v) in keys {
            obj.put(if v.is_empty() {
                DataElement::empty(*tag, *vr)
            } else {
                DataElement::new(*tag, *vr, PrimitiveValue::from(*v))
            });
        }
        obj
    }

    #[test]
    fn study_keys_match_as_ps3_4_says() {
        let records = [
            record("1.1", "1.1.1", "1.1.1.1", "20261101", "SMITH^JANE"),
            record("1.1", "1.1.2", "1.1.2.1", "20261101", "SMITH^JANE"),
            record("1.2", "1.2.1", "1.2.1.1", "20261115", "JONES^ANN"),
        ];
        // (keys, studies found)
        let cases: Vec<(Keys, Vec<&str>)> = vec![
            (vec![], vec!["1.1", "1.2"]),
            (vec![(tags::PATIENT_NAME, VR::PN, "")], vec!["1.1", "1.2"]),
            (vec![(tags::PATIENT_NAME, VR::PN, "smith*")], vec!["1.1"]),
            (vec![(tags::PATIENT_NAME, VR::PN, "J?NES^ANN")], vec!["1.2"]),
            (vec![(tags::STUDY_DATE, VR::DA, "20261110-")], vec!["1.2"]),
            (vec![(tags::STUDY_DATE, VR::DA, "-20261110")], vec!["1.1"]),
            (
                vec![(tags::STUDY_DATE, VR::DA, "20261101-20261115")],
                vec!["1.1", "1.2"],
            ),
            (vec![(tags::STUDY_DATE, VR::DA, "20261115")], vec!["1.2"]),
            (
                vec![(tags::STUDY_TIME, VR::TM, "0900-1000")],
                vec!["1.1", "1.2"],
            ),
            (vec![(tags::STUDY_TIME, VR::TM, "1000-")], vec![]),
            (
                vec![(tags::STUDY_INSTANCE_UID, VR::UI, "1.2\\1.9")],
                vec!["1.2"],
            ),
            (vec![(tags::STUDY_INSTANCE_UID, VR::UI, "1.1")], vec!["1.1"]),
            (
                vec![(tags::MODALITIES_IN_STUDY, VR::CS, "CT\\MG")],
                vec!["1.1", "1.2"],
            ),
            (vec![(tags::MODALITIES_IN_STUDY, VR::CS, "CT")], vec![]),
            // Never stored: a key with a value matches nothing, an empty one everything.
            (vec![(tags::STUDY_ID, VR::SH, "7")], vec![]),
            (vec![(tags::STUDY_ID, VR::SH, "")], vec!["1.1", "1.2"]),
        ];
        for (keys, want) in cases {
            let query = Query::parse(&identifier("STUDY", &keys)).unwrap();
            let matched: Vec<InstanceRecord> = records
                .iter()
                .filter(|r| query.matches_instance(r))
                .cloned()
                .collect();
            let found: Vec<String> = query
                .entities(&matched, &records)
                .iter()
                .map(|e| e.value(tags::STUDY_INSTANCE_UID).unwrap())
                .collect();
            assert_eq!(found, want, "{keys:?}");
        }
    }

    #[test]
    fn lower_levels_need_the_unique_keys_above() {
        let series_uid = (tags::SERIES_INSTANCE_UID, VR::UI, "1.1.1");
        // (level, keys, accepted)
        let cases: Vec<(&str, Keys, bool)> = vec![
            ("STUDY", vec![], true),
            ("SERIES", vec![], false),
            (
                "SERIES",
                vec![(tags::STUDY_INSTANCE_UID, VR::UI, "1.1")],
                true,
            ),
            (
                "SERIES",
                vec![(tags::STUDY_INSTANCE_UID, VR::UI, "1.1\\1.2")],
                false,
            ),
            (
                "SERIES",
                vec![(tags::STUDY_INSTANCE_UID, VR::UI, "")],
                false,
            ),
            (
                "IMAGE",
                vec![(tags::STUDY_INSTANCE_UID, VR::UI, "1.1")],
                false,
            ),
            (
                "IMAGE",
                vec![(tags::STUDY_INSTANCE_UID, VR::UI, "1.1"), series_uid],
                true,
            ),
            ("PATIENT", vec![], false),
            ("", vec![], false),
        ];
        for (level, keys, accepted) in cases {
            let parsed = Query::parse(&identifier(level, &keys));
            assert_eq!(parsed.is_ok(), accepted, "{level} {keys:?}: {parsed:?}");
        }
    }

    #[test]
    fn a_retrieve_names_the_uids_it_wants() {
        let study = (tags::STUDY_INSTANCE_UID, VR::UI, "1.1");
        let series = (tags::SERIES_INSTANCE_UID, VR::UI, "1.1.1\\1.1.2");
        // (level, keys, accepted)
        let cases: Vec<(&str, Keys, bool)> = vec![
            ("STUDY", vec![], false),
            ("STUDY", vec![(tags::STUDY_INSTANCE_UID, VR::UI, "")], false),
            ("STUDY", vec![(tags::PATIENT_ID, VR::LO, "*")], false),
            ("STUDY", vec![study], true),
            ("SERIES", vec![study], false),
            ("SERIES", vec![study, series], true),
        ];
        for (level, keys, accepted) in cases {
            let parsed = Query::parse_retrieve(&identifier(level, &keys));
            assert_eq!(parsed.is_ok(), accepted, "{level} {keys:?}: {parsed:?}");
        }
    }

    #[test]
    fn responses_carry_every_key_asked_and_the_unique_keys() {
        let records = [
            record("1.1", "1.1.1", "1.1.1.1", "20261101", "SMITH^JANE"),
            record("1.1", "1.1.1", "1.1.1.2", "20261101", "SMITH^JANE"),
        ];
        let keys = [
            (tags::STUDY_INSTANCE_UID, VR::UI, "1.1"),
            (tags::MODALITY, VR::CS, ""),
            (tags::NUMBER_OF_SERIES_RELATED_INSTANCES, VR::IS, ""),
            (tags::PATIENT_NAME, VR::PN, ""),
            (Tag(0x0009, 0x0010), VR::LO, ""),
        ];
        let query = Query::parse(&identifier("SERIES", &keys)).unwrap();
        assert_eq!(query.unsupported, vec![Tag(0x0009, 0x0010)]);
        let entities = query.entities(&records, &records);
        assert_eq!(entities.len(), 1);
        let rsp = query.response(&entities[0], "GW");
        let get = |t| text(&rsp, t);
        assert_eq!(get(tags::SERIES_INSTANCE_UID).as_deref(), Some("1.1.1"));
        assert_eq!(get(tags::STUDY_INSTANCE_UID).as_deref(), Some("1.1"));
        assert_eq!(get(tags::MODALITY).as_deref(), Some("MG"));
        assert_eq!(
            get(tags::NUMBER_OF_SERIES_RELATED_INSTANCES).as_deref(),
            Some("2")
        );
        assert_eq!(get(tags::PATIENT_NAME).as_deref(), Some("SMITH^JANE"));
        assert_eq!(get(tags::QUERY_RETRIEVE_LEVEL).as_deref(), Some("SERIES"));
        assert_eq!(get(tags::RETRIEVE_AE_TITLE).as_deref(), Some("GW"));
        assert!(rsp.get(Tag(0x0009, 0x0010)).is_some());
        assert!(rsp.get(tags::SOP_INSTANCE_UID).is_none());
    }
}
