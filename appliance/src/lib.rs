//! The gateway appliance as a library, so integration tests can run the real services.
//!
//! Modules, one per concept: [`config`] (environment), [`dimse`] (the DIMSE protocol layer over
//! dicom-ul), [`services`] (C-ECHO, worklist C-FIND, MPPS, C-STORE), [`worklist`] and [`mpps`]
//! (domain state), [`storage`] (files and index), [`db`] (redb), [`server`] (listeners),
//! [`cloud`] (the relay link), [`systemd`] and [`logging`] (running as a service), [`doctor`]
//! (installation checks).

pub mod actions;
pub mod cloud;
pub mod config;
pub mod db;
pub mod dimse;
pub mod doctor;
pub mod envfile;
pub mod events;
pub mod health;
pub mod logging;
pub mod modality;
pub mod mpps;
pub mod outbox;
pub mod server;
pub mod services;
pub mod status;
pub mod storage;
pub mod systemd;
pub mod thumbnail;
pub mod worklist;
