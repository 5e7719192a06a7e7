//! C-ECHO (Verification), answered on every AE: the modality's "test connection" button.

use crate::dimse::{field, status, Association, Command, DimseError, Message};
use crate::storage::IncomingObject;

pub async fn handle(
    assoc: &mut Association,
    message: Message<IncomingObject>,
) -> Result<(), DimseError> {
    tracing::debug!(calling_ae = %assoc.calling_ae, "C-ECHO");
    let response = Command::response_to(&message.command, field::C_ECHO_RSP, status::SUCCESS);
    assoc.send(message.context.id, &response, None).await
}
