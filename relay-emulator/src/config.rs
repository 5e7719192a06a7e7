//! What the emulated namespace contains: its name, its shared access rules and its entities.

use std::time::Duration;

/// A right a shared access rule grants.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Right {
    Listen,
    Send,
    Manage,
}

/// A shared access rule on the namespace (`RootManageSharedAccessKey` and friends).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rule {
    pub name: String,
    pub keys: Vec<String>,
    pub rights: Vec<Right>,
}

impl Rule {
    /// Parses the command-line form `NAME=KEY` (all rights, like the portal's root rule) or
    /// `NAME:listen,send=KEY` (only the rights listed). Azure rule names cannot contain `:`.
    pub fn parse(text: &str) -> Result<Rule, String> {
        let (head, key) = text
            .split_once('=')
            .ok_or_else(|| format!("rule {text:?} is not NAME=KEY"))?;
        let (name, rights) = match head.split_once(':') {
            None => (head, vec![Right::Listen, Right::Send, Right::Manage]),
            Some((name, list)) => {
                let rights = list
                    .split(',')
                    .map(|r| match r.trim().to_ascii_lowercase().as_str() {
                        "listen" => Ok(Right::Listen),
                        "send" => Ok(Right::Send),
                        "manage" => Ok(Right::Manage),
                        other => Err(format!("unknown right {other:?} in rule {name:?}")),
                    })
                    .collect::<Result<Vec<_>, _>>()?;
                (name, rights)
            }
        };
        if name.is_empty() || key.is_empty() {
            return Err(format!("rule {text:?} needs a name and a key"));
        }
        Ok(Rule {
            name: name.to_string(),
            keys: vec![key.to_string()],
            rights,
        })
    }

    /// Whether the rule allows `right` (Manage implies both others).
    pub fn allows(&self, right: Right) -> bool {
        self.rights.contains(&right) || self.rights.contains(&Right::Manage)
    }
}

/// The emulated namespace and its limits.
#[derive(Clone)]
pub struct Config {
    /// The logical namespace host tokens must be signed for, e.g. `test.servicebus.windows.net`.
    pub namespace: String,
    pub rules: Vec<Rule>,
    /// Hybrid connection names.
    pub entities: Vec<String>,
    /// Listeners allowed per entity (Azure: 25).
    pub max_listeners: usize,
    /// How long a sender's upgrade is held waiting for the listener to accept.
    pub rendezvous_timeout: Duration,
    /// Drop control channels that send nothing for this long (Azure: about 4 minutes); off if None.
    pub idle_timeout: Option<Duration>,
    /// Serve `wss://` with this certificate instead of plain `ws://`.
    pub tls: Option<std::sync::Arc<rustls::ServerConfig>>,
}

impl Config {
    /// A namespace with Azure's limits and no idle dropping.
    pub fn new(namespace: &str, rules: Vec<Rule>, entities: Vec<String>) -> Config {
        Config {
            namespace: namespace.to_ascii_lowercase(),
            rules,
            entities,
            max_listeners: 25,
            rendezvous_timeout: Duration::from_secs(30),
            idle_timeout: None,
            tls: None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_rules() {
        let root = Rule::parse("root=abc=").unwrap();
        assert_eq!(root.keys, ["abc="]);
        assert!(root.allows(Right::Send) && root.allows(Right::Listen));
        let listen = Rule::parse("gw:listen=k").unwrap();
        assert!(listen.allows(Right::Listen) && !listen.allows(Right::Send));
        assert!(Rule::parse("nokey").is_err());
        assert!(Rule::parse("x:fly=k").is_err());
    }
}
