//! DIMSE status codes (PS3.7 annex C, PS3.4 annexes B, C, F): the ones the gateway sends, and
//! the classes the modality emulator reads in responses.

pub const SUCCESS: u16 = 0x0000;
pub const PENDING: u16 = 0xFF00;
/// C-FIND: Pending, but one or more optional keys were not supported.
pub const PENDING_WARNING: u16 = 0xFF01;
pub const CANCEL: u16 = 0xFE00;
/// N-service warning: requested optional attributes are not supported.
pub const OPTIONAL_ATTRIBUTES_NOT_SUPPORTED: u16 = 0x0001;
/// N-service: Invalid attribute value.
pub const INVALID_ATTRIBUTE_VALUE: u16 = 0x0106;
/// N-service: Processing failure (also "MPPS may no longer be updated").
pub const PROCESSING_FAILURE: u16 = 0x0110;
/// N-service: Duplicate SOP Instance.
pub const DUPLICATE_SOP_INSTANCE: u16 = 0x0111;
/// N-service: No such SOP Instance.
pub const NO_SUCH_SOP_INSTANCE: u16 = 0x0112;
/// N-service: Missing attribute.
pub const MISSING_ATTRIBUTE: u16 = 0x0120;
/// No such SOP class on this presentation context.
pub const SOP_CLASS_NOT_SUPPORTED: u16 = 0x0122;
/// Refused: not authorized (PS3.7 C.5: a Q/R request from an AE not in `QR_ALLOWED_AETS`).
pub const NOT_AUTHORIZED: u16 = 0x0124;
/// C-GET/C-MOVE: Refused, out of resources, unable to calculate the number of matches.
pub const UNABLE_TO_CALCULATE_MATCHES: u16 = 0xA701;
/// C-GET/C-MOVE: Refused, out of resources, unable to perform sub-operations.
pub const UNABLE_TO_PERFORM_SUB_OPERATIONS: u16 = 0xA702;
/// C-MOVE: Refused, Move Destination unknown.
pub const MOVE_DESTINATION_UNKNOWN: u16 = 0xA801;
/// C-GET/C-MOVE: Sub-operations complete, one or more failures or warnings.
pub const SUB_OPERATIONS_FAILED: u16 = 0xB000;
/// Unrecognized operation.
pub const UNRECOGNIZED_OPERATION: u16 = 0x0211;
/// C-STORE / C-FIND: Refused, out of resources.
pub const OUT_OF_RESOURCES: u16 = 0xA700;
/// C-STORE: Data set does not match SOP class; C-FIND: identifier does not match SOP class.
pub const DATA_SET_DOES_NOT_MATCH: u16 = 0xA900;
/// C-STORE / C-FIND: Error, cannot understand / unable to process.
pub const CANNOT_UNDERSTAND: u16 = 0xC000;

/// More responses follow this one (C-FIND).
pub fn is_pending(status: u16) -> bool {
    matches!(status, PENDING | PENDING_WARNING)
}

/// The request was done, with a warning: optional attributes left out (N-services) or a
/// C-STORE warning 0xBxxx (elements coerced or discarded, data set not matching its class).
pub fn is_warning(status: u16) -> bool {
    status == OPTIONAL_ATTRIBUTES_NOT_SUPPORTED || (status & 0xF000) == 0xB000
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classifies_response_statuses() {
        // (status, pending, warning)
        let cases = [
            (SUCCESS, false, false),
            (PENDING, true, false),
            (PENDING_WARNING, true, false),
            (CANCEL, false, false),
            (OPTIONAL_ATTRIBUTES_NOT_SUPPORTED, false, true),
            (0xB000, false, true),
            (0xB007, false, true),
            (0xBFFF, false, true),
            (OUT_OF_RESOURCES, false, false),
            (DATA_SET_DOES_NOT_MATCH, false, false),
            (CANNOT_UNDERSTAND, false, false),
            (PROCESSING_FAILURE, false, false),
        ];
        for (status, pending, warning) in cases {
            assert_eq!(is_pending(status), pending, "{status:#06x} pending");
            assert_eq!(is_warning(status), warning, "{status:#06x} warning");
        }
    }
}
