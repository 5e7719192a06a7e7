//! DIMSE command sets (PS3.7 §9.3, §10.3, annex E): group 0000 elements, always encoded in
//! implicit VR little endian whatever the presentation context's transfer syntax.
//!
//! Written by hand: dicom-rs has no DIMSE layer, and a command set is a flat list of a dozen
//! elements with fixed VRs, so a tiny codec is clearer than building `InMemDicomObject`s.

use thiserror::Error;

/// The command fields the gateway knows (PS3.7 E.1-1).
pub mod field {
    pub const C_STORE_RQ: u16 = 0x0001;
    pub const C_STORE_RSP: u16 = 0x8001;
    pub const C_FIND_RQ: u16 = 0x0020;
    pub const C_FIND_RSP: u16 = 0x8020;
    pub const C_GET_RQ: u16 = 0x0010;
    pub const C_GET_RSP: u16 = 0x8010;
    pub const C_MOVE_RQ: u16 = 0x0021;
    pub const C_MOVE_RSP: u16 = 0x8021;
    pub const C_ECHO_RQ: u16 = 0x0030;
    pub const C_ECHO_RSP: u16 = 0x8030;
    pub const C_CANCEL_RQ: u16 = 0x0FFF;
    pub const N_SET_RQ: u16 = 0x0120;
    pub const N_SET_RSP: u16 = 0x8120;
    pub const N_CREATE_RQ: u16 = 0x0140;
    pub const N_CREATE_RSP: u16 = 0x8140;
    pub const N_EVENT_REPORT_RQ: u16 = 0x0100;
    pub const N_EVENT_REPORT_RSP: u16 = 0x8100;
    pub const N_ACTION_RQ: u16 = 0x0130;
    pub const N_ACTION_RSP: u16 = 0x8130;
}

/// CommandDataSetType value meaning "no data set follows".
pub const NO_DATA_SET: u16 = 0x0101;

/// A decoded command set. Only the elements DIMSE services use are kept; others are skipped.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Command {
    pub command_field: u16,
    pub message_id: Option<u16>,
    pub message_id_being_responded_to: Option<u16>,
    pub affected_sop_class_uid: Option<String>,
    pub affected_sop_instance_uid: Option<String>,
    pub requested_sop_class_uid: Option<String>,
    pub requested_sop_instance_uid: Option<String>,
    pub priority: Option<u16>,
    pub has_data_set: bool,
    pub status: Option<u16>,
    pub error_comment: Option<String>,
    pub move_originator_ae: Option<String>,
    pub move_originator_message_id: Option<u16>,
    /// N-EVENT-REPORT's Event Type ID (0000,1002).
    pub event_type_id: Option<u16>,
    /// N-ACTION's Action Type ID (0000,1008).
    pub action_type_id: Option<u16>,
    /// C-MOVE-RQ: the AE the objects go to.
    pub move_destination: Option<String>,
    /// C-GET/C-MOVE-RSP: Number of Remaining, Completed, Failed and Warning Sub-operations.
    pub remaining: Option<u16>,
    pub completed: Option<u16>,
    pub failed: Option<u16>,
    pub warning: Option<u16>,
}

/// Why bytes could not be read as a command set.
#[derive(Debug, Error, PartialEq, Eq)]
pub enum CommandError {
    #[error("command set truncated at byte {0}")]
    Truncated(usize),
    #[error("command set element ({0:04X},{1:04X}) is outside group 0000")]
    NotCommandGroup(u16, u16),
    #[error("command set has no CommandField (0000,0100)")]
    NoCommandField,
    #[error("command element ({0:04X},{1:04X}) has a bad length {2}")]
    BadLength(u16, u16, usize),
}

// Command element tags (group 0000), element numbers only.
const GROUP_LENGTH: u16 = 0x0000;
const AFFECTED_SOP_CLASS_UID: u16 = 0x0002;
const REQUESTED_SOP_CLASS_UID: u16 = 0x0003;
const COMMAND_FIELD: u16 = 0x0100;
const MESSAGE_ID: u16 = 0x0110;
const MESSAGE_ID_BEING_RESPONDED_TO: u16 = 0x0120;
const PRIORITY: u16 = 0x0700;
const COMMAND_DATA_SET_TYPE: u16 = 0x0800;
const STATUS: u16 = 0x0900;
const ERROR_COMMENT: u16 = 0x0902;
const AFFECTED_SOP_INSTANCE_UID: u16 = 0x1000;
const REQUESTED_SOP_INSTANCE_UID: u16 = 0x1001;
const MOVE_DESTINATION: u16 = 0x0600;
const REMAINING: u16 = 0x1020;
const COMPLETED: u16 = 0x1021;
const FAILED: u16 = 0x1022;
const WARNING: u16 = 0x1023;
const MOVE_ORIGINATOR_AE: u16 = 0x1030;
const MOVE_ORIGINATOR_MESSAGE_ID: u16 = 0x1031;
const EVENT_TYPE_ID: u16 = 0x1002;
const ACTION_TYPE_ID: u16 = 0x1008;

impl Command {
    /// Decodes a complete command set.
    pub fn decode(bytes: &[u8]) -> Result<Command, CommandError> {
        let mut cmd = Command::default();
        let mut field = None;
        let mut pos = 0;
        while pos < bytes.len() {
            let head = bytes
                .get(pos..pos + 8)
                .ok_or(CommandError::Truncated(pos))?;
            let group = u16::from_le_bytes([head[0], head[1]]);
            let element = u16::from_le_bytes([head[2], head[3]]);
            let len = u32::from_le_bytes([head[4], head[5], head[6], head[7]]) as usize;
            if group != 0 {
                return Err(CommandError::NotCommandGroup(group, element));
            }
            let value = bytes
                .get(pos + 8..pos.saturating_add(8).saturating_add(len))
                .ok_or(CommandError::Truncated(pos))?;
            pos += 8 + len;
            let us = || -> Result<u16, CommandError> {
                match value {
                    [a, b] => Ok(u16::from_le_bytes([*a, *b])),
                    _ => Err(CommandError::BadLength(group, element, len)),
                }
            };
            let text = || Some(trim_text(value));
            match element {
                COMMAND_FIELD => field = Some(us()?),
                MESSAGE_ID => cmd.message_id = Some(us()?),
                MESSAGE_ID_BEING_RESPONDED_TO => cmd.message_id_being_responded_to = Some(us()?),
                AFFECTED_SOP_CLASS_UID => cmd.affected_sop_class_uid = text(),
                AFFECTED_SOP_INSTANCE_UID => cmd.affected_sop_instance_uid = text(),
                REQUESTED_SOP_CLASS_UID => cmd.requested_sop_class_uid = text(),
                REQUESTED_SOP_INSTANCE_UID => cmd.requested_sop_instance_uid = text(),
                PRIORITY => cmd.priority = Some(us()?),
                COMMAND_DATA_SET_TYPE => cmd.has_data_set = us()? != NO_DATA_SET,
                STATUS => cmd.status = Some(us()?),
                ERROR_COMMENT => cmd.error_comment = text(),
                MOVE_ORIGINATOR_AE => cmd.move_originator_ae = text(),
                MOVE_ORIGINATOR_MESSAGE_ID => cmd.move_originator_message_id = Some(us()?),
                EVENT_TYPE_ID => cmd.event_type_id = Some(us()?),
                ACTION_TYPE_ID => cmd.action_type_id = Some(us()?),
                MOVE_DESTINATION => cmd.move_destination = text(),
                REMAINING => cmd.remaining = Some(us()?),
                COMPLETED => cmd.completed = Some(us()?),
                FAILED => cmd.failed = Some(us()?),
                WARNING => cmd.warning = Some(us()?),
                _ => {}
            }
        }
        cmd.command_field = field.ok_or(CommandError::NoCommandField)?;
        Ok(cmd)
    }

    /// Encodes the command set, group length first, elements in ascending tag order.
    pub fn encode(&self) -> Vec<u8> {
        let mut body = Vec::with_capacity(256);
        let uid = |body: &mut Vec<u8>, el: u16, v: &Option<String>| {
            if let Some(v) = v {
                put_text(body, el, v, 0);
            }
        };
        let us = |body: &mut Vec<u8>, el: u16, v: Option<u16>| {
            if let Some(v) = v {
                put(body, el, &v.to_le_bytes());
            }
        };
        uid(
            &mut body,
            AFFECTED_SOP_CLASS_UID,
            &self.affected_sop_class_uid,
        );
        uid(
            &mut body,
            REQUESTED_SOP_CLASS_UID,
            &self.requested_sop_class_uid,
        );
        us(&mut body, COMMAND_FIELD, Some(self.command_field));
        us(&mut body, MESSAGE_ID, self.message_id);
        us(
            &mut body,
            MESSAGE_ID_BEING_RESPONDED_TO,
            self.message_id_being_responded_to,
        );
        if let Some(ae) = &self.move_destination {
            put_text(&mut body, MOVE_DESTINATION, ae, b' ');
        }
        us(&mut body, PRIORITY, self.priority);
        let data_set_type = if self.has_data_set {
            0x0000
        } else {
            NO_DATA_SET
        };
        us(&mut body, COMMAND_DATA_SET_TYPE, Some(data_set_type));
        us(&mut body, STATUS, self.status);
        if let Some(comment) = &self.error_comment {
            put_text(&mut body, ERROR_COMMENT, &error_comment(comment), b' ');
        }
        uid(
            &mut body,
            AFFECTED_SOP_INSTANCE_UID,
            &self.affected_sop_instance_uid,
        );
        uid(
            &mut body,
            REQUESTED_SOP_INSTANCE_UID,
            &self.requested_sop_instance_uid,
        );
        us(&mut body, EVENT_TYPE_ID, self.event_type_id);
        us(&mut body, ACTION_TYPE_ID, self.action_type_id);
        us(&mut body, REMAINING, self.remaining);
        us(&mut body, COMPLETED, self.completed);
        us(&mut body, FAILED, self.failed);
        us(&mut body, WARNING, self.warning);
        if let Some(ae) = &self.move_originator_ae {
            put_text(&mut body, MOVE_ORIGINATOR_AE, ae, b' ');
        }
        us(
            &mut body,
            MOVE_ORIGINATOR_MESSAGE_ID,
            self.move_originator_message_id,
        );
        let mut out = Vec::with_capacity(body.len() + 12);
        put(&mut out, GROUP_LENGTH, &(body.len() as u32).to_le_bytes());
        out.extend_from_slice(&body);
        out
    }

    /// A response to `request` with the given command field and status, echoing the message id
    /// and the affected SOP class and instance as PS3.7 requires.
    pub fn response_to(request: &Command, command_field: u16, status: u16) -> Command {
        Command {
            command_field,
            message_id_being_responded_to: request.message_id,
            affected_sop_class_uid: request
                .affected_sop_class_uid
                .clone()
                .or_else(|| request.requested_sop_class_uid.clone()),
            affected_sop_instance_uid: request
                .affected_sop_instance_uid
                .clone()
                .or_else(|| request.requested_sop_instance_uid.clone()),
            status: Some(status),
            ..Command::default()
        }
    }

    /// Short name for logs.
    pub fn name(&self) -> &'static str {
        match self.command_field {
            field::C_STORE_RQ => "C-STORE-RQ",
            field::C_FIND_RQ => "C-FIND-RQ",
            field::C_GET_RQ => "C-GET-RQ",
            field::C_MOVE_RQ => "C-MOVE-RQ",
            field::C_ECHO_RQ => "C-ECHO-RQ",
            field::C_CANCEL_RQ => "C-CANCEL-RQ",
            field::N_CREATE_RQ => "N-CREATE-RQ",
            field::N_SET_RQ => "N-SET-RQ",
            field::C_STORE_RSP => "C-STORE-RSP",
            field::C_FIND_RSP => "C-FIND-RSP",
            field::C_ECHO_RSP => "C-ECHO-RSP",
            field::N_CREATE_RSP => "N-CREATE-RSP",
            field::N_SET_RSP => "N-SET-RSP",
            field::N_EVENT_REPORT_RQ => "N-EVENT-REPORT-RQ",
            field::N_EVENT_REPORT_RSP => "N-EVENT-REPORT-RSP",
            field::N_ACTION_RQ => "N-ACTION-RQ",
            field::N_ACTION_RSP => "N-ACTION-RSP",
            _ => "unsupported command",
        }
    }
}

fn put(out: &mut Vec<u8>, element: u16, value: &[u8]) {
    out.extend_from_slice(&0u16.to_le_bytes());
    out.extend_from_slice(&element.to_le_bytes());
    out.extend_from_slice(&(value.len() as u32).to_le_bytes());
    out.extend_from_slice(value);
}

/// Text values are padded to even length: UIDs with NUL, other strings with a space.
fn put_text(out: &mut Vec<u8>, element: u16, value: &str, pad: u8) {
    let mut v = value.as_bytes().to_vec();
    if v.len() % 2 == 1 {
        v.push(pad);
    }
    put(out, element, &v);
}

/// An error comment as an LO value of the command set's default repertoire: printable ASCII
/// without backslash, at most 64 characters, no leading or trailing spaces. Comments quote what
/// a peer sent (UIDs, element values); the fuzzer found one whose NULs and non-ASCII bytes went
/// out as they were, and read back as another comment than the one sent.
fn error_comment(comment: &str) -> String {
    let printable: String = comment
        .chars()
        .map(|c| match c {
            '\\' => '/',
            c if c == ' ' || c.is_ascii_graphic() => c,
            _ => '?',
        })
        .collect();
    let trimmed = printable.trim_start();
    trimmed[..trimmed.len().min(64)].trim_end().to_string()
}

fn trim_text(value: &[u8]) -> String {
    String::from_utf8_lossy(value)
        .trim_end_matches(['\0', ' '])
        .trim_start()
        .to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_a_store_response() {
        let cmd = Command {
            command_field: field::C_STORE_RSP,
            message_id_being_responded_to: Some(7),
            affected_sop_class_uid: Some("1.2.840.10008.5.1.4.1.1.1.2".into()),
            affected_sop_instance_uid: Some("1.2.3".into()),
            status: Some(0xA700),
            error_comment: Some("disk full".into()),
            ..Default::default()
        };
        let bytes = cmd.encode();
        // Group length counts every byte after its own element.
        let len = u32::from_le_bytes(bytes[8..12].try_into().unwrap()) as usize;
        assert_eq!(len, bytes.len() - 12);
        assert_eq!(Command::decode(&bytes).unwrap(), cmd);
    }

    #[test]
    fn commitment_and_retrieve_commands_round_trip_with_their_elements() {
        let cases = [
            Command {
                command_field: field::N_ACTION_RQ,
                message_id: Some(3),
                requested_sop_class_uid: Some("1.2.840.10008.1.20.1".into()),
                requested_sop_instance_uid: Some("1.2.840.10008.1.20.1.1".into()),
                action_type_id: Some(1),
                has_data_set: true,
                ..Default::default()
            },
            Command {
                command_field: field::N_EVENT_REPORT_RQ,
                message_id: Some(9),
                affected_sop_class_uid: Some("1.2.840.10008.1.20.1".into()),
                affected_sop_instance_uid: Some("1.2.840.10008.1.20.1.1".into()),
                event_type_id: Some(2),
                has_data_set: true,
                ..Default::default()
            },
            Command {
                command_field: field::N_EVENT_REPORT_RSP,
                message_id_being_responded_to: Some(9),
                event_type_id: Some(2),
                status: Some(0x0115),
                error_comment: Some("unknown transaction".into()),
                ..Default::default()
            },
            Command {
                command_field: field::C_MOVE_RQ,
                message_id: Some(3),
                affected_sop_class_uid: Some("1.2.840.10008.5.1.4.1.2.2.2".into()),
                priority: Some(0),
                has_data_set: true,
                move_destination: Some("WS_STORE".into()),
                ..Default::default()
            },
            Command {
                command_field: field::C_GET_RSP,
                message_id_being_responded_to: Some(3),
                status: Some(0xFF00),
                remaining: Some(2),
                completed: Some(1),
                failed: Some(0),
                warning: Some(u16::MAX),
                ..Default::default()
            },
            Command {
                command_field: field::C_STORE_RQ,
                message_id: Some(1),
                affected_sop_instance_uid: Some("1.2.3".into()),
                has_data_set: true,
                move_originator_ae: Some("WORKSTATION".into()),
                move_originator_message_id: Some(3),
                ..Default::default()
            },
        ];
        for cmd in cases {
            let bytes = cmd.encode();
            let len = u32::from_le_bytes(bytes[8..12].try_into().unwrap()) as usize;
            assert_eq!(len, bytes.len() - 12);
            assert_eq!(Command::decode(&bytes).unwrap(), cmd, "{}", cmd.name());
        }
    }

    #[test]
    fn error_comments_go_out_as_printable_ascii_lo_and_read_back_as_sent() {
        let cases = [
            ("disk full", "disk full"),
            ("  padded  ", "padded"),
            ("nul\0inside\0\0", "nul?inside??"),
            ("tab\there", "tab?here"),
            ("back\\slash", "back/slash"),
            ("naïve ✓", "na?ve ?"),
            (&"x".repeat(70), &"x".repeat(64)),
            // Cut at 64, then trimmed: no trailing space that a reader would drop.
            (&format!("{} tail", "y".repeat(63)), &"y".repeat(63)),
        ];
        for (comment, sent) in cases {
            let cmd = Command {
                command_field: field::C_STORE_RSP,
                status: Some(0xA700),
                error_comment: Some(comment.to_string()),
                ..Default::default()
            };
            let read = Command::decode(&cmd.encode()).unwrap();
            assert_eq!(read.error_comment.as_deref(), Some(sent), "{comment:?}");
            assert_eq!(read.encode(), cmd.encode(), "{comment:?}: not stable");
        }
    }

    #[test]
    fn rejects_truncated_and_foreign_elements() {
        let bytes = Command {
            command_field: field::C_ECHO_RQ,
            message_id: Some(1),
            ..Default::default()
        }
        .encode();
        assert!(matches!(
            Command::decode(&bytes[..bytes.len() - 1]),
            Err(CommandError::Truncated(_))
        ));
        let mut foreign = bytes.clone();
        foreign.extend_from_slice(&[0x08, 0, 0x18, 0, 0, 0, 0, 0]);
        assert_eq!(
            Command::decode(&foreign),
            Err(CommandError::NotCommandGroup(8, 0x18))
        );
        let mut no_field = Vec::new();
        put(&mut no_field, MESSAGE_ID, &1u16.to_le_bytes());
        assert_eq!(
            Command::decode(&no_field),
            Err(CommandError::NoCommandField)
        );
    }
}
