//! Hostile data sets against the running `gateway serve`, sent as raw PDUs: after each the
//! process lives, C-ECHO answers, peak RSS stays bounded, and a good image still produces its
//! image event.

mod common;

use appliance::dimse::{field, Command};
use common::hostile::{HostileGateway, Proposed, RawPeer};
use common::MWL_AET;
use dicom_dictionary_std::uids;

#[test]
fn the_harness_speaks_raw_pdus_to_the_running_gateway() {
    let mut gw = HostileGateway::start();
    let mut peer = RawPeer::associate(
        gw.mwl_port,
        MWL_AET,
        &[Proposed {
            id: 1,
            abstract_syntax: uids::VERIFICATION,
            transfer_syntaxes: &[uids::IMPLICIT_VR_LITTLE_ENDIAN],
        }],
    );
    assert_eq!(peer.accepted.len(), 1);
    let echo = Command {
        command_field: field::C_ECHO_RQ,
        message_id: Some(7),
        affected_sop_class_uid: Some(uids::VERIFICATION.into()),
        ..Default::default()
    };
    peer.send_message(1, &echo, None);
    let rsp = peer.response();
    assert_eq!(rsp.command_field, field::C_ECHO_RSP);
    assert_eq!(rsp.status, Some(0));
    peer.release();
    gw.assert_unharmed("a plain C-ECHO");
}
