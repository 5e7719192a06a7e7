//! A data set streamed from a reader as P-DATA PDUs, one fragment in memory at a time: how a
//! stored object of any size is sent, by the forwarder's C-STORE (`scu.rs`) and by the C-GET
//! sub-operations on an accepted association (`association.rs`) alike.

use dicom_ul::pdu::{PDataValue, PDataValueType};
use dicom_ul::Pdu;
use tokio::io::{AsyncRead, AsyncReadExt};

/// The data PDUs of one message, read from `data` as they are asked for.
pub struct DataPdus<R> {
    data: R,
    context_id: u8,
    fragment: usize,
    /// The next fragment, read ahead so the last one can be marked last.
    next: Option<Vec<u8>>,
    done: bool,
}

impl<R: AsyncRead + Unpin> DataPdus<R> {
    /// Fragments sized to the peer's maximum PDU length (`0`: no limit), one PDV per PDU.
    pub fn new(data: R, context_id: u8, peer_max_pdu: u32) -> DataPdus<R> {
        // 6 bytes of PDV header inside the peer's maximum.
        let fragment = match peer_max_pdu {
            0 => 1 << 20,
            n => (n as usize).saturating_sub(6).clamp(64, 1 << 20),
        };
        DataPdus {
            data,
            context_id,
            fragment,
            next: None,
            done: false,
        }
    }

    async fn read_fragment(&mut self) -> std::io::Result<Vec<u8>> {
        let mut buf = vec![0u8; self.fragment];
        let mut filled = 0;
        while filled < buf.len() {
            match self.data.read(&mut buf[filled..]).await? {
                0 => break,
                n => filled += n,
            }
        }
        buf.truncate(filled);
        Ok(buf)
    }

    /// The next PDU, `None` after the last. An empty data set is one empty, last PDV.
    pub async fn next_pdu(&mut self) -> std::io::Result<Option<Pdu>> {
        if self.done {
            return Ok(None);
        }
        let chunk = match self.next.take() {
            Some(chunk) => chunk,
            None => self.read_fragment().await?,
        };
        let is_last = if chunk.len() == self.fragment {
            let next = self.read_fragment().await?;
            let last = next.is_empty();
            if !last {
                self.next = Some(next);
            }
            last
        } else {
            true
        };
        self.done = is_last;
        Ok(Some(Pdu::PData {
            data: vec![PDataValue {
                presentation_context_id: self.context_id,
                value_type: PDataValueType::Data,
                is_last,
                data: chunk,
            }],
        }))
    }
}
