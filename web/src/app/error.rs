//! The one error every server function returns, typed on both sides of the wire: the page decides
//! by variant (not by matching message text) whether a failure is the 404 page or an NHS error
//! summary. It travels as JSON; errors the framework itself raises (no network, a bad reply) are
//! kept as [`AppError::ServerFn`].

use leptos::server_fn::codec::JsonEncoding;
use leptos::server_fn::error::{FromServerFnError, ServerFnErrorErr};
use serde::{Deserialize, Serialize};

/// Why a server function failed, in words a clinician can read.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
pub enum AppError {
    /// The record does not exist, or belongs to another provider (the same answer, so that ids
    /// reveal nothing): the page shows "Page not found" with status 404.
    #[error("not found")]
    NotFound,
    /// No session: the server function has already redirected to the sign-in page.
    #[error("sign in first")]
    SignInFirst,
    /// The request was understood and refused: an illegal status change, an action that cannot be
    /// re-driven, a provider without a gateway (409).
    #[error("{0}")]
    Refused(String),
    /// The user's role does not allow this (403): administrators' pages and actions.
    #[error("{0}")]
    Forbidden(String),
    /// The request itself is wrong: bad credentials, an unknown check.
    #[error("{0}")]
    Invalid(String),
    /// Something broke on the server (logged there).
    #[error("{0}")]
    Internal(String),
    /// The call itself failed: the server was unreachable, or an argument or reply did not decode.
    #[error("{0}")]
    ServerFn(ServerFnErrorErr),
}

impl FromServerFnError for AppError {
    type Encoder = JsonEncoding;

    fn from_server_fn_error(value: ServerFnErrorErr) -> AppError {
        AppError::ServerFn(value)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_variant_survives_the_wire() {
        let errors = [
            AppError::NotFound,
            AppError::SignInFirst,
            AppError::Refused("an appointment cannot go from complete to cancelled".into()),
            AppError::Invalid("unknown check ping".into()),
            AppError::Forbidden("only an administrator may do this".into()),
            AppError::Internal("database: pool timed out".into()),
            AppError::ServerFn(ServerFnErrorErr::Request("offline".into())),
        ];
        for error in errors {
            assert_eq!(AppError::de(error.ser()), error);
        }
    }

    #[test]
    fn a_reply_that_is_not_ours_is_a_decoding_error_not_a_panic() {
        assert!(matches!(
            AppError::de("error running server function: not found".into()),
            AppError::ServerFn(ServerFnErrorErr::Deserialization(_))
        ));
    }

    #[test]
    fn messages_are_the_plain_reason() {
        assert_eq!(AppError::NotFound.to_string(), "not found");
        assert_eq!(
            AppError::Refused("this provider has no gateway".into()).to_string(),
            "this provider has no gateway"
        );
    }
}
