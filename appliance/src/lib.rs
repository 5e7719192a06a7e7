//! The gateway appliance as a library, so integration tests can run the real services.
//!
//! The folders are the architecture:
//! - the DICOM side: [`dimse`] (the DIMSE protocol layer over dicom-ul), [`services`] (C-ECHO,
//!   worklist C-FIND, MPPS, C-STORE), [`server`] (listeners, access control) and [`admission`]
//!   (allow-list at accept, ARTIM, association limits);
//! - the domain: [`worklist`] and [`mpps`] (state), [`storage`] (files and index),
//!   [`thumbnail`] (render, durable jobs, the worker pool), [`db`] (redb: every table);
//! - the cloud side: [`cloud`] (the relay link, actions in, the event outbox out), and
//!   [`fhir`] (the FHIR messages it sends delivered to the hospital's integration engine);
//! - running as a service: [`service`] (`gateway serve`'s wiring, systemd, logging, health, the
//!   control socket, `gateway doctor`) and [`config`] (environment settings);
//! - [`modality`]: the built-in modality emulator.

pub mod admission;
pub mod cloud;
pub mod config;
pub mod db;
pub mod dimse;
pub mod fhir;
pub mod forward;
pub mod modality;
pub mod mpps;
pub mod server;
pub mod service;
pub mod services;
pub mod storage;
pub mod thumbnail;
pub mod tls;
pub mod worklist;
