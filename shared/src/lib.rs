//! Code both deployables link: the wire contract ([`wire`]), the Azure Relay Hybrid Connections
//! client ([`relay`]) and the retry schedule of both outboxes ([`backoff`]). Nothing here knows
//! about DICOM or databases.

pub mod backoff;
#[cfg(any(test, feature = "test-support"))]
pub mod loopback;
pub mod relay;
pub mod wire;
