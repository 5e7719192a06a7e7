//! Bad input on the wire: garbage, truncated and oversized PDUs, PDUs with no PDV, split and
//! merged PDVs, undecodable command sets and identifiers, idle associations. After each, the
//! server must still answer a real `echoscu`.

mod common;

use std::time::Duration;

use appliance::dimse::command::{field, Command};
use common::*;
use dicom_dictionary_std::uids;
use dicom_ul::association::client::AsyncClientAssociation;
use dicom_ul::pdu::{PDataValue, PDataValueType, Pdu};
use dicom_ul::ClientAssociationOptions;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

async fn client(port: &str) -> AsyncClientAssociation<TcpStream> {
    let a = ClientAssociationOptions::new()
        .calling_ae_title("ROBUST")
        .called_ae_title(MWL_AET)
        .with_presentation_context(uids::VERIFICATION, vec![uids::IMPLICIT_VR_LITTLE_ENDIAN])
        .with_presentation_context(
            uids::MODALITY_WORKLIST_INFORMATION_MODEL_FIND,
            vec![uids::IMPLICIT_VR_LITTLE_ENDIAN],
        )
        .establish_async(format!("127.0.0.1:{port}"))
        .await
        .expect("association");
    a
}

fn context_id(a: &AsyncClientAssociation<TcpStream>, abstract_syntax: &str) -> u8 {
    a.presentation_contexts()
        .iter()
        .find(|pc| pc.abstract_syntax.trim_end_matches('\0') == abstract_syntax)
        .map(|pc| pc.id)
        .expect("context accepted")
}

fn pdv(id: u8, value_type: PDataValueType, is_last: bool, data: &[u8]) -> PDataValue {
    PDataValue {
        presentation_context_id: id,
        value_type,
        is_last,
        data: data.to_vec(),
    }
}

fn echo_rq() -> Vec<u8> {
    Command {
        command_field: field::C_ECHO_RQ,
        message_id: Some(1),
        affected_sop_class_uid: Some(uids::VERIFICATION.into()),
        ..Default::default()
    }
    .encode()
}

/// Reads one DIMSE response (a command with no data set, or a command then data).
async fn response(a: &mut AsyncClientAssociation<TcpStream>) -> Command {
    let mut command = Vec::new();
    loop {
        match a.receive().await.expect("a response") {
            Pdu::PData { data } => {
                for v in data {
                    if v.value_type == PDataValueType::Command {
                        command.extend_from_slice(&v.data);
                        if v.is_last {
                            return Command::decode(&command).unwrap();
                        }
                    }
                }
            }
            other => panic!("expected P-DATA, got {other:?}"),
        }
    }
}

/// The server closed or aborted the connection: reads until EOF, accepting an A-ABORT.
async fn closed_by_server(mut socket: TcpStream) {
    let mut buf = vec![0u8; 65536];
    loop {
        match socket.read(&mut buf).await {
            Ok(0) | Err(_) => return,
            Ok(_) => continue,
        }
    }
}

#[test]
fn garbage_truncated_and_oversized_pdus_leave_the_server_answering() {
    let gw = TestGateway::start();
    let port = gw.mwl_port();
    let rt = runtime();
    rt.block_on(async {
        // Not DICOM at all.
        let mut s = TcpStream::connect(format!("127.0.0.1:{port}"))
            .await
            .unwrap();
        s.write_all(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
            .await
            .unwrap();
        closed_by_server(s).await;
        // An A-ASSOCIATE-RQ header announcing 1000 bytes, then only 10, then hang up.
        let mut s = TcpStream::connect(format!("127.0.0.1:{port}"))
            .await
            .unwrap();
        s.write_all(&[0x01, 0, 0, 0, 0x03, 0xE8]).await.unwrap();
        s.write_all(&[0u8; 10]).await.unwrap();
        drop(s);
        // An A-ASSOCIATE-RQ claiming 4 GiB.
        let mut s = TcpStream::connect(format!("127.0.0.1:{port}"))
            .await
            .unwrap();
        s.write_all(&[0x01, 0, 0xFF, 0xFF, 0xFF, 0xF0])
            .await
            .unwrap();
        closed_by_server(s).await;
        // Inside an association: a P-DATA PDU far above the negotiated maximum.
        let mut a = client(&port).await;
        a.inner_stream()
            .write_all(&[0x04, 0, 0x7F, 0xFF, 0xFF, 0xF0, 0, 0])
            .await
            .unwrap();
        let mut buf = [0u8; 16];
        let n = a.inner_stream().read(&mut buf).await.unwrap_or(0);
        assert!(
            n == 0 || buf[0] == 0x07,
            "expected A-ABORT or close, got {:?}",
            &buf[..n]
        );
        // Inside an association: a truncated P-DATA, then hang up mid-PDU.
        let mut a = client(&port).await;
        a.inner_stream()
            .write_all(&[0x04, 0, 0, 0, 0x01, 0x00, 0, 0, 0])
            .await
            .unwrap();
        drop(a);
    });
    assert!(echo(&port, MWL_AET, "MODALITY1"));
}

#[test]
fn empty_split_and_merged_pdvs_are_assembled() {
    let gw = TestGateway::start();
    let port = gw.mwl_port();
    runtime().block_on(async {
        let mut a = client(&port).await;
        let echo_pc = context_id(&a, uids::VERIFICATION);
        // A P-DATA PDU with no PDV at all is ignored.
        a.send(&Pdu::PData { data: vec![] }).await.unwrap();
        // A command split over two PDUs.
        let cmd = echo_rq();
        let (head, tail) = cmd.split_at(10);
        a.send(&Pdu::PData {
            data: vec![pdv(echo_pc, PDataValueType::Command, false, head)],
        })
        .await
        .unwrap();
        a.send(&Pdu::PData {
            data: vec![pdv(echo_pc, PDataValueType::Command, true, tail)],
        })
        .await
        .unwrap();
        let rsp = response(&mut a).await;
        assert_eq!(rsp.command_field, field::C_ECHO_RSP);
        assert_eq!(rsp.status, Some(0));
        assert_eq!(rsp.message_id_being_responded_to, Some(1));

        // A C-FIND whose command and identifier share one PDU (as Harmony sends them).
        let find_pc = context_id(&a, uids::MODALITY_WORKLIST_INFORMATION_MODEL_FIND);
        let find = Command {
            command_field: field::C_FIND_RQ,
            message_id: Some(2),
            affected_sop_class_uid: Some(uids::MODALITY_WORKLIST_INFORMATION_MODEL_FIND.into()),
            priority: Some(0),
            has_data_set: true,
            ..Default::default()
        }
        .encode();
        // Implicit VR LE identifier: PatientName (0010,0010), empty.
        let identifier = [0x10, 0x00, 0x10, 0x00, 0, 0, 0, 0];
        a.send(&Pdu::PData {
            data: vec![
                pdv(find_pc, PDataValueType::Command, true, &find),
                pdv(find_pc, PDataValueType::Data, true, &identifier),
            ],
        })
        .await
        .unwrap();
        let rsp = response(&mut a).await;
        assert_eq!(rsp.command_field, field::C_FIND_RSP);
        assert_eq!(rsp.status, Some(0), "no items: success straight away");

        // An identifier that does not parse: a failure status, and the association goes on.
        let garbage = [0x10, 0x00, 0x10, 0x00, 0xFF, 0xFF, 0xFF, 0x7F, 1, 2];
        a.send(&Pdu::PData {
            data: vec![
                pdv(find_pc, PDataValueType::Command, true, &find),
                pdv(find_pc, PDataValueType::Data, true, &garbage),
            ],
        })
        .await
        .unwrap();
        let rsp = response(&mut a).await;
        assert_eq!(rsp.status, Some(0xA900));

        // An operation this AE does not offer: "unrecognized operation", association intact.
        let store = Command {
            command_field: field::N_CREATE_RQ,
            message_id: Some(3),
            affected_sop_class_uid: Some(uids::VERIFICATION.into()),
            ..Default::default()
        }
        .encode();
        a.send(&Pdu::PData {
            data: vec![pdv(echo_pc, PDataValueType::Command, true, &store)],
        })
        .await
        .unwrap();
        let rsp = response(&mut a).await;
        assert_ne!(rsp.status, Some(0));
        a.release().await.unwrap();
    });
    assert!(echo(&port, MWL_AET, "MODALITY1"));
}

#[test]
fn undecodable_command_sets_and_data_before_command_abort_the_association_only() {
    let gw = TestGateway::start();
    let port = gw.mwl_port();
    runtime().block_on(async {
        for bad in [
            // A command set element outside group 0000.
            vec![pdv(
                1,
                PDataValueType::Command,
                true,
                &[8, 0, 0x18, 0, 0, 0, 0, 0],
            )],
            // A length running past the end.
            vec![pdv(
                1,
                PDataValueType::Command,
                true,
                &[0, 0, 0, 1, 0xFF, 0, 0, 0],
            )],
            // Data before any command.
            vec![pdv(1, PDataValueType::Data, true, &[1, 2, 3, 4])],
            // A presentation context that was never negotiated.
            vec![pdv(201, PDataValueType::Command, true, &echo_rq())],
        ] {
            let mut a = client(&port).await;
            a.send(&Pdu::PData { data: bad }).await.unwrap();
            match a.receive().await {
                Ok(Pdu::AbortRQ { .. }) | Err(_) => {}
                Ok(other) => panic!("expected an abort, got {other:?}"),
            }
        }
    });
    assert!(echo(&port, MWL_AET, "MODALITY1"));
}

#[test]
fn idle_associations_are_closed() {
    let gw = TestGateway::start_with(|c| c.idle_timeout = Duration::from_secs(1));
    let port = gw.mwl_port();
    runtime().block_on(async {
        let mut a = client(&port).await;
        // Say nothing: the server must end the association by itself.
        match a.receive().await {
            Ok(Pdu::AbortRQ { .. }) | Err(_) => {}
            Ok(other) => panic!("expected an abort, got {other:?}"),
        }
    });
    assert!(echo(&port, MWL_AET, "MODALITY1"));
}
