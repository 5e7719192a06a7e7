//! PDVs → messages. A command may be split over several PDVs and PDUs, its data set may arrive
//! in the same PDU as the command or in later ones, and a P-DATA PDU may carry no PDV at all.
//! Data sets are handed PDV by PDV to a sink chosen per command once the command is complete,
//! so a C-STORE of a 27 MB mammogram goes to disk as it arrives instead of being held in memory.
//!
//! Pure: the caller reads the PDUs and passes their PDVs in, so every rule below is unit-tested
//! without a socket.

use dicom_ul::pdu::{PDataValue, PDataValueType};
use thiserror::Error;

use super::{Context, DataSink, Message, MAX_COMMAND_SET, MAX_IN_MEMORY_DATA_SET};
use crate::dimse::command::{Command, CommandError};

/// Why the PDVs a peer sent cannot be a message; each ends the association.
#[derive(Debug, Error, PartialEq, Eq)]
pub enum AssemblyError {
    #[error("bad command set: {0}")]
    Command(#[from] CommandError),
    #[error("protocol violation: command set over 64 KiB")]
    CommandTooLarge,
    #[error("data set larger than {MAX_IN_MEMORY_DATA_SET} bytes for {0}")]
    DataSetTooLarge(&'static str),
    #[error("protocol violation: PDV on unaccepted presentation context {0}")]
    UnacceptedContext(u8),
    #[error("protocol violation: command fragments on two presentation contexts")]
    CommandOnTwoContexts,
    #[error("protocol violation: data set on another presentation context than its command")]
    DataOnAnotherContext,
    #[error("protocol violation: data PDV before its command")]
    DataBeforeCommand,
    #[error("protocol violation: command PDV while a data set was expected")]
    CommandDuringData,
    #[error("protocol violation: PDVs after a command with no data set")]
    AfterCommand,
    #[error("protocol violation: PDVs after the last data fragment")]
    AfterData,
}

/// Where the message being assembled stands.
// One lives per message being read, so the size of the data variant costs nothing.
#[allow(clippy::large_enum_variant)]
enum State<F> {
    /// Collecting command fragments, all on one presentation context.
    Command {
        bytes: Vec<u8>,
        context_id: Option<u8>,
    },
    /// The command is complete and announced a data set, which goes to `sink`.
    Data {
        context: Context,
        command: Command,
        sink: DataSink<F>,
    },
}

impl<F> State<F> {
    fn start() -> State<F> {
        State::Command {
            bytes: Vec::new(),
            context_id: None,
        }
    }
}

/// Assembles one message after another from the PDVs of successive P-DATA PDUs. After an
/// error the association is to be aborted; the assembler is not meant to be fed again.
pub struct Assembler<F> {
    state: State<F>,
}

impl<F: std::io::Write> Default for Assembler<F> {
    fn default() -> Self {
        Assembler::new()
    }
}

impl<F: std::io::Write> Assembler<F> {
    pub fn new() -> Assembler<F> {
        Assembler {
            state: State::start(),
        }
    }

    /// Takes the PDVs of one P-DATA PDU. Returns the message that PDU completes, if any. A
    /// message ends at the end of a PDU: PDVs after its last fragment are refused rather than
    /// silently dropped. `contexts` are the accepted presentation contexts; `choose_sink` is
    /// asked, once a command is complete, where its data set should go.
    pub fn feed<C>(
        &mut self,
        pdvs: Vec<PDataValue>,
        contexts: &[Context],
        choose_sink: &mut C,
    ) -> Result<Option<Message<F>>, AssemblyError>
    where
        C: FnMut(&Context, &Command) -> DataSink<F>,
    {
        let count = pdvs.len();
        for (index, pdv) in pdvs.into_iter().enumerate() {
            if let Some(message) = self.push(pdv, contexts, choose_sink)? {
                if index + 1 != count {
                    return Err(match message.data {
                        None => AssemblyError::AfterCommand,
                        Some(_) => AssemblyError::AfterData,
                    });
                }
                return Ok(Some(message));
            }
        }
        Ok(None)
    }

    /// Takes one PDV; returns the message it completes, if any.
    fn push<C>(
        &mut self,
        pdv: PDataValue,
        contexts: &[Context],
        choose_sink: &mut C,
    ) -> Result<Option<Message<F>>, AssemblyError>
    where
        C: FnMut(&Context, &Command) -> DataSink<F>,
    {
        let PDataValue {
            presentation_context_id: pc,
            value_type,
            is_last,
            data,
        } = pdv;
        match (
            std::mem::replace(&mut self.state, State::start()),
            value_type,
        ) {
            (
                State::Command {
                    mut bytes,
                    context_id,
                },
                PDataValueType::Command,
            ) => {
                if context_id.is_some_and(|id| id != pc) {
                    return Err(AssemblyError::CommandOnTwoContexts);
                }
                if bytes.len() + data.len() > MAX_COMMAND_SET {
                    return Err(AssemblyError::CommandTooLarge);
                }
                bytes.extend_from_slice(&data);
                if !is_last {
                    self.state = State::Command {
                        bytes,
                        context_id: Some(pc),
                    };
                    return Ok(None);
                }
                let context = contexts
                    .iter()
                    .find(|c| c.id == pc)
                    .cloned()
                    .ok_or(AssemblyError::UnacceptedContext(pc))?;
                let command = Command::decode(&bytes)?;
                if !command.has_data_set {
                    return Ok(Some(Message {
                        context,
                        command,
                        data: None,
                    }));
                }
                let sink = choose_sink(&context, &command);
                self.state = State::Data {
                    context,
                    command,
                    sink,
                };
                Ok(None)
            }
            (
                State::Data {
                    context,
                    command,
                    mut sink,
                },
                PDataValueType::Data,
            ) => {
                if context.id != pc {
                    return Err(AssemblyError::DataOnAnotherContext);
                }
                sink.push(&data, command.name())?;
                if is_last {
                    return Ok(Some(Message {
                        context,
                        command,
                        data: Some(sink),
                    }));
                }
                self.state = State::Data {
                    context,
                    command,
                    sink,
                };
                Ok(None)
            }
            (State::Command { .. }, PDataValueType::Data) => Err(AssemblyError::DataBeforeCommand),
            (State::Data { .. }, PDataValueType::Command) => Err(AssemblyError::CommandDuringData),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dimse::command::field;
    use PDataValueType::{Command as C, Data as D};

    const ECHO: u8 = 1;
    const FIND: u8 = 3;
    /// Proposed by nobody, accepted by nobody.
    const UNKNOWN: u8 = 9;

    fn contexts() -> Vec<Context> {
        [
            (ECHO, "1.2.840.10008.1.1"),
            (FIND, "1.2.840.10008.5.1.4.31"),
        ]
        .into_iter()
        .map(|(id, syntax)| Context {
            id,
            abstract_syntax: syntax.into(),
            transfer_syntax: "1.2.840.10008.1.2".into(),
        })
        .collect()
    }

    fn echo_rq() -> Vec<u8> {
        Command {
            command_field: field::C_ECHO_RQ,
            message_id: Some(1),
            ..Command::default()
        }
        .encode()
    }

    fn find_rq() -> Vec<u8> {
        Command {
            command_field: field::C_FIND_RQ,
            message_id: Some(2),
            has_data_set: true,
            ..Command::default()
        }
        .encode()
    }

    /// An echo command padded to `len` bytes with an element the decoder skips.
    fn echo_rq_of_len(len: usize) -> Vec<u8> {
        let mut bytes = echo_rq();
        let filler = len - bytes.len() - 8;
        bytes.extend_from_slice(&[0, 0, 0x55, 0x55]);
        bytes.extend_from_slice(&(filler as u32).to_le_bytes());
        bytes.resize(len, 0);
        bytes
    }

    fn pdv(pc: u8, value_type: PDataValueType, is_last: bool, data: &[u8]) -> PDataValue {
        PDataValue {
            presentation_context_id: pc,
            value_type,
            is_last,
            data: data.to_vec(),
        }
    }

    /// What feeding a run of PDUs to a fresh assembler gave.
    #[derive(Debug, PartialEq, Eq)]
    enum Outcome {
        /// PDU number `pdu` completed a message.
        Message {
            pdu: usize,
            field: u16,
            context: u8,
            data: Option<Vec<u8>>,
        },
        /// Every PDU was taken and no message is complete yet.
        Incomplete,
        /// PDU number `pdu` was refused.
        Refused { pdu: usize, error: AssemblyError },
    }

    fn message(pdu: usize, field: u16, context: u8, data: Option<&[u8]>) -> Outcome {
        Outcome::Message {
            pdu,
            field,
            context,
            data: data.map(<[u8]>::to_vec),
        }
    }

    fn refused(pdu: usize, error: AssemblyError) -> Outcome {
        Outcome::Refused { pdu, error }
    }

    fn assemble(pdus: Vec<Vec<PDataValue>>) -> Outcome {
        let contexts = contexts();
        let mut assembler = Assembler::<std::io::Sink>::new();
        let mut memory = |_: &Context, _: &Command| DataSink::Memory(Vec::new());
        for (pdu, pdvs) in pdus.into_iter().enumerate() {
            match assembler.feed(pdvs, &contexts, &mut memory) {
                Ok(None) => {}
                Ok(Some(m)) => {
                    return Outcome::Message {
                        pdu,
                        field: m.command.command_field,
                        context: m.context.id,
                        data: m.memory_data().map(<[u8]>::to_vec),
                    }
                }
                Err(error) => return Outcome::Refused { pdu, error },
            }
        }
        Outcome::Incomplete
    }

    #[test]
    fn assembles_split_merged_and_empty_pdus_and_refuses_the_rest() {
        use AssemblyError::*;
        let echo = echo_rq();
        let find = find_rq();
        let (head, tail) = echo.split_at(10);
        let (a, rest) = echo.split_at(3);
        let (b, c) = rest.split_at(20);
        // Implicit VR LE PatientName (0010,0010), empty; and a longer identifier.
        let id: &[u8] = &[0x10, 0, 0x10, 0, 0, 0, 0, 0];
        let long: Vec<u8> = (0..=255).collect();
        let bytes: Vec<PDataValue> = echo
            .iter()
            .enumerate()
            .map(|(i, byte)| pdv(ECHO, C, i + 1 == echo.len(), &[*byte]))
            .collect();

        #[rustfmt::skip]
        let cases: Vec<(&str, Vec<Vec<PDataValue>>, Outcome)> = vec![
            ("command in one PDV",
                vec![vec![pdv(ECHO, C, true, &echo)]],
                message(0, field::C_ECHO_RQ, ECHO, None)),
            ("command split over two PDVs of one PDU",
                vec![vec![pdv(ECHO, C, false, head), pdv(ECHO, C, true, tail)]],
                message(0, field::C_ECHO_RQ, ECHO, None)),
            ("command split over two PDUs",
                vec![vec![pdv(ECHO, C, false, head)], vec![pdv(ECHO, C, true, tail)]],
                message(1, field::C_ECHO_RQ, ECHO, None)),
            ("command split over three PDUs",
                vec![vec![pdv(ECHO, C, false, a)], vec![pdv(ECHO, C, false, b)],
                     vec![pdv(ECHO, C, true, c)]],
                message(2, field::C_ECHO_RQ, ECHO, None)),
            ("command one byte per PDV",
                vec![bytes],
                message(0, field::C_ECHO_RQ, ECHO, None)),
            ("empty fragments around the command",
                vec![vec![pdv(ECHO, C, false, &[]), pdv(ECHO, C, false, &echo),
                          pdv(ECHO, C, true, &[])]],
                message(0, field::C_ECHO_RQ, ECHO, None)),
            ("empty P-DATA before the command",
                vec![vec![], vec![pdv(ECHO, C, true, &echo)]],
                message(1, field::C_ECHO_RQ, ECHO, None)),
            ("empty P-DATA between command fragments",
                vec![vec![pdv(ECHO, C, false, head)], vec![], vec![pdv(ECHO, C, true, tail)]],
                message(2, field::C_ECHO_RQ, ECHO, None)),
            ("only empty P-DATA",
                vec![vec![], vec![]],
                Outcome::Incomplete),
            ("command without its last fragment",
                vec![vec![pdv(ECHO, C, false, &echo)]],
                Outcome::Incomplete),
            ("command and data in one PDU",
                vec![vec![pdv(FIND, C, true, &find), pdv(FIND, D, true, id)]],
                message(0, field::C_FIND_RQ, FIND, Some(id))),
            ("command and data in two PDUs",
                vec![vec![pdv(FIND, C, true, &find)], vec![pdv(FIND, D, true, id)]],
                message(1, field::C_FIND_RQ, FIND, Some(id))),
            ("data over many PDUs",
                vec![vec![pdv(FIND, C, true, &find)], vec![pdv(FIND, D, false, &long[..100])],
                     vec![pdv(FIND, D, false, &long[100..101])], vec![],
                     vec![pdv(FIND, D, true, &long[101..])]],
                message(4, field::C_FIND_RQ, FIND, Some(&long))),
            ("data over many PDVs of one PDU",
                vec![vec![pdv(FIND, C, true, &find), pdv(FIND, D, false, &long[..7]),
                          pdv(FIND, D, false, &long[7..200]), pdv(FIND, D, true, &long[200..])]],
                message(0, field::C_FIND_RQ, FIND, Some(&long))),
            ("an empty data set",
                vec![vec![pdv(FIND, C, true, &find), pdv(FIND, D, true, &[])]],
                message(0, field::C_FIND_RQ, FIND, Some(&[]))),
            ("data without its last fragment",
                vec![vec![pdv(FIND, C, true, &find)], vec![pdv(FIND, D, false, id)]],
                Outcome::Incomplete),
            ("command announcing data, no data yet",
                vec![vec![pdv(FIND, C, true, &find)]],
                Outcome::Incomplete),
            ("data before any command",
                vec![vec![pdv(ECHO, D, true, &[1, 2, 3, 4])]],
                refused(0, DataBeforeCommand)),
            ("data between command fragments",
                vec![vec![pdv(FIND, C, false, &find[..10])], vec![pdv(FIND, D, true, id)]],
                refused(1, DataBeforeCommand)),
            ("a second command while the data set is expected",
                vec![vec![pdv(FIND, C, true, &find)], vec![pdv(FIND, C, true, &find)]],
                refused(1, CommandDuringData)),
            ("a command between data fragments",
                vec![vec![pdv(FIND, C, true, &find), pdv(FIND, D, false, id)],
                     vec![pdv(ECHO, C, true, &echo)]],
                refused(1, CommandDuringData)),
            ("command fragments on two contexts",
                vec![vec![pdv(ECHO, C, false, head), pdv(FIND, C, true, tail)]],
                refused(0, CommandOnTwoContexts)),
            ("command fragments on two contexts in two PDUs",
                vec![vec![pdv(ECHO, C, false, head)], vec![pdv(FIND, C, true, tail)]],
                refused(1, CommandOnTwoContexts)),
            ("data on another context than its command",
                vec![vec![pdv(FIND, C, true, &find), pdv(ECHO, D, true, id)]],
                refused(0, DataOnAnotherContext)),
            ("data fragments moving to another context",
                vec![vec![pdv(FIND, C, true, &find)], vec![pdv(FIND, D, false, id)],
                     vec![pdv(ECHO, D, true, id)]],
                refused(2, DataOnAnotherContext)),
            ("command on a context never accepted",
                vec![vec![pdv(UNKNOWN, C, true, &echo)]],
                refused(0, UnacceptedContext(UNKNOWN))),
            ("a PDV after a command with no data set",
                vec![vec![pdv(ECHO, C, true, &echo), pdv(ECHO, C, true, &echo)]],
                refused(0, AfterCommand)),
            ("an empty PDV after a command with no data set",
                vec![vec![pdv(ECHO, C, true, &echo), pdv(ECHO, D, true, &[])]],
                refused(0, AfterCommand)),
            ("a PDV after the last data fragment",
                vec![vec![pdv(FIND, C, true, &find), pdv(FIND, D, true, id),
                          pdv(ECHO, C, true, &echo)]],
                refused(0, AfterData)),
            ("a PDV after the last data fragment of a later PDU",
                vec![vec![pdv(FIND, C, true, &find)],
                     vec![pdv(FIND, D, true, id), pdv(FIND, D, true, id)]],
                refused(1, AfterData)),
            ("a command set of exactly 64 KiB",
                vec![vec![pdv(ECHO, C, true, &echo_rq_of_len(MAX_COMMAND_SET))]],
                message(0, field::C_ECHO_RQ, ECHO, None)),
            ("a command set over 64 KiB in one PDV",
                vec![vec![pdv(ECHO, C, true, &echo_rq_of_len(MAX_COMMAND_SET + 2))]],
                refused(0, CommandTooLarge)),
            ("a command set over 64 KiB in many PDUs",
                (0..=16).map(|_| vec![pdv(ECHO, C, false, &[0; 4096])]).collect(),
                refused(16, CommandTooLarge)),
            ("a command element outside group 0000",
                vec![vec![pdv(ECHO, C, true, &[8, 0, 0x18, 0, 0, 0, 0, 0])]],
                refused(0, Command(CommandError::NotCommandGroup(8, 0x18)))),
            ("a command length running past the end",
                vec![vec![pdv(ECHO, C, true, &[0, 0, 0, 1, 0xFF, 0, 0, 0])]],
                refused(0, Command(CommandError::Truncated(0)))),
            ("a command set without a command field",
                vec![vec![pdv(ECHO, C, true, &[])]],
                refused(0, Command(CommandError::NoCommandField))),
        ];
        for (name, pdus, expected) in cases {
            assert_eq!(assemble(pdus), expected, "{name}");
        }
    }

    #[test]
    fn in_memory_data_sets_are_bounded() {
        let find = find_rq();
        let full = vec![0u8; MAX_IN_MEMORY_DATA_SET];
        let at_limit = vec![
            vec![pdv(FIND, C, true, &find)],
            vec![pdv(FIND, D, false, &full[..1000])],
            vec![pdv(FIND, D, true, &full[1000..])],
        ];
        assert_eq!(
            assemble(at_limit),
            message(2, field::C_FIND_RQ, FIND, Some(&full))
        );
        let over = vec![
            vec![pdv(FIND, C, true, &find)],
            vec![pdv(FIND, D, false, &full)],
            vec![pdv(FIND, D, true, &[0])],
        ];
        assert_eq!(
            assemble(over),
            refused(2, AssemblyError::DataSetTooLarge("C-FIND-RQ"))
        );
    }

    /// A writer that takes `room` bytes, then fails as a full disk does.
    struct Disk {
        written: Vec<u8>,
        room: usize,
    }

    impl std::io::Write for Disk {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            if self.written.len() + buf.len() > self.room {
                return Err(std::io::Error::other("disk full"));
            }
            self.written.extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    /// A sink for the find command: a disk with `room` bytes.
    fn disk(room: usize) -> impl FnMut(&Context, &Command) -> DataSink<Disk> {
        move |context, command| {
            // Asked once the command is whole, before any of its data.
            assert_eq!((context.id, command.message_id), (FIND, Some(2)));
            DataSink::Stream(Disk {
                written: Vec::new(),
                room,
            })
        }
    }

    #[test]
    fn streams_data_to_the_sink_chosen_for_the_complete_command() {
        let contexts = contexts();
        let find = find_rq();
        for room in [1000, 3] {
            let mut assembler = Assembler::new();
            let mut sink = disk(room);
            let pdus = [
                vec![pdv(FIND, C, false, &find[..5])],
                vec![pdv(FIND, C, true, &find[5..]), pdv(FIND, D, false, &[1, 2])],
                vec![pdv(FIND, D, true, &[3, 4])],
            ];
            let mut done = None;
            for pdvs in pdus {
                assert!(done.is_none(), "a message completed early");
                done = assembler.feed(pdvs, &contexts, &mut sink).unwrap();
            }
            match done.and_then(|m| m.data) {
                Some(DataSink::Stream(disk)) if room == 1000 => {
                    assert_eq!(disk.written, [1, 2, 3, 4])
                }
                // The rest is drained; the error is kept for the reply.
                Some(DataSink::Failed(e)) if room == 3 => assert_eq!(e.to_string(), "disk full"),
                _ => panic!("unexpected sink with room {room}"),
            }
        }
    }

    #[test]
    fn assembles_one_message_after_another() {
        let contexts = contexts();
        let mut assembler = Assembler::<std::io::Sink>::new();
        let mut memory = |_: &Context, _: &Command| DataSink::Memory(Vec::new());
        let (echo, find) = (echo_rq(), find_rq());
        let mut fields = Vec::new();
        for pdvs in [
            vec![pdv(ECHO, C, true, &echo)],
            vec![pdv(FIND, C, true, &find)],
            vec![pdv(FIND, D, true, &[1, 2])],
            vec![pdv(ECHO, C, false, &echo[..4])],
            vec![pdv(ECHO, C, true, &echo[4..])],
        ] {
            if let Some(m) = assembler.feed(pdvs, &contexts, &mut memory).unwrap() {
                fields.push((m.command.command_field, m.memory_data().map(<[u8]>::to_vec)));
            }
        }
        assert_eq!(
            fields,
            [
                (field::C_ECHO_RQ, None),
                (field::C_FIND_RQ, Some(vec![1, 2])),
                (field::C_ECHO_RQ, None),
            ]
        );
    }
}
