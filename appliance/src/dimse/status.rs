//! DIMSE status codes the gateway sends (PS3.7 annex C, PS3.4 annexes B, C, F).

pub const SUCCESS: u16 = 0x0000;
pub const PENDING: u16 = 0xFF00;
pub const CANCEL: u16 = 0xFE00;
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
/// Unrecognized operation.
pub const UNRECOGNIZED_OPERATION: u16 = 0x0211;
/// C-STORE / C-FIND: Refused, out of resources.
pub const OUT_OF_RESOURCES: u16 = 0xA700;
/// C-STORE: Data set does not match SOP class; C-FIND: identifier does not match SOP class.
pub const DATA_SET_DOES_NOT_MATCH: u16 = 0xA900;
/// C-STORE / C-FIND: Error, cannot understand / unable to process.
pub const CANNOT_UNDERSTAND: u16 = 0xC000;
