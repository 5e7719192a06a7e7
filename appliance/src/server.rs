//! The two listeners (worklist/MPPS and storage), association set-up with access control, and
//! shutdown. Who may connect and how many at once is [`crate::admission`]'s.

use std::collections::HashSet;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use dicom_dictionary_std::uids;
use dicom_ul::association::server::AccessControl;
use dicom_ul::pdu::{AssociationRJServiceUserReason, UserIdentity};
use dicom_ul::ServerAssociationOptions;
use thiserror::Error;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio::task::JoinSet;

use crate::admission::{self, Admission, Pending};
use crate::cloud::outbox::Doorbell;
use crate::config::Config;
use crate::db::{Database, DbError};
use crate::dimse::association::Link;
use crate::dimse::Association;
use crate::forward::{self, Forwarder};
use crate::mpps::SetPolicy;
use crate::service::systemd::Liveness;
use crate::services::{Role, Services};
use crate::storage::sop_classes::STORAGE_SOP_CLASSES;
use crate::storage::{retention, FileStore, Reindexing, Storage};
use crate::thumbnail;

/// Uncompressed transfer syntaxes, for the worklist and MPPS AE.
#[allow(deprecated)] // explicit VR big endian is retired, but modalities still propose it
const PLAIN_TRANSFER_SYNTAXES: [&str; 3] = [
    uids::EXPLICIT_VR_LITTLE_ENDIAN,
    uids::IMPLICIT_VR_LITTLE_ENDIAN,
    uids::EXPLICIT_VR_BIG_ENDIAN,
];

/// What the storage AE accepts: stored as sent, never transcoded, so no codec is needed here.
#[allow(deprecated)]
pub const STORAGE_TRANSFER_SYNTAXES: [&str; 17] = [
    uids::EXPLICIT_VR_LITTLE_ENDIAN,
    uids::IMPLICIT_VR_LITTLE_ENDIAN,
    uids::EXPLICIT_VR_BIG_ENDIAN,
    uids::DEFLATED_EXPLICIT_VR_LITTLE_ENDIAN,
    uids::JPEG_BASELINE8_BIT,
    uids::JPEG_EXTENDED12_BIT,
    uids::JPEG_LOSSLESS,
    uids::JPEG_LOSSLESS_SV1,
    uids::JPEGLS_LOSSLESS,
    uids::JPEGLS_NEAR_LOSSLESS,
    uids::JPEG2000_LOSSLESS,
    uids::JPEG2000,
    uids::JPEG2000MC_LOSSLESS,
    uids::JPEG2000MC,
    uids::HTJ2K_LOSSLESS,
    uids::HTJ2K,
    uids::RLE_LOSSLESS,
];

/// Why the server could not start.
#[derive(Debug, Error)]
pub enum ServerError {
    #[error("cannot create the state directory {0}: {1}")]
    StateDir(String, std::io::Error),
    #[error(transparent)]
    Db(#[from] DbError),
    #[error("cannot listen on {0}: {1}")]
    Bind(SocketAddr, std::io::Error),
    #[error(transparent)]
    Tls(#[from] crate::tls::TlsError),
    #[error(transparent)]
    Fhir(#[from] crate::fhir::sender::FhirError),
}

/// The gateway's DICOM side, opened but not yet listening.
pub struct Gateway {
    config: Config,
    services: Services,
    reindexing: Reindexing,
}

impl Gateway {
    /// Opens the state database and the store, and starts re-indexing files a crash left
    /// unindexed.
    pub fn open(config: Config) -> Result<Gateway, ServerError> {
        let dir = &config.state_dir;
        std::fs::create_dir_all(dir)
            .map_err(|e| ServerError::StateDir(dir.display().to_string(), e))?;
        let db = Arc::new(Database::open(&crate::db::path_in(dir))?);
        let files = FileStore::open(&dir.join("storage"))
            .map_err(|e| ServerError::StateDir(dir.join("storage").display().to_string(), e))?;
        let mut storage = Storage::new(db.clone(), files);
        storage.min_free_bytes = config.storage_min_free_mib.saturating_mul(1 << 20);
        let doorbell = Doorbell::default();
        let thumbnails = thumbnail::Pool::start(
            db.clone(),
            thumbnail::Places {
                storage: dir.join("storage"),
                thumbnails: dir.join("thumbnails"),
                source_system: config.name.clone(),
            },
            thumbnail::Renderer {
                program: config.thumbnail_renderer.clone(),
                limits: thumbnail::Limits {
                    memory_mib: config.thumbnail_memory_mib,
                    timeout: config.thumbnail_timeout,
                },
            },
            doorbell.clone(),
            config.thumbnail_workers,
        )?;
        // After a crash, in the background: a re-indexed file gets its worklist note, forwarding,
        // thumbnail and image event like any stored one (an index commit younger than
        // storage::DURABLE_INDEX_EVERY may have been lost with the crash; its file was not).
        let pool = thumbnails.clone();
        let forwarder = Forwarder::new(config.forward_to.clone());
        let queue_forwarding = forwarder.clone();
        let ring = forwarder.clone();
        let reindexing = storage.reindex_in_background(
            move |txn, record| {
                crate::services::store::on_stored(txn, record, queue_forwarding.destinations())
            },
            move |record| {
                ring.ring();
                pool.submit(thumbnail::Job::new(record))
            },
        );
        let name = config.name.as_str().into();
        let query_retrieve = Arc::new(config.query_retrieve.clone());
        let mpps_set_policy = if config.mpps_set_from_any_ae {
            SetPolicy::AnyAe
        } else {
            SetPolicy::CreatorOnly
        };
        Ok(Gateway {
            config,
            reindexing,
            services: Services {
                db,
                storage,
                doorbell,
                thumbnails,
                name,
                mpps_set_policy,
                forwarder,
                query_retrieve,
            },
        })
    }

    /// The thumbnail workers' state, for the health check.
    pub fn thumbnail_monitor(&self) -> thumbnail::Monitor {
        self.services.thumbnails.monitor()
    }

    pub fn database(&self) -> Arc<Database> {
        self.services.db.clone()
    }

    /// Binds both listeners and starts accepting.
    pub async fn start(self) -> Result<Running, ServerError> {
        let (shutdown, watcher) = watch::channel(false);
        let config = Arc::new(self.config);
        let mwl = bind(SocketAddr::new(config.bind, config.mwl_port)).await?;
        let pacs = bind(SocketAddr::new(config.bind, config.pacs_port)).await?;
        let mwl_addr = mwl
            .local_addr()
            .map_err(|e| ServerError::Bind(mwl_addr_of(&config), e))?;
        let pacs_addr = pacs
            .local_addr()
            .map_err(|e| ServerError::Bind(mwl_addr_of(&config), e))?;
        tracing::info!(%mwl_addr, ae = %config.mwl_aet, "worklist and MPPS SCP listening");
        tracing::info!(%pacs_addr, ae = %config.pacs_aet, "storage SCP listening");
        let forward_tls = match &config.forward_tls_ca_file {
            Some(file) => Some(crate::tls::client_config(file)?),
            None => None,
        };
        self.services.forwarder.start(
            forward::SenderSettings {
                tls: forward_tls,
                db: self.services.db.clone(),
                storage_root: config.state_dir.join("storage"),
                calling_ae: config.pacs_aet.clone(),
                source_system: self.services.name.clone(),
                commit_timeout: config.commit_timeout,
                doorbell: self.services.doorbell.clone(),
            },
            watcher.clone(),
        );
        if let Some(policy) = retention::Policy::for_config(&config) {
            tokio::spawn(sweep_periodically(
                self.services.db.clone(),
                config.state_dir.clone(),
                policy,
                watcher.clone(),
            ));
        }
        let mut listeners = vec![
            (mwl, Role::Worklist, "worklist listener", None),
            (pacs, Role::Storage, "storage listener", None),
        ];
        let (mut mwl_tls_addr, mut pacs_tls_addr) = (None, None);
        if let Some(settings) = &config.tls {
            let server_config = crate::tls::server_config(settings)?;
            for (port, role, name, ae, addr) in [
                (
                    settings.mwl_port,
                    Role::Worklist,
                    "worklist TLS listener",
                    &config.mwl_aet,
                    &mut mwl_tls_addr,
                ),
                (
                    settings.pacs_port,
                    Role::Storage,
                    "storage TLS listener",
                    &config.pacs_aet,
                    &mut pacs_tls_addr,
                ),
            ] {
                let Some(port) = port else { continue };
                let wanted = SocketAddr::new(config.bind, port);
                let listener = bind(wanted).await?;
                let bound = listener
                    .local_addr()
                    .map_err(|e| ServerError::Bind(wanted, e))?;
                tracing::info!(addr = %bound, %ae, client_certificates = settings.client_ca_file.is_some(), "{name} (DICOM TLS)");
                *addr = Some(bound);
                listeners.push((listener, role, name, Some(server_config.clone())));
            }
        }
        let liveness = Liveness::default();
        let admission = Admission::new(&config);
        let mut tasks = JoinSet::new();
        for (listener, role, name, tls) in listeners {
            let alive = liveness.register(name);
            let accepting = accept_loop(
                listener,
                Transport { role, tls },
                config.clone(),
                admission.clone(),
                self.services.clone(),
                watcher.clone(),
            );
            tasks.spawn(async move {
                let _alive = alive;
                accepting.await
            });
        }
        Ok(Running {
            mwl_addr,
            pacs_addr,
            mwl_tls_addr,
            pacs_tls_addr,
            shutdown,
            tasks,
            db: self.services.db.clone(),
            doorbell: self.services.doorbell.clone(),
            thumbnails: self.services.thumbnails.clone(),
            reindexing: Some(self.reindexing),
            liveness,
        })
    }
}

/// Runs the retention sweep a minute after start-up, then hourly, off the async threads.
async fn sweep_periodically(
    db: Arc<Database>,
    state_dir: std::path::PathBuf,
    policy: retention::Policy,
    mut shutdown: watch::Receiver<bool>,
) {
    let mut wait = Duration::from_secs(60);
    loop {
        tokio::select! {
            _ = tokio::time::sleep(wait) => {}
            _ = shutdown.changed() => return,
        }
        wait = Duration::from_secs(3600);
        let (db, dir, policy) = (db.clone(), state_dir.clone(), policy.clone());
        let result = tokio::task::spawn_blocking(move || {
            retention::sweep(
                &db,
                &dir.join("storage"),
                &dir.join("thumbnails"),
                &policy,
                time::OffsetDateTime::now_utc(),
            )
        })
        .await;
        match result {
            Ok(Ok(swept)) => tracing::info!(
                deleted = swept.deleted,
                freed_mib = swept.bytes_freed >> 20,
                kept_not_archived = swept.kept_not_archived,
                "retention: objects past RETENTION_DAYS and safe at every PACS deleted"
            ),
            Ok(Err(e)) => tracing::error!("retention: {e}"),
            Err(e) => tracing::error!("retention: {e}"),
        }
    }
}

fn mwl_addr_of(config: &Config) -> SocketAddr {
    SocketAddr::new(config.bind, config.mwl_port)
}

async fn bind(addr: SocketAddr) -> Result<TcpListener, ServerError> {
    TcpListener::bind(addr)
        .await
        .map_err(|e| ServerError::Bind(addr, e))
}

/// A started gateway. Dropping it without [`Running::shutdown`] aborts every association.
pub struct Running {
    pub mwl_addr: SocketAddr,
    pub pacs_addr: SocketAddr,
    /// The DICOM TLS listeners, when configured.
    pub mwl_tls_addr: Option<SocketAddr>,
    pub pacs_tls_addr: Option<SocketAddr>,
    pub db: Arc<Database>,
    /// Rung by the services when they queue events; the cloud link's courier listens.
    pub doorbell: Doorbell,
    /// The accept loops, for the systemd watchdog; the cloud link registers its tasks here too.
    pub liveness: Liveness,
    thumbnails: thumbnail::Pool,
    reindexing: Option<Reindexing>,
    shutdown: watch::Sender<bool>,
    tasks: JoinSet<()>,
}

impl Running {
    /// The thumbnail workers' state, for the health check.
    pub fn thumbnail_monitor(&self) -> thumbnail::Monitor {
        self.thumbnails.monitor()
    }

    /// Stops accepting, gives open associations `grace` to finish, then aborts them.
    pub async fn shutdown(mut self, grace: Duration) {
        let _ = self.shutdown.send(true);
        let _ = tokio::time::timeout(grace, async {
            while self.tasks.join_next().await.is_some() {}
        })
        .await;
        self.tasks.shutdown().await;
        if let Some(reindexing) = self.reindexing.take() {
            let _ = tokio::task::spawn_blocking(move || reindexing.stop()).await;
        }
        // The job in hand finishes; the rest wait in the database for the next start.
        let thumbnails = self.thumbnails.clone();
        let _ = tokio::task::spawn_blocking(move || thumbnails.stop()).await;
        // The last batched commits (index rows, thumbnails): durable now, not left to the
        // re-index and the thumbnail queue of the next start.
        let db = self.db.clone();
        if let Ok(Err(e)) = tokio::task::spawn_blocking(move || db.checkpoint()).await {
            tracing::error!(
                "cannot make the index durable at shutdown: {e}; the next start re-indexes"
            );
        }
    }
}

/// What a listener serves, and whether over TLS.
#[derive(Clone)]
struct Transport {
    role: Role,
    tls: Option<Arc<rustls::ServerConfig>>,
}

async fn accept_loop(
    listener: TcpListener,
    transport: Transport,
    config: Arc<Config>,
    admission: Arc<Admission>,
    services: Services,
    mut shutdown: watch::Receiver<bool>,
) {
    let mut associations = JoinSet::new();
    loop {
        let (socket, peer) = tokio::select! {
            _ = shutdown.changed() => break,
            Some(_) = associations.join_next(), if !associations.is_empty() => continue,
            accepted = listener.accept() => match accepted {
                Ok(pair) => pair,
                Err(e) => {
                    // EMFILE and friends: back off instead of spinning.
                    tracing::error!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            },
        };
        // Before a byte is read: a refused connection is closed here, with no task.
        let pending = match admission.connection(peer.ip()) {
            Ok(pending) => pending,
            Err(why) => {
                admission.log_refusal(peer, why, None);
                drop(socket);
                continue;
            }
        };
        associations.spawn(associate(
            socket,
            peer,
            transport.clone(),
            config.clone(),
            admission.clone(),
            pending,
            services.clone(),
        ));
    }
    while associations.join_next().await.is_some() {}
}

/// Decides who may associate: the called AE must be ours, the calling AE on its allow-list when
/// that is set (the source address was checked at accept). Every refusal is logged with the
/// names involved.
struct GatewayAccess {
    peer: SocketAddr,
    allowed_aets: Option<Arc<HashSet<String>>>,
}

impl AccessControl for GatewayAccess {
    fn check_access(
        &self,
        this_ae_title: &str,
        calling_ae_title: &str,
        called_ae_title: &str,
        _user_identity: Option<&UserIdentity>,
    ) -> Result<(), AssociationRJServiceUserReason> {
        let calling = calling_ae_title.trim();
        let called = called_ae_title.trim();
        if called != this_ae_title {
            tracing::warn!(peer = %self.peer, calling_ae = calling, called_ae = called, expected = this_ae_title,
                "association rejected: called AE title is not this gateway's");
            return Err(AssociationRJServiceUserReason::CalledAETitleNotRecognized);
        }
        if let Some(allowed) = &self.allowed_aets {
            if !allowed.contains(calling) {
                tracing::warn!(peer = %self.peer, calling_ae = calling,
                    "association rejected: calling AE title {calling:?} is not in ALLOWED_CALLING_AETS");
                return Err(AssociationRJServiceUserReason::CallingAETitleNotRecognized);
            }
        }
        Ok(())
    }
}

/// SCP/SCU Role Selection (PS3.7 D.3.3.4). A PACS that opens an association to send Storage
/// Commitment reports proposes to be the SCP of that class, which is granted as proposed; with
/// Query/Retrieve on, a requestor proposing the SCP role for a storage SOP class gets it, so
/// that a C-GET's objects can come back as C-STOREs on the same association. Every other
/// proposal is left out of the reply, which keeps the requestor an SCU.
struct RoleSelection {
    scp_for_storage: bool,
}

impl dicom_ul::association::server::Negotiation for RoleSelection {
    fn negotiate_roles(
        &self,
        sop_class_uid: &str,
        scu_role: bool,
        scp_role: bool,
    ) -> Option<dicom_ul::pdu::RequestorRoles> {
        let class = sop_class_uid.trim_end_matches(['\0', ' ']);
        if class == forward::commitment::SOP_CLASS {
            return Some(dicom_ul::pdu::RequestorRoles {
                scu: scu_role,
                scp: scp_role,
            });
        }
        (self.scp_for_storage && scp_role && STORAGE_SOP_CLASSES.contains(&class)).then_some(
            dicom_ul::pdu::RequestorRoles {
                scu: scu_role,
                scp: true,
            },
        )
    }
}

/// One connection, from accept to the end of its association: ARTIM for the request, an
/// association slot (or A-ASSOCIATE-RJ when none is free), negotiation, then the services.
async fn associate(
    mut socket: TcpStream,
    peer: SocketAddr,
    Transport { role, tls }: Transport,
    config: Arc<Config>,
    admission: Arc<Admission>,
    pending: Pending,
    services: Services,
) {
    if let Err(e) = socket.set_nodelay(true) {
        tracing::warn!(%peer, error = %e, "cannot set TCP_NODELAY");
    }
    match admission::request_arrives(&socket, config.artim_timeout).await {
        Ok(()) => {}
        Err(Some(why)) => return admission.log_refusal(peer, why, None),
        // A connection closed before any byte is a port check (ours, a load balancer's), not a
        // modality: kept out of the log at the default level.
        Err(None) => {
            return tracing::debug!(%peer, "connection closed before an association request")
        }
    }
    let _slot = match pending.associate() {
        Ok(slot) => slot,
        Err((_still_pending, why)) => {
            let request =
                admission::read_request(&mut socket, config.max_pdu, config.artim_timeout).await;
            admission.log_refusal(peer, why, request.as_deref());
            // Over TLS the request is not readable before the handshake: the connection is
            // closed instead of rejected.
            if request.is_some() && tls.is_none() {
                admission::reject(&mut socket, config.artim_timeout).await;
            }
            return;
        }
    };
    let access = GatewayAccess {
        peer,
        allowed_aets: config.allowed_calling_aets.clone().map(Arc::new),
    };
    let qr = role == Role::Storage && config.query_retrieve.enabled();
    let mut options = ServerAssociationOptions::new()
        .ae_access_control(access)
        .with_negotiation(RoleSelection {
            scp_for_storage: qr,
        })
        .max_pdu_length(config.max_pdu)
        .read_timeout(config.idle_timeout)
        .write_timeout(config.idle_timeout)
        .with_abstract_syntax(uids::VERIFICATION);
    let transfer_syntaxes: &[&str] = match role {
        Role::Worklist => {
            options = options
                .ae_title(config.mwl_aet.clone())
                .with_abstract_syntax(uids::MODALITY_WORKLIST_INFORMATION_MODEL_FIND)
                .with_abstract_syntax(uids::MODALITY_PERFORMED_PROCEDURE_STEP);
            &PLAIN_TRANSFER_SYNTAXES
        }
        Role::Storage => {
            options = options.ae_title(config.pacs_aet.clone());
            for class in STORAGE_SOP_CLASSES {
                options = options.with_abstract_syntax(*class);
            }
            // A PACS reports Storage Commitment on an association of its own (as Orthanc does).
            options = options.with_abstract_syntax(forward::commitment::SOP_CLASS);
            if qr {
                for class in crate::services::qr_find::QR_SOP_CLASSES {
                    options = options.with_abstract_syntax(class);
                }
            }
            &STORAGE_TRANSFER_SYNTAXES
        }
    };
    for ts in transfer_syntaxes {
        options = options.with_transfer_syntax(*ts);
    }
    // ARTIM covers the whole request: a peer that starts one and stalls is let go as soon.
    let over_tls = tls.is_some();
    let establish = async {
        match tls {
            None => options.establish_async(socket).await.map(Link::Plain),
            Some(tls) => options
                .tls_config(tls)
                .establish_tls_async(socket)
                .await
                .map(Link::Tls),
        }
    };
    let establishing = tokio::time::timeout(config.artim_timeout, establish);
    let established = match establishing.await {
        Err(_) => return admission.log_refusal(peer, admission::Refusal::Artim, None),
        Ok(Ok(a)) => a,
        // A connection closed before any PDU is a port check (ours, a load balancer's), not a
        // modality: kept out of the log at the default level.
        Ok(Err(e @ dicom_ul::association::Error::ConnectionClosed { .. })) => {
            tracing::debug!(%peer, "connection closed before an association request: {e}");
            return;
        }
        Ok(Err(e)) => {
            tracing::info!(%peer, error = %e, "association not established");
            return;
        }
    };
    let assoc = Association::new(established, peer);
    tracing::info!(%peer, calling_ae = %assoc.calling_ae, called_ae = %assoc.called_ae,
        contexts = assoc.contexts().len(), tls = over_tls, "association established");
    let service = match role {
        Role::Worklist => "worklist",
        Role::Storage => "storage",
    };
    metrics::counter!(crate::service::metrics::ASSOCIATIONS, "service" => service).increment(1);
    let open = metrics::gauge!(crate::service::metrics::ASSOCIATIONS_OPEN);
    open.increment(1.0);
    services.serve(role, assoc).await;
    open.decrement(1.0);
}
