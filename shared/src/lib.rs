//! Code both deployables link: the wire contract ([`wire`]) and the Azure Relay Hybrid
//! Connections client ([`relay`]). Nothing here knows about DICOM or databases.

pub mod relay;
pub mod wire;
