//! Messages → PDVs: the sending half of [`super::Assembler`].

use dicom_ul::pdu::{PDataValue, PDataValueType, Pdu};

use crate::dimse::command::Command;

/// The P-DATA PDUs that carry one message to a peer whose maximum PDU length is `peer_max` (0 =
/// unlimited): the command and a small data set share one PDU, anything larger is split. Both
/// the server side and the modality emulator's client side send through this.
pub fn message_pdus(
    context_id: u8,
    command: &Command,
    data: Option<&[u8]>,
    peer_max: u32,
) -> Vec<Pdu> {
    let peer_max = match peer_max {
        0 => u32::MAX as usize,
        n => n as usize,
    };
    // Each PDV item costs 6 bytes (length, context id, control header) inside the PDU.
    let fragment = peer_max.saturating_sub(6).max(64);
    let command_bytes = command.encode();
    let pdv = |value_type, is_last, data: &[u8]| PDataValue {
        presentation_context_id: context_id,
        value_type,
        is_last,
        data: data.to_vec(),
    };
    let mut pdus = Vec::new();
    match data {
        Some(d) if command_bytes.len() + d.len() + 12 <= peer_max => {
            pdus.push(Pdu::PData {
                data: vec![
                    pdv(PDataValueType::Command, true, &command_bytes),
                    pdv(PDataValueType::Data, true, d),
                ],
            });
        }
        _ => {
            for (i, chunk) in command_bytes.chunks(fragment).enumerate() {
                let last = (i + 1) * fragment >= command_bytes.len();
                pdus.push(Pdu::PData {
                    data: vec![pdv(PDataValueType::Command, last, chunk)],
                });
            }
            if let Some(d) = data {
                let chunks = d.len().div_ceil(fragment).max(1);
                for i in 0..chunks {
                    let chunk = &d[i * fragment..((i + 1) * fragment).min(d.len())];
                    pdus.push(Pdu::PData {
                        data: vec![pdv(PDataValueType::Data, i + 1 == chunks, chunk)],
                    });
                }
            }
        }
    }
    pdus
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dimse::command::field;
    use crate::dimse::message::{Assembler, Context, DataSink};

    /// What `message_pdus` wrote, read back by the assembler.
    fn round_trip(command: &Command, data: Option<&[u8]>, peer_max: u32) -> (usize, Vec<u8>) {
        let contexts = [Context {
            id: 5,
            abstract_syntax: "1.2.840.10008.5.1.4.31".into(),
            transfer_syntax: "1.2.840.10008.1.2".into(),
        }];
        let pdus = message_pdus(5, command, data, peer_max);
        let count = pdus.len();
        let mut assembler = Assembler::<std::io::Sink>::new();
        let mut memory = |_: &Context, _: &Command| DataSink::Memory(Vec::new());
        for (i, pdu) in pdus.into_iter().enumerate() {
            let Pdu::PData { data: pdvs } = pdu else {
                panic!("not P-DATA")
            };
            // Each PDU fits the peer's maximum, counting 6 bytes of header per PDV.
            let length: usize = pdvs.iter().map(|v| v.data.len() + 6).sum();
            if peer_max >= 70 {
                assert!(length <= peer_max as usize, "PDU of {length} bytes");
            }
            match assembler.feed(pdvs, &contexts, &mut memory).unwrap() {
                None => assert!(i + 1 < count, "the last PDU completes no message"),
                Some(m) => {
                    assert_eq!(i + 1, count, "a message completed before the last PDU");
                    assert_eq!(&m.command, command);
                    return (count, m.memory_data().unwrap_or_default().to_vec());
                }
            }
        }
        unreachable!("no PDUs")
    }

    #[test]
    fn splits_what_the_peer_cannot_take_and_the_assembler_reads_it_back() {
        let with_data = Command {
            command_field: field::C_FIND_RSP,
            message_id_being_responded_to: Some(3),
            status: Some(crate::dimse::status::PENDING),
            has_data_set: true,
            ..Command::default()
        };
        let without = Command {
            has_data_set: false,
            ..with_data.clone()
        };
        let command_len = with_data.encode().len();
        let payload: Vec<u8> = (0..100_000u32).map(|i| i as u8).collect();
        // (peer maximum PDU length, data set length or none, PDUs expected)
        #[rustfmt::skip]
        let cases: [(u32, Option<usize>, usize); 12] = [
            (0, None, 1),
            (0, Some(100_000), 1),
            (16_384, None, 1),
            (16_384, Some(0), 1),
            (16_384, Some(16_384 - 12 - command_len), 1),
            // One byte more and command and data go separately, the data in one PDU.
            (16_384, Some(16_384 - 11 - command_len), 2),
            (16_384, Some(16_378), 2),
            (16_384, Some(16_379), 3),
            (16_384, Some(100_000), 1 + 100_000usize.div_ceil(16_378)),
            // The smallest fragment is 64 bytes, whatever the peer says.
            (1, Some(640), command_len.div_ceil(64) + 10),
            (70, None, command_len.div_ceil(64)),
            (70, Some(65), command_len.div_ceil(64) + 2),
        ];
        for (peer_max, data_len, expected_pdus) in cases {
            let data = data_len.map(|n| &payload[..n]);
            let command = if data.is_some() { &with_data } else { &without };
            let (pdus, received) = round_trip(command, data, peer_max);
            let case = format!("peer max {peer_max}, data {data_len:?}");
            assert_eq!(pdus, expected_pdus, "{case}");
            assert_eq!(received, data.unwrap_or_default(), "{case}");
        }
    }
}
